"""Per-seed escape-time tolerances (fidelity2): the reading resolution of a sampled curve
(dynamics.plateaus.rise_time_resolution) against rise_times itself on shifted grids, and the ReLU
first-escape terms (theory.relu_escape.drop_profile, corner_chatter, first_escape_tolerance) against an
ODE solution and a float64 GD simulation of one small unit."""
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.integrate import solve_ivp

import dynamics
from dynamics.plateaus import grid_ratio, rise_time_resolution, rise_times
from experiments.relu_kinks import target
from models import relu
from theory import relu as theory_relu
from theory import relu_escape

pytestmark = pytest.mark.strict_dtypes


def _worst_reading(profile, level, ratio, n_shifts=400):
    """Independent: rise_times on log grids t = e^{(k − φ) ln r} (t* = 1) for many shifts φ."""
    h, worst = np.log(ratio), 0.0
    for phi in np.arange(n_shifts) / n_shifts + 0.5 / n_shifts:
        x = (np.arange(-60, 61) - phi) * h
        got = rise_times(np.exp(x), profile(x)[:, None], level)[0]
        worst = max(worst, abs(np.log(got)))
    return worst


@pytest.mark.parametrize("growth,ratio", [(25.0, 1.03), (8.0, 1.2), (60.0, 1.01)])
def test_rise_time_resolution_bounds_rise_times_on_every_shift_of_the_grid(growth, ratio):
    profile = lambda x: relu_escape.drop_profile(x, growth)
    res = rise_time_resolution(profile, 0.75, ratio)
    sampled = _worst_reading(profile, 0.75, ratio)
    # the same worst case over a finer set of shifts: equal up to the shift spacing's effect on the reading
    # (≤ ln r / 257 with the profile's slope ratio bounded here by 2)
    assert sampled <= res + 2 * np.log(ratio) / 257
    assert res <= sampled + 2 * np.log(ratio) / 257
    assert 0.0 < res < np.log(ratio)


def test_rise_time_resolution_limits():
    h = np.log(1.05)
    assert rise_time_resolution(lambda x: (x >= 0).astype(float), 0.5, 1.05) == pytest.approx(h / 2, rel=1e-12)
    assert rise_time_resolution(lambda x: 0.5 + 0.1 * x, 0.5, 1.05) < 1e-12  # linear in ln t: exact
    with pytest.raises(ValueError, match="ratio"):
        rise_time_resolution(lambda x: x, 0.5, 1.0)


def test_grid_ratio_is_the_local_spacing_of_a_log_grid():
    steps = dynamics.log_steps(100_000, 400)
    assert grid_ratio(0.2 * steps, 2e3) == pytest.approx(np.exp(np.log(1e5) / 399), rel=2e-3)
    assert grid_ratio(np.array([0.0, 1.0, 2.0, 3.0]), 50.0) == pytest.approx(1.5)  # beyond the grid: its nearest pair


def test_drop_profile_is_the_saturating_logistic():
    # dc/dt = 2c(λ − κc) from c₀ (theory.relu_escape module docstring): v = c/u* reaches ½ at t_mid with
    # e^{2λ t_mid} = u*/c₀ − 1; F = 2v − v² against the profile at t = t_mid eˣ
    lam, kappa, c0 = 0.02, 0.5, 1e-20
    u_star = lam / kappa
    t_mid = np.log(u_star / c0 - 1) / (2 * lam)
    x = np.linspace(-0.3, 0.3, 13)
    sol = solve_ivp(lambda t, c: 2 * c * (lam - kappa * c), (0, t_mid * np.exp(0.3)), [c0], t_eval=t_mid * np.exp(x),
                    rtol=1e-11, atol=1e-30, method="LSODA")
    v = sol.y[0] / u_star
    np.testing.assert_allclose(relu_escape.drop_profile(x, lam * t_mid), 2 * v - v * v, atol=1e-7)
    assert relu_escape.drop_profile(0.0, 30.0) == pytest.approx(0.75)


def test_corner_chatter_bounds_the_rate_a_gd_unit_loses_at_its_lobe():
    # One small balanced unit at each lobe top of the K = 4 target, GD at η = 0.1 (float64): its mean
    # log-growth rate falls short of λ_η by at most corner_chatter/(1 + ηλ) (the GD rate's derivative).
    X = jnp.linspace(-1.0, 1.0, 41)[:, None]
    x, y = np.asarray(X[:, 0]), target(X, 4)
    eta, n = 0.1, 10_000
    loss = dynamics.affine_free_loss(relu.apply)
    for p, s, lam in zip(*theory_relu.escape_lobes(x, np.asarray(y)[:, 0])):
        w = 1.0 / np.sqrt(1 + p**2)
        params = {"w": jnp.array([[1e-10 * w]]), "b": jnp.array([-1e-10 * w * p]), "a": jnp.array([[s * 1e-10]])}
        traj = dynamics.descend(loss, params, optax.sgd(eta), (X, y), record_steps=np.array([0, n // 2, n]),
                                observe=lambda q: jnp.log(jnp.hypot(q["w"][0, 0], q["b"][0])))
        log_norm = np.asarray(traj.stats)
        shortfall = theory_relu.gd_rate(lam, eta) - (log_norm[2] - log_norm[1]) / (eta * (n - n // 2))
        bound = relu_escape.corner_chatter(x, np.asarray(y)[:, 0], p, s, eta) / (1 + eta * lam)
        assert 0.0 < shortfall <= bound, (p, shortfall, bound)
        # not vacuous: the orbit's mean deficit is half the bound; the tangential GD steps add back part of
        # it (the norm gains ½(Δθ)² per step), measured 0.18-0.25 of the bound here
        assert shortfall >= 0.1 * bound, (p, shortfall, bound)


def test_first_escape_tolerance_adds_its_terms():
    # (|b| + 2ηλ)/Λ + δ/λ, by hand
    got = relu_escape.first_escape_tolerance(np.array([20.0, 40.0]), -0.3, np.array([0.01, 0.02]), 0.2, chatter=1e-5)
    np.testing.assert_allclose(got, [(0.3 + 0.004) / 20 + 1e-3, (0.3 + 0.008) / 40 + 5e-4], rtol=1e-12)
