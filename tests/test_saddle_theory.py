"""theory.saddle (saddle-to-saddle from small random init) against float64 gradient flow.

Networks: sizes (8, h, ..., h, 8), i.i.d. N(0, σ²) init in every layer, white
inputs, population loss L(W) = ½ tr Σyy − tr(WΣyxᵀ) + ½‖W‖². Transition times
are medians over seeds of the time each mode reaches u_k = s_k/2.
"""
import functools

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics
import tasks
from dynamics.plateaus import detect_plateaus
from models import linear
from theory.linear import deep_mode_time
from theory.deep_escape import _sample_process, escape_statistics
from theory.linear import mode_time
from theory.saddle import effective_u0, escape_constant, plateau_losses, rank_staircase, transition_times

pytestmark = pytest.mark.strict_dtypes

S = (4.0, 2.0, 1.0)


def simulate(depth, width, init_scale, n_seeds, s=S, horizon=1.5):
    """Gradient flow of n_seeds random inits; (task, t, loss (seeds, T), modes (seeds, T, r)).

    Recorded on a log grid from 2% of the first predicted transition to
    ``horizon`` × the last. Cached, so test_plateaus.py reuses the same runs.
    """
    return _simulate(int(depth), int(width), float(init_scale), int(n_seeds), tuple(float(x) for x in s), float(horizon))


@functools.lru_cache(maxsize=None)
def _simulate(depth, width, init_scale, n_seeds, s, horizon, n_io=8, n_points=600, seed=0):
    task = tasks.teacher(jax.random.key(100 + seed), n_in=n_io, n_out=n_io, s=s)
    sizes = (n_io,) + (width,) * (depth - 1) + (n_io,)
    predicted = np.asarray(transition_times(s, init_scale=init_scale, depth=depth, width=width))
    times = np.concatenate([[0.0], np.geomspace(0.02 * predicted[0], horizon * predicted[-1], n_points)])

    def loss(params, _):
        return dynamics.linear_loss_from_stats(linear.end_to_end(params), task.sigma_xx, task.sigma_yx, task.trace_yy)

    def observe(params):
        return linear.mode_strengths(params, task.u, task.v)

    def run(key):
        params = linear.init_gaussian(key, sizes, std=init_scale)
        traj = dynamics.gradient_flow(loss, params, None, times=times, observe=observe,
                                      rtol=1e-6, atol=1e-6 * init_scale**2)
        return traj.loss, traj.stats

    keys = jax.random.split(jax.random.key(seed), n_seeds)
    losses, modes = jax.vmap(run)(keys)
    return task, times, np.asarray(losses), np.asarray(modes)


def crossing_times(t, modes, s):
    """(seeds, r) first time each mode strength reaches s_k/2 (interpolated in ln t); inf if never."""
    out = np.full(modes.shape[::2], np.inf)
    for i in range(modes.shape[0]):
        for k, sk in enumerate(s):
            j = int(np.argmax(modes[i, :, k] >= sk / 2))
            if j > 0:
                y0, y1 = modes[i, j - 1, k], modes[i, j, k]
                f = (sk / 2 - y0) / (y1 - y0)
                out[i, k] = np.exp(np.log(t[j - 1]) + f * np.log(t[j] / t[j - 1]))
    return out


def plateau_rel_err(sim, theory, trace_yy):
    """|sim − theory| / theory, or / (½ tr Σyy) for a plateau at zero loss."""
    scale = np.where(np.abs(theory) > 1e-9 * trace_yy, np.abs(theory), 0.5 * trace_yy)
    return np.abs(sim - theory) / scale


# ---------------------------------------------------------------- closed forms


def test_plateau_losses_formula():
    got = plateau_losses(jnp.array([1.0, 4.0, 2.0]), trace_yy=25.0)  # unsorted on purpose
    np.testing.assert_allclose(got, [12.5, 4.5, 2.5, 2.0])
    np.testing.assert_allclose(jax.jit(lambda s: plateau_losses(s, trace_yy=21.0))(jnp.array(S)), [10.5, 2.5, 0.5, 0.0])
    task = tasks.teacher(jax.random.key(0), n_in=5, n_out=4, s=S)
    assert float(plateau_losses(task.s, trace_yy=task.trace_yy)[-1]) == pytest.approx(0.0, abs=1e-12)


def test_effective_u0_formulas():
    sigma, h = 1e-4, 8
    u0 = np.asarray(effective_u0(S, init_scale=sigma, depth=2, width=h))
    from scipy.stats import chi2
    np.testing.assert_allclose(u0, 0.5 * sigma**2 * chi2.median([8, 7, 6]), rtol=1e-10)
    u3 = np.asarray(effective_u0(S, init_scale=sigma, depth=3, width=h))
    c = escape_statistics(S, depth=3, width=h).constant
    np.testing.assert_allclose(u3, (sigma * np.sqrt(h) / c) ** 3, rtol=1e-10)
    # one mode: C_1 is the one-mode constant C_L(h) (same inits, same integrator)
    assert escape_statistics((2.0,), depth=3, width=h).constant[0] == pytest.approx(escape_constant(3, h), rel=1e-12)


