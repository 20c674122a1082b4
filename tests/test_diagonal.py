"""Diagonal linear networks (Pesme & Flammarion 2023, arXiv 2304.00488):
Algorithm 1 and the exact whitened-input solution against f64 gradient flow."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import dynamics
from dynamics.extrapolation import crossing_error, extrapolate_to_zero
from experiments import diagonal_sparse
from experiments.common import run_experiment
from models import diagonal
from theory.diagonal import (dual_path, incremental_learning, n_jumps, orthogonal_time, orthogonal_trajectory,
                             saddle_losses)


def _whitened(seed, p, d):
    """(P, d) inputs with XᵀX/P = I exactly."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((p, d)))
    return q * np.sqrt(p)


def _gaussian_problem(seed, p, d, nonzeros):
    x = np.asarray(jax.random.normal(jax.random.split(jax.random.key(seed))[0], (p, d)))
    b_star = np.zeros(d)
    b_star[: len(nonzeros)] = nonzeros
    return x, x @ b_star


def _trimmed(path):
    k = int(n_jumps(path.times))
    return np.asarray(path.times[: k + 1]), np.asarray(path.saddles[: k + 1])


def _first_below(t, values, level):
    i = int(np.argmax(values <= level))
    assert i > 0 and values[i] <= level, "the loss never crossed the level"
    return t[i - 1] + (values[i - 1] - level) / (values[i - 1] - values[i]) * (t[i] - t[i - 1])


def _jump_times(t, losses, saddle_loss):
    """Times where each loss curve crosses the midpoints (L(β_{k−1}) + L(β_k))/2."""
    levels = 0.5 * (saddle_loss[:-1] + saddle_loss[1:])
    return np.array([[_first_below(t, loss, lv) for lv in levels] for loss in losses])


def _flows(x, y, alphas, t_rescaled):
    """Gradient flow of u ⊙ v from u₀ = √2α, v₀ = 0, recorded at t = t̃ ln(1/α); (n_α, T) losses, (n_α, T, d) β."""
    loss = dynamics.model_loss(diagonal.apply)

    def one(alpha):
        traj = dynamics.gradient_flow(loss, diagonal.init(x.shape[1], alpha=alpha), (x, y),
                                      times=t_rescaled * jnp.log(1.0 / alpha), observe=lambda p: {"b": diagonal.beta(p)},
                                      rtol=1e-9, atol=1e-6 * min(alphas) ** 2)
        return traj.loss, traj.stats["b"]

    losses, betas = jax.jit(jax.vmap(one))(jnp.asarray(alphas))
    return np.asarray(losses), np.asarray(betas)


# ------------------------------------------------------------------ model

def test_init_and_bad_input():
    p = diagonal.init(5, alpha=0.1)
    np.testing.assert_allclose(p["u"], np.sqrt(2) * 0.1)
    np.testing.assert_array_equal(diagonal.beta(p), 0.0)
    np.testing.assert_allclose(diagonal.conserved(p), 2 * 0.1**2)
    q = diagonal.init(5, alpha=0.1, form="squares")
    np.testing.assert_array_equal(diagonal.beta(q), 0.0)
    np.testing.assert_allclose(diagonal.conserved(q), 0.1**2)
    assert diagonal.apply(p, jnp.ones((3, 5))).shape == (3,)
    with pytest.raises(ValueError, match="alpha=0"):
        diagonal.init(5, alpha=0)
    with pytest.raises(ValueError, match="form='cube'"):
        diagonal.init(5, alpha=0.1, form="cube")
    with pytest.raises(ValueError, match="d=0"):
        diagonal.init(0, alpha=0.1)
    with pytest.raises(ValueError, match="keys"):
        diagonal.beta({"w": jnp.ones(3)})


