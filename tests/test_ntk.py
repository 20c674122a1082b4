"""Empirical NTK and linearised dynamics (dynamics/ntk.py) against independent computations.

Kernel: against the explicit product J Jᵀ of the flattened Jacobian (jacfwd on
a raveled parameter vector, a different autodiff mode and layout). Dynamics:
against float64 gradient flow (``dynamics.gradient_flow``), exactly for a model
linear in its parameters, and with an error that shrinks with width for a
two-layer tanh network in the NTK parametrisation (Lee et al. 2019, arXiv 1902.06720).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import dynamics
from dynamics.ntk import empirical_ntk, flatten_kernel, linearized_prediction


def _jacobian_product(apply, params, x1, x2):
    flat, unravel = ravel_pytree(params)
    jac = lambda x: jax.jacfwd(lambda th: apply(unravel(th), x).reshape(-1))(flat)  # (n·out, #θ)
    n1, out = apply(params, x1).shape
    n2 = x2.shape[0]
    return (jac(x1) @ jac(x2).T).reshape(n1, out, n2, out).transpose(0, 2, 1, 3)


def _mlp_apply(params, x):  # a small two-layer tanh net with biases, out = 3
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


@pytest.fixture
def mlp(key):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    params = {"w1": jax.random.normal(k1, (4, 7)), "b1": jax.random.normal(k2, (7,)),
              "w2": jax.random.normal(k3, (7, 3)), "b2": jnp.zeros(3)}
    return params, jax.random.normal(k4, (5, 4)), jax.random.normal(jax.random.fold_in(k4, 1), (6, 4))


@pytest.mark.parametrize("method", ["jacobian", "vjp_jvp"])
def test_ntk_equals_jacobian_product(mlp, method):
    params, x1, x2 = mlp
    ntk = jax.jit(lambda p, a, b: empirical_ntk(_mlp_apply, p, a, b, method=method))  # jit: eager is ~5× slower
    theta = ntk(params, x1, x2)
    assert theta.shape == (5, 6, 3, 3)
    # the same sums of products in another order: agreement to a few ulps of the entries
    reference = jax.jit(lambda p, a, b: _jacobian_product(_mlp_apply, p, a, b))(params, x1, x2)
    np.testing.assert_allclose(theta, reference, rtol=1e-12, atol=1e-12)
    same = jax.jit(lambda p, a: empirical_ntk(_mlp_apply, p, a, method=method))(params, x1)
    np.testing.assert_allclose(same, same.transpose(1, 0, 3, 2), atol=1e-12)  # Θ(x,x')_ab = Θ(x',x)_ba
    assert float(jnp.linalg.eigvalsh(flatten_kernel(same)).min()) > -1e-10  # PSD


def test_ntk_jit_and_bad_input(mlp):
    params, x1, x2 = mlp
    jitted = jax.jit(lambda p, a, b: empirical_ntk(_mlp_apply, p, a, b))(params, x1, x2)
    np.testing.assert_allclose(jitted, empirical_ntk(_mlp_apply, params, x1, x2), atol=1e-12)
    with pytest.raises(ValueError, match="method='hessian'"):
        empirical_ntk(_mlp_apply, params, x1, method="hessian")
    with pytest.raises(ValueError, match=r"\(batch, out\)"):
        empirical_ntk(lambda p, x: _mlp_apply(p, x)[:, 0], params, x1)
    y = jnp.zeros((5, 2))
    with pytest.raises(ValueError, match="y_train shape"):
        linearized_prediction(_mlp_apply, params, x1, y, x2, 1.0)
    with pytest.raises(ValueError, match="tau must be > 0"):
        linearized_prediction(_mlp_apply, params, x1, jnp.zeros((5, 3)), x2, 1.0, tau=0.0)
    with pytest.raises(ValueError, match="t must be ≥ 0"):
        linearized_prediction(_mlp_apply, params, x1, jnp.zeros((5, 3)), x2, [-1.0, 1.0])


def _flow_predictions(apply, params, x, y, x_test, times, tau=1.0):
    loss = dynamics.model_loss(apply)
    traj = dynamics.gradient_flow(loss, params, (x, y), times=times, tau=tau, rtol=1e-11, atol=1e-13,
                                  observe=lambda p: {"train": apply(p, x), "test": apply(p, x_test)})
    return traj.stats["train"], traj.stats["test"]


@pytest.mark.parametrize("n_features", [8, pytest.param(40, marks=pytest.mark.slow)])  # 40: same code path, +6 s
def test_linearization_exact_for_random_features(key, n_features):
    """f = a·relu(Wx)/√m with only a trained is linear in θ = a: the linearised
    prediction IS the flow. m = 8 features < P·out = 24 makes Θ singular
    (rank ≤ 16), exercising the null-space branch; m = 40 makes it full rank."""
    kw, ka, kx, kt, ky = jax.random.split(key, 5)
    n_in, out, p = 3, 2, 12
    w = jax.random.normal(kw, (n_features, n_in))
    apply = lambda params, x: jax.nn.relu(x @ w.T) @ params["a"] / jnp.sqrt(n_features)
    params = {"a": jax.random.normal(ka, (n_features, out))}
    x, x_test = jax.random.normal(kx, (p, n_in)), jax.random.normal(kt, (7, n_in))
    y = jax.random.normal(ky, (p, out))
    times = np.array([0.0, 0.5, 3.0, 20.0, 200.0])
    tau = 0.7
    lin = jax.jit(lambda p, t: linearized_prediction(apply, p, x, y, x_test, t, tau=tau))(params, times)
    train, test = _flow_predictions(apply, params, x, y, x_test, times, tau=tau)
    assert lin.train.shape == (5, p, out) and lin.test.shape == (5, 7, out)
    # flow solved to rtol 1e-11 on O(1) outputs; 1e-8 leaves 1000× margin
    assert float(jnp.max(jnp.abs(lin.train - train))) < 1e-8
    assert float(jnp.max(jnp.abs(lin.test - test))) < 1e-8
    assert float(jnp.max(jnp.abs(train[-1] - train[0]))) > 0.1  # it moved
    single = linearized_prediction(apply, params, x, y, x_test, times[2], tau=tau)  # scalar t
    np.testing.assert_allclose(single.test, lin.test[2], atol=1e-12)


def _tanh_net(key, width, n_in, out):
    k1, k2 = jax.random.split(key)
    params = {"w": jax.random.normal(k1, (width, n_in)), "a": jax.random.normal(k2, (width, out))}

    def apply(p, x):  # NTK parametrisation: f = a·tanh(Wx/√n_in)/√width
        return jnp.tanh(x @ p["w"].T / jnp.sqrt(n_in)) @ p["a"] / jnp.sqrt(width)

    return params, apply


def _tanh_errors(widths, seeds, t=10.0):
    kx, kt, ky = jax.random.split(jax.random.key(7), 3)
    n_in, out, p = 3, 2, 10
    x, x_test = jax.random.normal(kx, (p, n_in)), jax.random.normal(kt, (6, n_in))
    y = jnp.sin(2.0 * x[:, :out])
    errors = []
    for width in widths:
        worst = 0.0
        for seed in seeds:
            params, apply = _tanh_net(jax.random.key(100 + seed), width, n_in, out)
            lin = linearized_prediction(apply, params, x, y, x_test, np.array([t]))
            train, test = _flow_predictions(apply, params, x, y, x_test, np.array([t]))
            worst = max(worst, float(jnp.max(jnp.abs(lin.train - train))), float(jnp.max(jnp.abs(lin.test - test))))
        errors.append(worst)
    return np.array(errors)


@pytest.mark.slow  # ~28 s: 6 float64 flows of widths up to 1024
def test_linearization_error_shrinks_with_width():
    """Lazy training: sup_t ‖f − f_lin‖ = O(1/√width) in the NTK parametrisation
    (Lee et al. 2019, arXiv 1902.06720, Thm 2.1), so ×4 width should ≈ halve the
    error. Measured worst errors over 2 seeds at t = 10 (f64): see the numbers in
    the assertion message. Ratio bound 0.75 allows for seed noise around the
    ideal 0.5; the widest bound 0.02 is ≈ 2× the measured error there and is
    ≈ 1/6 of the O(1) outputs' scale, so a wrong kernel or time scale (error O(1)) fails."""
    errors = _tanh_errors((64, 256, 1024), seeds=(0, 1))
    ratios = errors[1:] / errors[:-1]
    assert np.all(ratios < 0.75), (errors, ratios)
    assert errors[-1] < 0.02, errors


