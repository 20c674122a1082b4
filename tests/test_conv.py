"""Linear conv nets (models.conv), conv teachers and the closed-form narrow optima (theory.conv)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dynamics.narrow import make_train_narrow, narrow_optimum_losses
from models import conv
from tasks import conv_teacher
from theory import conv as theory_conv


def _loop_conv(kernel, x):
    """Direct circular convolution y_o[p] = Σ_i Σ_j k_{o,i}[j] x_i[p − j], numpy loops over offsets j."""
    kernel, x = np.asarray(kernel), np.asarray(x)
    y = np.zeros((x.shape[0], kernel.shape[0]) + x.shape[2:])
    for j in np.ndindex(*kernel.shape[2:]):
        shifted = np.roll(x, shift=j, axis=tuple(range(2, x.ndim)))  # shifted[..., p] = x[..., p − j]
        y += np.einsum("oi,bi...->bo...", kernel[(slice(None), slice(None)) + j], shifted)
    return y


@pytest.mark.parametrize("spatial, ksize", [((7,), (3,)), ((4, 5), (2, 3))])  # full-size kernels: the next test
def test_apply_is_two_circular_convolutions(spatial, ksize):
    params = conv.init(jax.random.key(0), spatial=spatial, in_channels=2, out_channels=3, kernels=4, scale=1.0, kernel_size=ksize)
    x = jax.random.normal(jax.random.key(1), (5, 2) + spatial)
    expected = _loop_conv(params["a"], _loop_conv(params["w"], x))
    # FFT vs direct sums in float64: round-off only.
    np.testing.assert_allclose(jax.jit(conv.apply)(params, x), expected, atol=1e-12)
    beta = jax.jit(conv.end_to_end, static_argnums=1)(params, spatial)
    np.testing.assert_allclose(_loop_conv(beta, x), expected, atol=1e-12)


def _dense(params_or_kernel, spatial, c_in):
    """The dense (C_out N × C_in N) matrix of the map, column by column from basis inputs."""
    n = int(np.prod(spatial))
    basis = jnp.eye(c_in * n).reshape((c_in * n, c_in) + tuple(spatial))
    out = jax.jit(conv.apply if isinstance(params_or_kernel, dict) else conv.conv)(params_or_kernel, basis)
    return np.asarray(out).reshape(c_in * n, -1).T


@pytest.mark.parametrize("spatial", [(3, 4)])
def test_population_loss_is_frobenius_distance_of_dense_maps(spatial):
    # L = ½ E‖(B − B*)x‖² = ½‖B − B*‖_F² for x ~ N(0, I); B built from the net itself.
    task = conv_teacher.random_teacher(jax.random.key(2), spatial=spatial, in_channels=3, out_channels=2, kernels=2)
    params = conv.init(jax.random.key(3), spatial=spatial, in_channels=3, out_channels=2, kernels=2, scale=0.3)
    dense, dense_star = _dense(params, spatial, 3), _dense(task.beta_star, spatial, 3)
    expected = 0.5 * np.sum((dense - dense_star) ** 2)
    np.testing.assert_allclose(jax.jit(conv.population_loss)(params, task.beta_star), expected, rtol=1e-12)
    np.testing.assert_allclose(task.trace_yy, np.sum(dense_star**2), rtol=1e-12)
    # And the sampled data follow the same teacher (its own FFT path vs the dense matrix).
    x, y = conv_teacher.sample(jax.random.key(4), task, 3)
    np.testing.assert_allclose(np.asarray(y).reshape(3, -1), np.asarray(x).reshape(3, -1) @ dense_star.T, atol=1e-12)


@pytest.mark.parametrize("spatial", [(4, 3)])
def test_flat_teacher_is_real_with_the_same_singular_values_at_every_frequency(spatial):
    s = (3.0, 1.5, 0.5)
    task = conv_teacher.flat_teacher(jax.random.key(5), spatial=spatial, in_channels=4, out_channels=5, s=s)
    # The teacher is returned real; recomputing its DFT must give s at every ω if B̂*(−ω) = conj B̂*(ω) held.
    sv = np.asarray(theory_conv.transfer_singular_values(task.beta_star))
    np.testing.assert_allclose(sv[:, :3], np.broadcast_to(s, sv[:, :3].shape), rtol=1e-12)
    assert np.max(sv[:, 3:]) < 1e-12
    # Closed form for a flat teacher: L*_H = (N/2) Σ_{α>H} s_α².
    n = int(np.prod(spatial))
    expected = [0.5 * n * sum(v**2 for v in s[h:]) for h in range(4)]
    np.testing.assert_allclose(theory_conv.narrow_optimum_losses(task.beta_star, 3)[:3], expected[:3], rtol=1e-12)
    np.testing.assert_allclose(task.trace_yy, 2 * expected[0], rtol=1e-12)
    # kernels_needed = max_ω #{s_α(ω) > threshold}.
    assert [int(conv.kernels_needed(task.beta_star, threshold=v)) for v in (0.25, 1.0, 2.0)] == [3, 2, 1]


def test_embedded_narrow_net_keeps_function_and_critical_points():
    spatial = (5,)
    narrow = conv.init(jax.random.key(6), spatial=spatial, in_channels=2, out_channels=2, kernels=1, scale=0.5)
    wide = conv.embed_narrow(narrow, 3)
    x = jax.random.normal(jax.random.key(7), (4, 2) + spatial)
    apply = jax.jit(conv.apply)
    np.testing.assert_allclose(apply(wide, x), apply(narrow, x), atol=1e-14)
    task = conv_teacher.random_teacher(jax.random.key(8), spatial=spatial, in_channels=2, out_channels=2, kernels=2)
    grad = jax.jit(jax.grad(conv.population_loss))
    g_wide, g_narrow = grad(wide, task.beta_star), grad(narrow, task.beta_star)
    # Silent kernels get exactly zero gradient; the live one gets the narrow net's gradient.
    assert np.all(np.asarray(g_wide["w"][1:]) == 0) and np.all(np.asarray(g_wide["a"][:, 1:]) == 0)
    np.testing.assert_allclose(g_wide["w"][:1], g_narrow["w"], atol=1e-13)
    with pytest.raises(ValueError, match="kernels"):
        conv.embed_narrow(wide, 2)


@pytest.mark.parametrize("teacher, widths", [pytest.param("flat", (1, 2), marks=pytest.mark.slow), ("random", (2,))])
def test_closed_form_narrow_optimum_matches_trained_narrow_nets(teacher, widths):
    # Independent check of L*_H = ½ Σ_ω Σ_{α>H} s_α(ω)²: train H-kernel nets to convergence.
    spatial, c = (6,), 3
    if teacher == "flat":
        task = conv_teacher.flat_teacher(jax.random.key(9), spatial=spatial, in_channels=c, out_channels=c, s=(2.0, 1.0, 0.5))
    else:
        task = conv_teacher.random_teacher(jax.random.key(9), spatial=spatial, in_channels=c, out_channels=c, kernels=3)
    closed = np.asarray(theory_conv.narrow_optimum_losses(task.beta_star, 2))

    def init_narrow(key, h):
        return conv.init(key, spatial=spatial, in_channels=c, out_channels=c, kernels=h, scale=0.5 / np.sqrt(6))

    train = make_train_narrow(conv.population_loss, init_narrow, optax.adam(optax.exponential_decay(0.03, 600, 0.01)),
                              task.beta_star, n_steps=600, return_params=False)
    trained = narrow_optimum_losses(train, widths, n_inits=2, key=jax.random.key(10)).best_loss
    closed = closed[[0, *widths]]
    # Linear nets have no spurious minima; 600 decaying Adam steps reach the optimum to
    # < 1e-8 of L*_0 here (400 steps still leave 2.5e-6 for the random teacher; 1500 steps
    # reach ~1e-15, see the conv-kernels verify rows), far below the gaps between L*_H (> 5% of L*_0).
    np.testing.assert_allclose(trained / closed[0], closed[1:] / closed[0], atol=1e-8)
    # The optimum is never beaten by a trained net (it is a lower bound).
    assert np.all(trained >= closed[1:] * (1 - 1e-10))


def test_escape_time_scale_formula():
    t = theory_conv.escape_time_scale([4.0, 1.0], n_positions=16, init_scale=1e-5)
    np.testing.assert_allclose(t, np.log(np.array([4.0, 1.0]) / (16 * 1e-10)) / (32 * np.array([4.0, 1.0])), rtol=1e-14)
    with pytest.raises(ValueError, match="small init"):
        theory_conv.escape_time_scale([1.0], n_positions=16, init_scale=1.0)


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="spatial"):
        conv.init(jax.random.key(0), spatial=(2, 2, 2), in_channels=1, out_channels=1, kernels=1, scale=0.1)
    with pytest.raises(ValueError, match="kernel_size"):
        conv.init(jax.random.key(0), spatial=(4,), in_channels=1, out_channels=1, kernels=1, scale=0.1, kernel_size=(5,))
    with pytest.raises(ValueError, match="kernels"):
        conv.init(jax.random.key(0), spatial=(4,), in_channels=1, out_channels=1, kernels=-1, scale=0.1)
    with pytest.raises(ValueError, match="does not fit"):
        conv.conv(jnp.zeros((1, 2, 3)), jnp.zeros((4, 3, 5)))
    with pytest.raises(ValueError, match="s="):
        conv_teacher.flat_teacher(jax.random.key(0), spatial=(4,), in_channels=2, out_channels=2, s=(3.0, 2.0, 1.0))