def test_effective_u0_depth2_against_simulated_inits():
    """effective_u0 claims: the aligned logistic started at u0_eff,k reaches s_k/2 at the
    median time over i.i.d. N(0, σ²) inits. Invert the logistic at each simulated seed's
    crossing time (u0 = s d/(1 + d), d = e^{−2 s t}) and compare the median implied u0 with
    u0_eff,k. Tolerance: 3 Monte-Carlo standard errors of the median of ln u0,
    1.2533·std(ln χ²_{h−k+1})/√n (the theory's own law of u0; std ln χ²_m ≈ √(2/m)), plus the
    crossing-time interpolation error (600 log-spaced points: ≤ 1% in t, × 2 s t ≈ 0.15 in
    ln u0 at most, bounded here by 2 s_k t_k × one grid step in ln t)."""
    depth, h, sigma, n = 2, 8, 1e-4, 48
    task, t, losses, modes = simulate(depth, h, sigma, n)
    ct = crossing_times(t, modes, S)
    assert np.all(np.isfinite(ct))
    s = np.asarray(S)
    d = np.exp(-2 * s * ct)
    implied = s * d / (1 + d)
    theory = np.asarray(effective_u0(S, init_scale=sigma, depth=2, width=h))
    from scipy.stats import chi2
    rng = np.random.default_rng(0)
    spread = np.array([np.std(np.log(chi2.rvs(h - k, size=20000, random_state=rng))) for k in range(len(S))])
    grid = np.log(t[2] / t[1])
    tol = 3 * 1.2533 * spread / np.sqrt(n) + 2 * s * np.median(ct, axis=0) * grid
    err = np.abs(np.log(np.median(implied, axis=0) / theory))
    assert np.all(err < tol), (np.median(implied, axis=0), theory, err, tol)


def test_escape_process_matches_an_independent_integrator():
    """One-mode scale-free escape (theory.deep_escape) per init against scipy's DOP853 on
    the same init: gradient ascent on f = bᵀ M_{L−1}⋯M_2 a to |a| = 1e3, plus the aligned
    balanced remainder. Both are accurate to < 1e-6 there; the process's RK4 (step 0.2)
    to ≈ 3e-4, the remainder to O(1/|a|²): tolerance 2e-3."""
    from scipy.integrate import solve_ivp

    for depth, h in [(3, 3), (4, 2)]:
        n = 4
        got = _sample_process(np.array([1.0]), depth, h, n, 7, 0.2, 1e2)[:, 0]
        rng = np.random.default_rng(7)  # the same draws, in the same order
        a0 = rng.standard_normal((n, 1, h)) / np.sqrt(h)
        b0 = rng.standard_normal((n, 1, h)) / np.sqrt(h)
        m0 = rng.standard_normal((n, depth - 2, h, h)) / np.sqrt(h)
        for i in range(n):
            shapes = [(h,), (h,)] + [(h, h)] * (depth - 2)
            sizes = np.cumsum([0] + [int(np.prod(x)) for x in shapes])

            def unpack(y):
                return [y[sizes[j]:sizes[j + 1]].reshape(shapes[j]) for j in range(len(shapes))]

            def rhs(_, y):
                a, b, *ms = unpack(y)
                fwd = [a]
                for m in ms:
                    fwd.append(m @ fwd[-1])
                bwd = [b]
                for m in reversed(ms):
                    bwd.append(m.T @ bwd[-1])
                bwd = bwd[::-1]
                return np.concatenate([bwd[0], fwd[-1]] + [np.outer(bwd[l + 1], fwd[l]).ravel() for l in range(len(ms))])

            def event(_, y):
                return np.linalg.norm(unpack(y)[0]) - 1e3
            event.terminal = True
            y0 = np.concatenate([a0[i, 0], b0[i, 0]] + [m.ravel() for m in m0[i]])
            sol = solve_ivp(rhs, (0, 100), y0, method="DOP853", rtol=1e-11, atol=1e-12, events=event)
            a, b, *ms = unpack(sol.y[:, -1])
            z = a
            for m in ms:
                z = m @ z
            expected = sol.t[-1] + (b @ z) ** (-(depth - 2) / depth) / (depth - 2)
            assert got[i] == pytest.approx(expected, rel=2e-3), (depth, h, i)


