"""Saxe et al. 2014 (arXiv 1312.6120) mode dynamics against float64 simulation."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynamics
import tasks
from models import linear
from theory.linear import deep_mode_strength, deep_mode_time, linear_loss_at_modes, mode_strength, mode_time

pytestmark = pytest.mark.strict_dtypes

S = (3.0, 2.0, 1.0, 0.5)


@pytest.fixture(scope="module")
def task():
    return tasks.teacher(jax.random.key(1), n_in=6, n_out=5, s=S, n_samples=40)


def _observe(task):
    return lambda p: {"modes": linear.mode_strengths(p, task.u, task.v)}


def _aligned(task, depth, u0, hidden=4):
    sizes = (task.sigma_xx.shape[0],) + (hidden,) * (depth - 1) + (task.sigma_yx.shape[0],)
    return linear.init_aligned(jax.random.key(2), sizes, u=task.u, v=task.v, u0=u0)


def _flow(task, params, t_max, n=200):
    loss = dynamics.model_loss(linear.apply)
    return dynamics.gradient_flow(loss, params, (task.x, task.y), times=np.linspace(0, t_max, n),
                                  observe=_observe(task), rtol=1e-10, atol=1e-12)


def test_conserved_gram_under_flow(task, key):
    # Random (unbalanced, unaligned) init: the Gram difference is still conserved.
    params = linear.init_gaussian(key, (6, 4, 3, 5), std=0.5)
    traj = _flow(task, params, 10.0, n=3)
    scale = max(float(jnp.max(jnp.abs(w @ w.T))) for w in traj.params)
    for before, after in zip(linear.conserved_gram(params), linear.conserved_gram(traj.params)):
        assert float(jnp.max(jnp.abs(after - before))) / scale < 1e-9
    assert float(traj.loss[-1]) < float(traj.loss[0])  # it did move


def test_mode_strength_matches_two_layer_flow(task):
    traj = _flow(task, _aligned(task, 2, 1e-3), 15.0)
    theory = mode_strength(traj.t[:, None], s=task.s, u0=1e-3)
    assert float(jnp.max(jnp.abs(traj.stats["modes"] - theory) / theory)) < 1e-4
    # the loss of an aligned net is a function of its mode strengths only
    np.testing.assert_allclose(traj.loss, linear_loss_at_modes(theory, s=task.s, trace_yy=task.trace_yy), atol=1e-8)


def test_mode_strength_with_input_variance():
    lam = np.array([2.0, 0.5, 1.0, 1.0])
    t = tasks.teacher(jax.random.key(3), n_in=4, n_out=3, s=(1.5, 1.0), lam_x=lam, n_samples=32)
    traj = _flow(t, _aligned(t, 2, 1e-2, hidden=3), 20.0)
    theory = mode_strength(traj.t[:, None], s=t.s, u0=1e-2, lam_x=lam[:2])
    assert float(jnp.max(jnp.abs(traj.stats["modes"] - theory) / theory)) < 1e-4
    np.testing.assert_allclose(traj.stats["modes"][-1], t.s / lam[:2], rtol=1e-6)


def test_gd_error_is_first_order_in_learning_rate(task):
    """GD with rate η is Euler on τ du/dt = 2u(s − u), τ = 1/η: its growth factor
    1 + ηs vs e^{ηs} delays learning by a relative ≈ ηs/2, so the error in u(t)
    is O(η): it must halve when η halves."""
    loss = dynamics.model_loss(linear.apply)
    errors = []
    for eta in (0.02, 0.01, 0.005):
        steps = np.arange(0, int(10 / eta) + 1, 5)
        traj = dynamics.descend(loss, _aligned(task, 2, 1e-3), optax.sgd(eta), (task.x, task.y),
                                record_steps=steps, observe=_observe(task))
        theory = mode_strength(traj.t[:, None], s=task.s, u0=1e-3, tau=1 / eta)
        errors.append(float(jnp.max(jnp.abs(traj.stats["modes"] - theory))))
    assert errors[-1] < 0.05
    for coarse, fine in zip(errors, errors[1:]):
        assert 1.7 < coarse / fine < 2.3, errors


@pytest.mark.parametrize("depth", [3, 4])
def test_deep_mode_strength_matches_flow(task, depth):
    traj = _flow(task, _aligned(task, depth, 1e-2), 40.0)
    theory = deep_mode_strength(traj.t[:, None], s=task.s, u0=1e-2, depth=depth)
    assert float(jnp.max(jnp.abs(traj.stats["modes"] - theory) / theory)) < 1e-5


def test_deep_mode_strength_depth_two_is_logistic():
    t = jnp.linspace(0, 12, 50)
    np.testing.assert_allclose(deep_mode_strength(t, s=2.0, u0=1e-3, depth=2),
                               mode_strength(t, s=2.0, u0=1e-3), rtol=1e-12)


def test_mode_time_inverts_mode_strength():
    for uf in (0.01, 1.0, 1.9):
        t = mode_time(1e-3, uf, s=2.0, tau=3.0)
        np.testing.assert_allclose(mode_strength(t, s=2.0, u0=1e-3, tau=3.0), uf, rtol=1e-12)
        for depth in (3, 5):
            t_deep = deep_mode_time(1e-3, uf, s=2.0, depth=depth, tau=3.0)
            np.testing.assert_allclose(deep_mode_strength(t_deep, s=2.0, u0=1e-3, depth=depth, tau=3.0), uf, rtol=1e-10)


def test_deep_mode_strength_from_above_decays_to_s():
    u = deep_mode_strength(jnp.array([0.0, 0.5, 50.0]), s=1.0, u0=4.0, depth=3)
    assert float(u[0]) == 4.0 and 1.0 < float(u[1]) < 4.0
    np.testing.assert_allclose(u[-1], 1.0, rtol=1e-12)


def test_deep_mode_strength_rejects_bad_depth():
    with pytest.raises(ValueError, match="depth"):
        deep_mode_strength(1.0, s=1.0, u0=0.1, depth=1)


def test_theory_is_jittable_and_vmappable():
    f = jax.jit(lambda t, s: deep_mode_strength(t, s=s, u0=1e-2, depth=3))
    out = jax.vmap(f, in_axes=(None, 0))(jnp.linspace(0, 5, 7), jnp.array([1.0, 2.0]))
    assert out.shape == (2, 7)
    np.testing.assert_allclose(out[1], deep_mode_strength(jnp.linspace(0, 5, 7), s=2.0, u0=1e-2, depth=3))