@pytest.fixture(scope="module")
def whitened_flow():
    """One f64 solve of three non-interacting nets on whitened data (G = I):
    product form at α = 1e-2 and α = 1e-6, and the squares form at α/√2 = 1e-2/√2
    with loss weight ½, which by models.diagonal runs the product form at 1e-2."""
    b_star = np.array([1.5, -0.8, 0.5, 0.0])
    x = _whitened(3, 16, 4)
    y = x @ b_star
    alphas = (1e-2, 1e-6)
    params = {"p1": diagonal.init(4, alpha=alphas[0]), "p2": diagonal.init(4, alpha=alphas[1]),
              "sq": diagonal.init(4, alpha=alphas[0] / np.sqrt(2), form="squares")}
    single = dynamics.model_loss(diagonal.apply)

    def loss(p, data):
        return single(p["p1"], data) + single(p["p2"], data) + 0.5 * single(p["sq"], data)

    t = np.linspace(0.0, 40.0, 400)
    traj = dynamics.gradient_flow(loss, params, (x, y), times=t, rtol=1e-10, atol=1e-20,
                                  observe=lambda p: {k: diagonal.beta(v) for k, v in p.items()})
    return dict(b_star=b_star, x=x, y=y, alphas=alphas, t=t, traj=traj, p0=params)


def test_whitened_exact_solution_matches_flow(whitened_flow):
    # orthogonal_trajectory solves the mirror ODE in closed form, so the only error
    # is the solver's (rtol 1e-10 over ~10³ steps): tol 1e-6 relative to max|β*|.
    w = whitened_flow
    for name, alpha in zip(("p1", "p2"), w["alphas"]):
        exact = orthogonal_trajectory(w["t"][:, None], beta_star=w["b_star"], alpha=alpha)
        err = np.max(np.abs(np.asarray(w["traj"].stats[name]) - exact)) / 1.5
        assert err < 1e-6, (alpha, err)
    # β* = 0 is never learned; the learned coordinates reach β* by t = 40.
    np.testing.assert_allclose(w["traj"].stats["p2"][-1], w["b_star"], atol=1e-4)


def test_squares_form_is_product_form_on_a_faster_clock(whitened_flow):
    w = whitened_flow
    np.testing.assert_allclose(w["traj"].stats["sq"], w["traj"].stats["p1"], atol=1e-7)


def test_conserved_quantities(whitened_flow):
    # u² − v² and w₊w₋ are constants of the flow; tol relative to the size of the terms.
    w = whitened_flow
    for name in ("p1", "p2", "sq"):
        before, after = w["p0"][name], w["traj"].params[name]
        scale = max(float(jnp.max(jnp.abs(a))) ** 2 for a in after.values())
        drift = float(jnp.max(jnp.abs(diagonal.conserved(after) - diagonal.conserved(before))))
        assert drift / scale < 1e-9, (name, drift)


def test_whitened_hand_derivation():
    """G = I decouples the coordinates: sᵢ(t̃) = t̃ β*ᵢ while βᵢ = 0, so coordinate i
    switches on at t̃ = 1/|β*ᵢ| and then sits at β*ᵢ (its face minimiser). Hence
    Algorithm 1 gives times sorted(1/|β*ᵢ|) and saddles β* restricted to the
    largest coordinates. The exact finite-α solution reaches β*/2 at
    t = [2 ln(1/α) + ln(2|β*|)]/(2|β*|) − α²/(2β*²) + O(α⁴): t/ln(1/α) → 1/|β*|
    with a 1/ln(1/α) correction, the scaling of every finite-α jump time."""
    b_star = np.array([0.0, -0.5, 2.0, 0.0, 1.0, -0.25])
    x = _whitened(5, 16, 6)
    times, saddles = _trimmed(incremental_learning(x, x @ b_star))
    order = np.argsort(-np.abs(b_star))[:4]
    np.testing.assert_allclose(times[1:], 1.0 / np.abs(b_star[order]), rtol=1e-10)
    for k in range(1, 5):
        expect = np.zeros(6)
        expect[order[:k]] = b_star[order[:k]]
        np.testing.assert_allclose(saddles[k], expect, atol=1e-10)
    for a in (0.5, 2.0):
        for alpha in (1e-3, 1e-8):
            t_half = float(orthogonal_time(a / 2, beta_star=a, alpha=alpha))
            expansion = (2 * np.log(1 / alpha) + np.log(2 * a)) / (2 * a) - alpha**2 / (2 * a**2)
            assert abs(t_half - expansion) < 10 * alpha**4 / a**4 + 1e-12 * expansion
    # orthogonal_time inverts orthogonal_trajectory
    t = orthogonal_time(0.3, beta_star=-0.8, alpha=1e-4)
    np.testing.assert_allclose(orthogonal_trajectory(t, beta_star=-0.8, alpha=1e-4), -0.3, rtol=1e-10)