class _Tiny(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2)(nn.tanh(nn.Dense(5)(x)))


def test_flax_model(key):
    # jitted: eager flax + autodiff dispatches hundreds of tiny ops (~10 s on a busy CPU)
    model = _Tiny()
    ntk = jax.jit(lambda p, a, b: empirical_ntk(model.apply, p, a, b))
    ntk_vjp = jax.jit(lambda p, a: empirical_ntk(model.apply, p, a, method="vjp_jvp"))
    reference = jax.jit(lambda p, a, b: _jacobian_product(model.apply, p, a, b))
    x1, x2 = jax.random.normal(key, (4, 3)), jax.random.normal(jax.random.fold_in(key, 1), (3, 3))
    params32 = model.init(jax.random.fold_in(key, 2), x1)  # flax makes float32 params even under x64
    # In float32 the per-leaf jacrev rounds each Jacobian entry to f32 (relative 2⁻²⁴ ≈ 6e-8) before
    # the contraction, while the reference contracts f64 entries: a ~30-term sum of products of
    # O(1) numbers then differs by ≲ 30·2·6e-8 ≈ 4e-6 of the largest entry (measured 1.7e-6 relative).
    ref32 = reference(params32, x1, x2)
    np.testing.assert_allclose(ntk(params32, x1, x2), ref32, rtol=0, atol=4e-6 * float(jnp.max(jnp.abs(ref32))))
    # the exact comparison is made in float64: the same flax pytree, params cast up
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params32)
    theta = ntk(params, x1, x2)
    assert theta.shape == (4, 3, 2, 2) and theta.dtype == jnp.float64
    np.testing.assert_allclose(theta, reference(params, x1, x2), rtol=1e-12, atol=1e-12)
    same = ntk(params, x1, x1)
    np.testing.assert_allclose(same, same.transpose(1, 0, 3, 2), atol=1e-12)
    np.testing.assert_allclose(ntk_vjp(params, x1), same, atol=1e-12)