def test_transition_time_scaling_laws():
    s = np.array(S)
    t2 = {sg: np.asarray(transition_times(S, init_scale=sg, depth=2, width=8)) for sg in (1e-4, 1e-6)}
    # depth 2: t ≈ (τ/2s) ln(s / 2u0), so shrinking σ 100× adds (τ/2s)·ln(10^4)
    np.testing.assert_allclose(t2[1e-6] - t2[1e-4], np.log(1e4) / (2 * s), rtol=1e-6)
    # depth L ≥ 3: t ∝ τ C_k / (s σ^{L−2} h^{(L−2)/2})
    for depth in (3, 4):
        a, b = (np.asarray(transition_times(S, init_scale=sg, depth=depth, width=16)) for sg in (1e-5, 1e-6))
        np.testing.assert_allclose(b / a, 10.0 ** (depth - 2), rtol=1e-3)
        lead = escape_statistics(S, depth=depth, width=16).constant / (s * 1e-6 ** (depth - 2) * 16 ** ((depth - 2) / 2))
        np.testing.assert_allclose(b, lead, rtol=1e-3)
    # τ rescales time; a fraction other than ½ matches deep_mode_time from the same u0
    np.testing.assert_allclose(transition_times(S, init_scale=1e-4, depth=3, width=8, tau=2.5),
                               2.5 * np.asarray(transition_times(S, init_scale=1e-4, depth=3, width=8)), rtol=1e-12)
    u0 = effective_u0(S, init_scale=1e-4, depth=3, width=8)
    np.testing.assert_allclose(transition_times(S, init_scale=1e-4, depth=3, width=8, fraction=0.9),
                               deep_mode_time(u0, 0.9 * s, s=s, depth=3), rtol=1e-12)
    # quantiles are ordered, and the median is quantile ½
    q = [np.asarray(transition_times(S, init_scale=1e-4, depth=dp, width=8, quantile=p)) for dp in (2, 3) for p in (0.2, 0.5, 0.9999)]
    assert np.all(q[0] < q[1]) and np.all(q[1] < q[2]) and np.all(q[3] < q[4]) and np.all(q[4] < q[5])


def test_traceable_under_jit_and_vmap():
    f = jax.jit(lambda s, sigma, tau: transition_times(s, init_scale=sigma, depth=3, width=8, tau=tau))
    np.testing.assert_allclose(f(jnp.array(S), 1e-4, 2.0), transition_times(S, init_scale=1e-4, depth=3, width=8, tau=2.0))
    sigmas = jnp.array([1e-4, 1e-5])
    batch = jax.vmap(lambda sg: transition_times(S, init_scale=sg, depth=2, width=8))(sigmas)
    np.testing.assert_allclose(batch[1], transition_times(S, init_scale=1e-5, depth=2, width=8), rtol=1e-12)


def test_modes_beyond_width_and_validation():
    t = np.asarray(transition_times((4.0, 2.0, 1.0, 0.5), init_scale=1e-4, depth=3, width=2))
    assert np.all(np.isfinite(t[:2])) and np.all(np.isinf(t[2:]))
    with pytest.raises(ValueError, match="depth"):
        transition_times(S, init_scale=1e-4, depth=1, width=8)
    with pytest.raises(ValueError, match="init_scale"):
        transition_times(S, init_scale=0.0, depth=2, width=8)
    with pytest.raises(ValueError, match="depth ≥ 3"):
        escape_constant(2, 8)
    with pytest.raises(ValueError, match="quantile"):
        transition_times(S, init_scale=1e-4, depth=2, width=8, quantile=1.0)


def test_rank_staircase_matches_plateaus_and_times():
    t_half = np.asarray(transition_times(S, init_scale=1e-5, depth=3, width=16))
    t = np.concatenate([[0.0], np.geomspace(0.05 * t_half[0], 3 * t_half[-1], 400)])
    loss, rank = rank_staircase(t, S, trace_yy=21.0, init_scale=1e-5, depth=3, width=16)
    p = detect_plateaus(t, np.asarray(loss))
    np.testing.assert_allclose(p.plateau_losses, plateau_losses(S, trace_yy=21.0), rtol=1e-3, atol=1e-6)
    # level ¾ ↔ u = s/2; the depth-3 drops are far sharper than the grid, so the
    # crossing is known to one grid step in ln t (here 1.9%)
    np.testing.assert_allclose(p.transition_times, t_half, rtol=0.02)
    assert list(np.asarray(rank)[[0, -1]]) == [0, 3]


# ---------------------------------------------------------------- simulation