# ------------------------------------------------------------------ Algorithm 1

@pytest.mark.parametrize("shape", [(6, 8), (16, 4)])
def test_algorithm_invariants(shape):
    """Each saddle minimises L on its signed face (KKT), the dual path stays in
    ∂‖β‖₁, losses fall, t̃₁ = 1/max|b|, and the last saddle is a global minimiser:
    least squares (P > d) or the minimum-ℓ1 interpolator (P < d, by linprog)."""
    p, d = shape
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        x = rng.standard_normal((p, d))
        y = x @ (rng.standard_normal(d) * (rng.uniform(size=d) < 0.5)) + 0.1 * rng.standard_normal(p)
        path = incremental_learning(x, y)
        assert not np.isfinite(path.times[-1]), "path did not end within 2d jumps"
        times, saddles = _trimmed(path)
        g_mat, b = np.asarray(x.T @ x / p), np.asarray(x.T @ y / p)
        assert abs(times[1] - 1.0 / np.max(np.abs(b))) < 1e-12 * times[1]
        losses = np.asarray(saddle_losses(saddles, x, y))
        assert np.all(np.diff(losses) < 0)
        ends = np.append(times[1:], times[-1] + 1.0)
        s_end = np.asarray(dual_path(ends, path.times, path.saddles, x, y))  # dual just before each jump
        for k in range(1, len(times)):
            beta, s = saddles[k], s_end[k]
            grad = g_mat @ beta - b
            on = np.abs(beta) > 0
            assert np.all(np.abs(grad[on]) < 1e-9)  # stationary on its support
            assert np.all(np.abs(s) <= 1 + 1e-9)
            np.testing.assert_allclose(s[on], np.sign(beta[on]), atol=1e-9)
        final = saddles[-1]
        if p > d:
            np.testing.assert_allclose(final, np.linalg.lstsq(g_mat, b, rcond=None)[0], atol=1e-9)
        else:
            xn, yn = np.asarray(x), np.asarray(y)  # min ‖β‖₁ s.t. Xβ = y, β = β⁺ − β⁻
            lp = scipy.optimize.linprog(np.ones(2 * d), A_eq=np.hstack([xn, -xn]), b_eq=yn, bounds=(0, None))
            np.testing.assert_allclose(np.abs(final).sum(), lp.fun, rtol=1e-8)
            np.testing.assert_allclose(xn @ final, yn, atol=1e-9)


def test_algorithm_vmaps_and_checks_input():
    x, y = _gaussian_problem(41, 6, 8, (2.0, -1.3, 0.8))
    ys = np.stack([y, -y, 2 * y])
    batched = jax.vmap(lambda yy: incremental_learning(x, yy))(ys)
    for i in range(3):
        one = incremental_learning(x, ys[i])
        np.testing.assert_allclose(batched.times[i], one.times, rtol=1e-12)
        np.testing.assert_allclose(batched.saddles[i], one.saddles, atol=1e-12)
    # sign symmetry and the scaling t̃ → t̃/c, β → cβ for y → cy
    np.testing.assert_allclose(batched.saddles[1], -batched.saddles[0], atol=1e-12)
    np.testing.assert_allclose(batched.times[2][1:], batched.times[0][1:] / 2, rtol=1e-12)
    with pytest.raises(ValueError, match="y.shape"):
        incremental_learning(x, y[:, None])
    with pytest.raises(ValueError, match="x.shape"):
        incremental_learning(x[0], y)
    with pytest.raises(ValueError, match="max_jumps=0"):
        incremental_learning(x, y, max_jumps=0)


