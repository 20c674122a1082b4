"""theory.relu (escape landscape and σ → 0 escape sequence of 1-D ReLU nets with a
free affine part) and dynamics.affine_free_loss, each against an independent
computation: least squares, a float64 simulation of one small unit, finite
differences, and a hand-run of the escape bookkeeping."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynamics
from experiments.relu_kinks import target
from models import relu
from theory import relu as theory_relu

pytestmark = pytest.mark.strict_dtypes

X = jnp.linspace(-1.0, 1.0, 41)[:, None]


def _net(key, h=5):
    return relu.init_breakpoints(key, hidden=h, x_range=(-1.0, 1.0))


def test_affine_free_loss_is_the_skip_net_minimum_and_its_gradient(key):
    params = _net(key)
    y = target(X, 3)
    got = dynamics.affine_free_loss(relu.apply)(params, (X, y))
    # independent: the best (v, c) by numpy least squares, then the skip net's loss there
    r = np.asarray(y - relu.apply(params, X))[:, 0]
    design = np.stack([np.asarray(X[:, 0]), np.ones(41)], axis=1)
    (v, c), *_ = np.linalg.lstsq(design, r, rcond=None)
    skip = dict(params, v=jnp.full((1, 1), v), c=jnp.full((1,), c))
    want = dynamics.model_loss(relu.apply)(skip, (X, y))
    assert float(got) == pytest.approx(float(want), rel=1e-12)
    # envelope theorem: ∇_params of the affine-free loss = skip net's gradient at the optimal (v, c)
    g_free = jax.grad(dynamics.affine_free_loss(relu.apply))(params, (X, y))
    g_skip = jax.grad(dynamics.model_loss(relu.apply))(skip, (X, y))
    for n in ("w", "b", "a"):
        np.testing.assert_allclose(g_free[n], g_skip[n], rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="shapes differ"):
        dynamics.affine_free_loss(relu.apply)(params, (X, y[:, 0]))


def test_landscape_is_the_residual_integrated_twice():
    y = np.asarray(target(X, 4))[:, 0]
    x = np.asarray(X[:, 0])
    r = theory_relu._project_affine(x, y)
    # zero outside the data (an affine unit) and at both ends
    assert np.abs(theory_relu.unit_rate(x, y, np.array([-3.0, -1.0, 1.0, 2.0]))).max() < 1e-13  # roundoff (G ~ 1e-2)
    # Ĝ = √(1+p²) G is piecewise linear between data points with slope jumps r̃_j / P at x_j
    h = 1e-4
    for j in (7, 20, 33):
        pts = x[j] + np.array([-2 * h, -h, h, 2 * h])
        g_hat = theory_relu.unit_rate(x, y, pts) * np.sqrt(1 + pts**2)
        jump = (g_hat[3] - g_hat[2]) / h - (g_hat[1] - g_hat[0]) / h
        assert jump == pytest.approx(r[j] / x.size, rel=1e-6)


def _unit_growth(y, p, s, orientation, eta, n_steps, sigma=1e-10):
    """GD on the affine-free loss of ONE balanced unit with breakpoint p, output sign s
    and orientation ±1, from norm σ: its ln‖(w, b)‖ growth per unit time t = step·η."""
    w = orientation / np.sqrt(1 + p**2)
    u = sigma * np.array([w, -w * p])
    params = {"w": jnp.array([[u[0]]]), "b": jnp.array([u[1]]), "a": jnp.array([[s * sigma]])}
    loss = dynamics.affine_free_loss(relu.apply)
    traj = dynamics.descend(loss, params, optax.sgd(eta), (X, y), record_steps=np.array([0, n_steps // 2, n_steps]),
                            observe=lambda q: jnp.log(jnp.hypot(q["w"][0, 0], q["b"][0])))
    log_norm = np.asarray(traj.stats)
    return (log_norm[2] - log_norm[1]) / (eta * (n_steps - n_steps // 2))


def test_lobe_rates_match_a_simulated_small_unit_of_either_orientation():
    y = target(X, 4)
    lobes = theory_relu.escape_lobes(X, y)
    assert lobes.signs.tolist() == [1.0, -1.0, 1.0, -1.0]  # the K = 4 target: one lobe per kink
    eta = 0.1
    for p, s, lam in zip(*lobes):
        for orientation in (1.0, -1.0):
            got = _unit_growth(y, p, s, orientation, eta, 10_000)
            # A unit at its lobe keeps its breakpoint, so its log-norm grows at λ_η. The lobes sit
            # on data points, where G has a corner: a GD unit chatters across it with an O(η)
            # amplitude, lowering its mean rate at first order (measured 1.2e-4 to 6.2e-4 at
            # η = 0.1, five times less at η = 0.02, five times more at η = 0.5).
            assert got == pytest.approx(theory_relu.gd_rate(lam, eta), rel=2e-3), (p, s, orientation)


def test_incremental_escapes_bookkeeping_by_hand():
    y = np.asarray(target(X, 2))
    first = theory_relu.escape_lobes(X, y)
    assert first.signs.tolist() == [1.0, -1.0]
    lead = int(np.argmax(first.rates))
    # stage 1: the residual of an arbitrary fit of the leading lobe's kink; the other
    # cluster climbs to the top of its basin in the new landscape (found here by a
    # brute-force search of the sign-matched lobes nearest its old breakpoint)
    fit = {"w": jnp.array([[1.0]]), "b": jnp.array([-first.breakpoints[lead]]), "a": jnp.array([[first.signs[lead] * 1.5]])}
    r1 = y - np.asarray(relu.apply(fit, X))
    second = theory_relu.escape_lobes(X, r1)
    other = 1 - lead
    same = np.nonzero(second.signs == first.signs[other])[0]
    nxt = same[np.argmin(np.abs(second.breakpoints[same] - first.breakpoints[other]))]
    log_inv = 30.0
    t1 = log_inv / first.rates[lead]
    t2 = t1 + (log_inv - first.rates[other] * t1) / second.rates[nxt]
    got = theory_relu.incremental_escapes(X, [y, r1], log_inv_scale=log_inv)
    np.testing.assert_allclose(got.times, [t1, t2], rtol=1e-12)
    np.testing.assert_allclose(got.breakpoints, [first.breakpoints[lead], second.breakpoints[nxt]])
    assert got.signs.tolist() == [first.signs[lead], first.signs[other]]
    # with a GD step every rate becomes ln(1 + ηλ)/η
    gd = theory_relu.incremental_escapes(X, [y, r1], log_inv_scale=log_inv, eta=0.2)
    assert gd.times[0] == pytest.approx(log_inv / theory_relu.gd_rate(first.rates[lead], 0.2), rel=1e-12)


def test_incremental_escapes_rejects_bad_input():
    y = np.asarray(target(X, 2))
    with pytest.raises(ValueError, match="log_inv_scale"):
        theory_relu.incremental_escapes(X, [y], log_inv_scale=0.0)
    with pytest.raises(ValueError, match="residual.shape"):
        theory_relu.incremental_escapes(X, [y[:40]], log_inv_scale=10.0)
    with pytest.raises(ValueError, match="empty"):
        theory_relu.incremental_escapes(X, [], log_inv_scale=10.0)
    # an affine target leaves nothing to grow
    with pytest.raises(ValueError, match="no cluster grows"):
        theory_relu.incremental_escapes(X, [np.asarray(2 * X + 1)], log_inv_scale=10.0)
    with pytest.raises(ValueError, match="eta"):
        theory_relu.gd_rate(0.1, 0.0)