def _check_against_simulation(depth, width, init_scale, n_seeds, s=S, horizon=1.5, tol_time=0.10, tol_plateau=0.02):
    task, t, losses, modes = simulate(depth, width, init_scale, n_seeds, s, horizon)
    theory_t = np.asarray(transition_times(s, init_scale=init_scale, depth=depth, width=width))
    sim_t = np.median(crossing_times(t, modes, s), axis=0)
    rel_t = np.abs(sim_t / theory_t - 1)
    assert np.all(rel_t < tol_time), (depth, width, init_scale, sim_t, theory_t, rel_t)

    theory_pl = np.asarray(plateau_losses(s, trace_yy=task.trace_yy))
    found = [detect_plateaus(t, loss) for loss in losses]
    finished = np.all(modes[:, -1, :] > 0.9 * np.asarray(s), axis=1)  # seeds that learned every mode
    assert np.mean(finished) > 0.5
    assert [p.n_plateaus for p, done in zip(found, finished) if done] == [len(theory_pl)] * int(finished.sum())
    found = [p for p, done in zip(found, finished) if done]
    sim_pl = np.median([p.plateau_losses for p in found], axis=0)
    assert np.all(plateau_rel_err(sim_pl, theory_pl, float(task.trace_yy)) < tol_plateau), (sim_pl, theory_pl)
    # the detector's transitions (level ¾ of each drop) are the u_k = s_k/2 crossings
    det_t = np.median([p.transition_times for p in found], axis=0)
    assert np.all(np.abs(det_t / theory_t - 1) < tol_time), (det_t, theory_t)
    return rel_t


def test_depth2_matches_simulation():
    _check_against_simulation(depth=2, width=8, init_scale=1e-4, n_seeds=6)


def test_depth3_matches_simulation():
    # Width 32: the spread of escape times over inits is ≈ 0.5/√h for mode 1 (≈ 10% per seed for
    # mode 3, with a tail to late times), so 8 seeds pin the medians to ≈ 4% (16 seeds, ≈ 3%, in
    # the slow set), inside the 10% tolerance.
    _check_against_simulation(depth=3, width=32, init_scale=1e-4, n_seeds=8)


@pytest.mark.slow
@pytest.mark.parametrize("depth,width,init_scale,n_seeds,s,horizon", [
    (2, 16, 1e-6, 8, S, 1.5), (2, 8, 1e-5, 8, S, 1.5), (3, 32, 1e-4, 16, S, 1.5), (3, 8, 1e-4, 24, S, 3.0), (3, 16, 1e-5, 12, S, 2.0),
    (4, 32, 1e-3, 16, (2.0, 1.0), 2.0),
])
def test_matches_simulation_slow(depth, width, init_scale, n_seeds, s, horizon):
    # Explicit Tsit5 is held to dt ≈ 3/(L s₁^{2−2/L}) once mode 1 is learned, so a run costs ∝ the
    # plateau length ∝ σ^{−(L−2)}: depth 4 is simulated at σ = 1e-3 (σ = 1e-4 takes ~10⁷ steps).
    # Width 8 spreads escape times by ~20% per seed, so that case takes 24 seeds and a long horizon.
    rel = _check_against_simulation(depth, width, init_scale, n_seeds, s, horizon)
    print(f"depth {depth} width {width} σ {init_scale:g}: transition-time rel. errors {np.round(rel, 4)}")


@pytest.mark.slow
@pytest.mark.parametrize("depth,width", [(3, 8), (4, 8), (5, 16)])
def test_escape_constant_monte_carlo(depth, width):
    """Re-estimate C_L(h), the median blow-up time of gradient ascent on
    f = b̃ᵀ M_{L−1}⋯M_2 ã from ã, b̃ ~ N(0, I/h), M ~ N(0, 1/h) entries."""
    n = 400

    def blow_up(key):
        keys = jax.random.split(key, depth)
        a, b = (jax.random.normal(k, (width,)) / np.sqrt(width) for k in keys[:2])
        ms = [jax.random.normal(k, (width, width)) / np.sqrt(width) for k in keys[2:]]

        def f(p):
            z = p[0]
            for m in p[1]:
                z = m @ z
            return p[2] @ z

        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, p, _: jax.grad(f)(p)), diffrax.Tsit5(), 0.0, 1e4, None, (a, ms, b),
            stepsize_controller=diffrax.PIDController(rtol=1e-7, atol=1e-10), max_steps=200_000,
            event=diffrax.Event(lambda t, p, _, **kw: jnp.sum(p[0] ** 2) > 1e6))
        end = jax.tree_util.tree_map(lambda x: x[-1], sol.ys)
        # finish with the aligned balanced blow-up from the last state
        return sol.ts[-1] + 1.0 / ((depth - 2) * f(end) ** ((depth - 2) / depth))

    times = np.asarray(jax.jit(jax.vmap(blow_up))(jax.random.split(jax.random.key(depth), n)))
    median, se = np.median(times), 1.2533 * np.std(times) / np.sqrt(n)
    assert abs(median - escape_constant(depth, width)) < 3 * se + 0.01 * median