def test_deactivation_path_matches_flow():
    """P < d problem whose last jump switches two coordinates off and one on
    (support {0, 1, 4, 7} → {0, 1, 2}):
    simulated jump times, extrapolated to ε = 1/ln(1/α) → 0 by a quadratic in ε
    (``dynamics.extrapolation.extrapolate_to_zero``), hit Algorithm 1's within that
    extrapolation's own error bound (its distance to the line's intercept, plus the
    grid-reading error of each time pushed through the fit)."""
    x, y = _gaussian_problem(41, 6, 8, (2.0, -1.3, 0.8))
    times, saddles = _trimmed(incremental_learning(x, y))
    sizes = np.sum(np.abs(saddles) > 0, axis=1)
    assert np.any(np.diff(sizes) < 0), "expected a coordinate to switch off"
    alphas = (1e-4, 1e-6, 1e-8)
    t = np.linspace(0.0, 1.3 * times[-1], 1200)
    losses, betas = _flows(x, y, alphas, t)
    measured = _jump_times(t, losses, np.asarray(saddle_losses(saddles, x, y)))
    eps = 1.0 / np.log(1.0 / np.asarray(alphas))
    read = diagonal_sparse.jump_time_read_errors({"t_rescaled": t, "loss": losses,
                                                   "saddle_losses": np.asarray(saddle_losses(saddles, x, y))})
    intercept, bound = extrapolate_to_zero(eps, measured, read)
    assert np.all(np.abs(intercept - times[1:]) <= bound), (intercept, times[1:], bound)
    # Mid-plateau of every saddle but the last, the simulated support at α = 1e-8 is the
    # saddle's: coordinates off there have |sᵢ| ≤ 0.92 here and are O(α^{2(1−|sᵢ|)}).
    for k in range(1, len(times) - 1):
        b_sim = betas[-1][np.searchsorted(t, 0.5 * (times[k] + times[k + 1]))]
        np.testing.assert_array_equal(np.abs(b_sim) > 0.05, np.abs(saddles[k]) > 0)
    # After the last jump ∇L(β_K) = 0 (β_K interpolates), so the dual is frozen and the
    # coordinates that switched off at it (here 4 and 7) keep |sᵢ| = 1: they do not decay
    # like a power of α but algebraically in real time, dβᵢ/dt = −2|βᵢ|∇ᵢL with ∇L linear
    # in the off coordinates, so βᵢ ≈ cᵢ/(t − t_K) and the support couplings shift the rest
    # by O(β_off). Hence β(t̃) − β_K ≈ c/((t̃ − t̃_K) ln(1/α)) at fixed t̃ > t̃_K: the limit
    # holds, with a 1/ln(1/α) rate. Check that (β − β_K)·ln(1/α) at t̃ = 1.3 t̃_K agrees
    # across α = 1e-4 … 1e-8 (a power α^c would change it by 10^{4c}) and is O(1).
    # The neglected real-time offset of the jump is O(1) against (t̃ − t̃_K) ln(1/α) ≥ 8,
    # measured spread 4.2% of max|c| ≈ 2.06 (largest at α = 1e-4): tol 10% of max|c|.
    off = (np.abs(saddles[-1]) == 0) & (np.abs(saddles[-2]) > 0)
    assert np.any(off), "expected coordinates switched off at the last jump"
    scaled = (betas[:, -1] - saddles[-1]) * np.log(1.0 / np.asarray(alphas))[:, None]
    c_max = np.max(np.abs(scaled))
    assert 0.1 < c_max < 10.0, scaled
    np.testing.assert_allclose(scaled, np.broadcast_to(scaled[-1], scaled.shape), atol=0.1 * c_max)
    np.testing.assert_array_equal(np.sign(betas[-1, -1, off]), np.sign(saddles[-2][off]))


