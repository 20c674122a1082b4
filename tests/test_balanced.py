"""theory.balanced: exact λ-balanced two-layer dynamics vs an f64 gradient flow of the network."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics
import tasks
from models import linear
from theory import balanced

pytestmark = pytest.mark.strict_dtypes

SHAPES = {  # (n_in, hidden, n_out), singular values of Σyx
    "in>out": ((5, 3, 4), (3.0, 2.0, 1.0)),
    "in<out": ((3, 2, 6), (2.0, 1.0)),
}
LAMS = (-2.0, 0.0, 2.0)


def _q(params):
    return jnp.concatenate([params[0].T, params[1]], axis=0)


def _qqt_of(params):
    q = _q(params)
    return q @ q.T


def _setup(shape, lam, *, scale=0.2, seed=0):
    sizes, s = SHAPES[shape]
    task = tasks.teacher(jax.random.key(seed), n_in=sizes[0], n_out=sizes[2], s=s)
    params = linear.init_lambda_balanced(jax.random.key(seed + 1), sizes, lam=lam, scale=scale)
    return task, params


def _population_flow(task, params, times, tau=1.0):
    eye = jnp.eye(task.sigma_yx.shape[1], dtype=task.sigma_yx.dtype)

    def loss(p, stats):
        return dynamics.linear_loss_from_stats(linear.end_to_end(p), eye, *stats)

    return dynamics.gradient_flow(
        loss, params, (task.sigma_yx, task.trace_yy), times=times, tau=tau, observe=_qqt_of, rtol=1e-12, atol=1e-14
    )


@functools.lru_cache(maxsize=None)
def _flows_over_lams(shape):
    """QQᵀ(t) of the population flow from every λ in LAMS (same teacher, same shapes): one
    vmapped flow, so one compilation per shape instead of one per (shape, λ)."""
    times = dynamics.log_times(10.0, 40)
    setups = [_setup(shape, lam) for lam in LAMS]
    params = jax.tree_util.tree_map(lambda *p: jnp.stack(p), *[p for _, p in setups])
    stats = jax.vmap(lambda p: _population_flow(setups[0][0], p, times).stats)(params)
    return times, dict(zip(LAMS, stats))


@pytest.mark.parametrize("lam", LAMS)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_qqt_matches_gradient_flow(shape, lam):
    task, params = _setup(shape, lam)
    times, sims = _flows_over_lams(shape)
    sim = sims[lam]
    theory = balanced.qqt(times, sigma_yx=task.sigma_yx, q0=_q(params), lam=lam)
    assert theory.shape == sim.shape
    assert float(jnp.max(jnp.abs(theory[-1] - theory[0]))) > 0.5  # the network did learn
    assert float(jnp.max(jnp.abs(theory - sim))) < 1e-8


def test_matches_flow_on_data_loss_with_tau():
    """Same prediction from the sample loss (1/2P)Σ‖y − W2W1x‖² with whitened inputs, τ = 2."""
    lam, tau = 1.0, 2.0
    sizes = (4, 2, 3)
    task = tasks.teacher(jax.random.key(5), n_in=4, n_out=3, s=(2.0, 0.5), n_samples=16)
    params = linear.init_lambda_balanced(jax.random.key(6), sizes, lam=lam, scale=0.3)
    times = dynamics.log_times(16.0, 20)
    sim = dynamics.gradient_flow(
        dynamics.model_loss(linear.apply), params, (task.x, task.y), times=times, tau=tau,
        observe=_qqt_of, rtol=1e-12, atol=1e-14,
    ).stats
    theory = balanced.qqt(times, sigma_yx=task.sigma_yx, q0=_q(params), lam=lam, tau=tau)
    assert float(jnp.max(jnp.abs(theory - sim))) < 1e-8


def test_hidden_wider_than_input():
    """No hidden ≤ min(in, out) needed: in=2, hidden=4, out=5, λ = 1."""
    n_in, hidden, n_out, lam = 2, 4, 5, 1.0
    k_r, k_v, k_u, k_t = jax.random.split(jax.random.key(3), 4)
    rot = linear._haar(k_r, hidden, jnp.float64)
    a = jnp.array([0.3, 0.2, 0.0, 0.0])
    w1 = (rot[:, :n_in] * a[:n_in]) @ linear._haar(k_v, n_in, jnp.float64).T
    w2 = (linear._haar(k_u, n_out, jnp.float64)[:, :hidden] * jnp.sqrt(a**2 + lam)) @ rot.T
    task = tasks.teacher(k_t, n_in=n_in, n_out=n_out, s=(2.0, 1.0))
    times = dynamics.log_times(10.0, 20)
    sim = _population_flow(task, [w1, w2], times).stats
    theory = balanced.qqt(times, sigma_yx=task.sigma_yx, q0=_q([w1, w2]), lam=lam)
    assert float(jnp.max(jnp.abs(theory - sim))) < 1e-8


@pytest.mark.parametrize("lam", LAMS)
def test_t0_returns_q0q0t(lam):
    task, params = _setup("in>out", lam)
    q0 = _q(params)
    x = balanced.qqt(jnp.array([0.0, 1e-300, 1e-12]), sigma_yx=task.sigma_yx, q0=q0, lam=lam)
    assert jnp.array_equal(x[0], q0 @ q0.T)
    np.testing.assert_allclose(x[1:], jnp.broadcast_to(q0 @ q0.T, x[1:].shape), atol=1e-10)


@pytest.mark.parametrize("lam", LAMS)
def test_riccati_equation_holds(lam):
    """d/dt of the closed form equals (F X + X F − X²)/τ (forward-mode autodiff)."""
    task, params = _setup("in<out", lam)
    tau = 0.5
    f_mat = balanced.driving_matrix(task.sigma_yx, lam=lam)

    def x_of(t):
        return balanced.qqt(t, sigma_yx=task.sigma_yx, q0=_q(params), lam=lam, tau=tau)

    for t in (0.05, 0.7, 3.0):
        x = x_of(t)
        np.testing.assert_allclose(jax.jacfwd(x_of)(t), (f_mat @ x + x @ f_mat - x @ x) / tau, atol=1e-11)


@pytest.mark.parametrize("lam", LAMS)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_lambda_conserved(shape, lam):
    """The blocks of QQᵀ stay consistent with W2ᵀW2 − W1W1ᵀ = λI, at all times.

    (W2W1)ᵀ(W2W1) = (W1ᵀW1)² + λ W1ᵀW1 and (W2W1)(W2W1)ᵀ = (W2W2ᵀ)² − λ W2W2ᵀ; the
    factor Q(t) itself keeps Qᵀ diag(−I, I) Q = λI.
    """
    task, params = _setup(shape, lam)
    n_in, n_out = task.sigma_yx.shape[1], task.sigma_yx.shape[0]
    times = jnp.concatenate([dynamics.log_times(50.0, 30), jnp.array([1e3, 1e4])])
    kw = dict(sigma_yx=task.sigma_yx, q0=_q(params), lam=lam)
    x = balanced.qqt(times, **kw)
    a, c, m = x[:, :n_in, :n_in], x[:, n_in:, n_in:], balanced.network_map(x, n_in)
    np.testing.assert_allclose(jnp.swapaxes(m, 1, 2) @ m, a @ a + lam * a, atol=1e-10)
    np.testing.assert_allclose(m @ jnp.swapaxes(m, 1, 2), c @ c - lam * c, atol=1e-10)
    q = balanced.q_factor(times, **kw)
    j = jnp.concatenate([-jnp.ones(n_in), jnp.ones(n_out)])
    gram = jnp.einsum("tih,i,tik->thk", q, j, q)
    np.testing.assert_allclose(gram, jnp.broadcast_to(lam * jnp.eye(q.shape[-1]), gram.shape), atol=1e-10)


@pytest.mark.parametrize("lam", LAMS)
def test_semigroup_and_long_times(lam):
    """X(t1 + t2) from q0 equals X(t2) restarted from Q(t1): also where e^{f t} overflows."""
    task, params = _setup("in>out", lam, scale=0.05)
    kw = dict(sigma_yx=task.sigma_yx, lam=lam)
    for t1, t2 in ((1.0, 2.0), (20.0, 30.0), (200.0, 300.0), (3000.0, 7000.0)):
        q1 = balanced.q_factor(t1, q0=_q(params), **kw)
        direct = balanced.qqt(t1 + t2, q0=_q(params), **kw)
        restarted = balanced.qqt(t2, q0=q1, **kw)
        assert bool(jnp.all(jnp.isfinite(direct)))
        np.testing.assert_allclose(direct, restarted, atol=1e-11)
    # hidden = rank Σyx here, so the network map ends at Σyx
    np.testing.assert_allclose(balanced.network_map(direct, 5), task.sigma_yx, atol=1e-10)


def test_jit_vmap_and_shapes():
    task, params = _setup("in<out", 2.0)
    q0 = _q(params)
    times = jnp.linspace(0.0, 4.0, 6)
    eager = balanced.qqt(times, sigma_yx=task.sigma_yx, q0=q0, lam=2.0)
    jitted = jax.jit(lambda t, s, q, lam: balanced.qqt(t, sigma_yx=s, q0=q, lam=lam))(times, task.sigma_yx, q0, 2.0)
    np.testing.assert_allclose(jitted, eager, atol=1e-13)
    mapped = jax.vmap(lambda t: balanced.qqt(t, sigma_yx=task.sigma_yx, q0=q0, lam=2.0))(times)
    np.testing.assert_allclose(mapped, eager, atol=1e-13)
    assert eager.shape == (6, 9, 9)
    assert balanced.qqt(1.0, sigma_yx=task.sigma_yx, q0=q0, lam=2.0).shape == (9, 9)
    assert balanced.network_map(eager, 3).shape == (6, 6, 3)
    np.testing.assert_allclose(balanced.network_map(eager[0], 3), linear.end_to_end(params), atol=1e-14)


def test_bad_inputs_raise():
    task, params = _setup("in>out", 0.0)
    q0 = _q(params)
    with pytest.raises(ValueError, match="q0 must be"):
        balanced.qqt(1.0, sigma_yx=task.sigma_yx, q0=q0[:-1], lam=0.0)
    with pytest.raises(ValueError, match="q0 must be"):
        balanced.qqt(1.0, sigma_yx=task.sigma_yx[:, :-1], q0=q0, lam=0.0)
    with pytest.raises(ValueError, match="sigma_yx must be"):
        balanced.qqt(1.0, sigma_yx=task.sigma_yx[0], q0=q0, lam=0.0)
    with pytest.raises(ValueError, match="λ-balanced"):
        balanced.qqt(1.0, sigma_yx=task.sigma_yx, q0=q0, lam=1.0)
    with pytest.raises(ValueError, match="t must be ≥ 0"):
        balanced.qqt(jnp.array([0.0, -1.0]), sigma_yx=task.sigma_yx, q0=q0, lam=0.0)
    with pytest.raises(ValueError, match="tau"):
        balanced.qqt(1.0, sigma_yx=task.sigma_yx, q0=q0, lam=0.0, tau=0.0)