def test_extrapolate_to_zero_is_exact_for_a_quadratic_and_bounds_a_cubic():
    eps = 1.0 / np.log(1.0 / np.array([1e-4, 1e-5, 1e-6, 1e-8, 1e-10, 1e-12]))  # the experiment's fit range
    # a quadratic in ε: the quadratic fit is exact, the bound is |c₂ b₂|, b₂ = intercept of the line through εᵢ²
    v = 1.5 + 0.7 * eps - 2.0 * eps**2
    b2 = np.polyfit(eps, eps**2, 1)[1]
    value, bound = extrapolate_to_zero(eps, np.stack([v, 2 * v], axis=1))
    np.testing.assert_allclose(value, [1.5, 3.0], rtol=1e-10)
    np.testing.assert_allclose(bound, [2.0 * abs(b2), 4.0 * abs(b2)], rtol=1e-8)
    # a series with a cubic term inside the docstring's condition |c₃/c₂| ≤ |b₂|/(|q₃| + |b₃ − q₃|):
    # the error of the returned intercept stays inside the bound
    line, quad = (np.linalg.pinv(np.vander(eps, k, increasing=True))[0] for k in (2, 3))
    limit = abs(line @ eps**2) / (abs(quad @ eps**3) + abs((line - quad) @ eps**3))
    assert 3.0 < limit < 4.0  # the docstring's 3.1-3.5
    for c3 in (-0.99 * limit, -1.0, 1.0, 0.99 * limit):
        w = 1.0 + 0.5 * eps + 1.0 * eps**2 + c3 * eps**3
        value, bound = extrapolate_to_zero(eps, w)
        assert abs(value - 1.0) <= bound, (c3, value, bound)
    # read errors add Σ|wᵢ|eᵢ: a constant error e shifts an exact fit by at most Σ|wᵢ| e ≥ e
    _, with_read = extrapolate_to_zero(eps, v, np.full(eps.shape, 1e-6))
    _, without = extrapolate_to_zero(eps, v)
    assert with_read - without >= 1e-6 * (1 - 1e-9)
    with pytest.raises(ValueError, match="eps"):
        extrapolate_to_zero(eps[:2], v[:2])
    with pytest.raises(ValueError, match="values"):
        extrapolate_to_zero(eps, v[:3])


def test_crossing_error_bounds_linear_interpolation():
    # L(t) = e^{−t} crosses 0.5 at ln 2; reading it by linear interpolation on a grid of step h errs by
    # ≤ h²/8 · max L''/min L' over the bracket (≤ h²/8 · e^{h}), which crossing_error estimates from the records
    for h in (0.05, 0.2):
        t = np.arange(0.0, 3.0, h)
        loss = np.exp(-t)
        read = diagonal_sparse._first_below(t, loss, 0.5)
        est = crossing_error(t, loss, 0.5)
        assert abs(read - np.log(2.0)) <= est
        assert est <= h**2 / 8 * np.exp(2 * h)


# ------------------------------------------------------------------ experiment

@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    cfg = diagonal_sparse.smoke()
    return cfg, run_experiment(diagonal_sparse, cfg, tmp_path_factory.mktemp("diag") / "run")


def test_experiment_smoke_passes(smoke_run):
    cfg, result = smoke_run
    failed = [r["quantity"] for r in result.rows if not r["passed"]]
    assert not failed, failed
    for name in ("results.npz", "meta.json", "verify.json", "saddles.png", "contrast.png"):
        assert (result.out_dir / name).is_file(), name
    assert len(json.loads((result.out_dir / "verify.json").read_text())) == len(result.rows)


def test_jump_time_error_shrinks_like_one_over_log(smoke_run):
    """Test (a): the simulated jump times at α = 1e-3 … 1e-8 converge to Algorithm 1's.

    The error shrinks monotonically with α; at α = 1e-6 it is below
    t̃_k/ln(1/α) (the whitened-input correction ln(2|β*|)/(2|β*| ln(1/α)) relative
    to t̃ = 1/|β*| is below 1/ln(1/α) for 0.07 < |β*| < 3.7); and it is
    C_k/ln(1/α): err·ln(1/α) agrees at α = 1e-6 and 1e-8 within 10%.
    """
    cfg, result = smoke_run
    a = result.arrays
    alphas, times = a["alphas"], a["jump_times"][1:]
    assert list(alphas) == sorted(alphas, reverse=True) and 1e-6 in alphas and 1e-8 in alphas
    err = diagonal_sparse.measured_jump_times(a) - times
    assert np.all(np.diff(np.abs(err), axis=0) < 0), np.abs(err)
    eps = 1.0 / np.log(1.0 / alphas)
    i6, i8 = list(alphas).index(1e-6), list(alphas).index(1e-8)
    assert np.all(np.abs(err[i6]) < eps[i6] * times), (err[i6], eps[i6] * times)
    c6, c8 = err[i6] / eps[i6], err[i8] / eps[i8]
    np.testing.assert_allclose(c6, c8, rtol=0.1)


def test_saddles_approached_closer_as_alpha_shrinks(smoke_run):
    # The closest approach to each saddle shrinks like a power of α.
    _, result = smoke_run
    a = result.arrays
    t, times, saddles = a["t_rescaled"], a["jump_times"], a["saddles"]
    ends = np.append(times[1:], np.inf)
    for k in range(1, len(times)):
        window = (t >= times[k]) & (t < ends[k])
        dist = [np.min(np.max(np.abs(b[window] - saddles[k]), axis=1)) for b in a["beta"]]
        assert np.all(np.diff(dist) < 0), (k, dist)


def test_plateau_reading_bounds_hold_at_every_alpha(smoke_run):
    # The saddle-value tolerance (``plateau_readings``) is a derived bound on |β − β_k| at the
    # theory's plateau midpoints, claimed for any α; the verify table uses the smallest α only.
    # Check it at every α of the smoke run (1e-3 … 1e-8), and that it shrinks with α.
    _, result = smoke_run
    a = result.arrays
    previous = None
    for i in np.argsort(a["alphas"])[::-1]:
        idx, tols = diagonal_sparse.plateau_readings(a, float(a["alphas"][i]))
        dev = np.max(np.abs(a["beta"][i][idx] - a["saddles"][1:]), axis=1)
        assert np.all(dev <= tols), (a["alphas"][i], dev, tols)
        if previous is not None:
            assert np.all(tols < previous)
        previous = tols


def test_linear_contrast_final_error_bound_holds(smoke_run):
    # lin_final_error is the theory's bound on max|W − W*| at the end of the linear contrast
    cfg, result = smoke_run
    a = result.arrays
    bound = diagonal_sparse.lin_final_error(cfg, a["lin_w_star"])
    assert np.max(np.abs(a["lin_w_final"] - a["lin_w_star"])) <= bound < cfg.threshold / 2


def test_experiment_config_rejects_bad_values():
    with pytest.raises(ValueError, match="alphas"):
        diagonal_sparse.Config(alphas=(0.5,))
    with pytest.raises(ValueError, match="beta_star"):
        diagonal_sparse.Config(beta_star=(1.0, 0.0))
    with pytest.raises(ValueError, match="beta_star"):
        diagonal_sparse.Config(d=2)
    with pytest.raises(ValueError, match="horizon"):
        diagonal_sparse.Config(horizon_escapes=0.5)
