"""theory.saddle.plateau_loss_bias (the saddle-to-saddle plateau rows' tolerance) against float64 flow.

One small deep linear net per depth from i.i.d. N(0, σ²) init, white inputs,
gradient flow recorded on a fine log grid. The bound must hold at EVERY record
strictly between two successive half-learning times, not only where the
experiment reads (experiments/saddle_to_saddle.py, ``plateau_tolerances``).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics
import tasks
from dynamics.plateaus import rise_times
from models import linear
from theory.linear import deep_mode_strength, deep_mode_time, mode_strength
from theory.saddle import aligned_mode_through_half, off_mode_bound, plateau_loss_bias, plateau_losses

pytestmark = pytest.mark.strict_dtypes

S = (4.0, 2.0, 1.0)
RTOL = 1e-9  # flow tolerance: the solver term N·rtol·s of the bound is then far below the others


@functools.lru_cache(maxsize=None)
def _flow(depth, width, sigma, end, n_points=400, n_io=4):
    task = tasks.teacher(jax.random.key(7), n_in=n_io, n_out=n_io, s=S)
    sizes = (n_io,) + (width,) * (depth - 1) + (n_io,)
    times = np.concatenate([[0.0], np.geomspace(1e-2, end, n_points)])

    def loss(params, _):
        return dynamics.linear_loss_from_stats(linear.end_to_end(params), task.sigma_xx, task.sigma_yx, task.trace_yy)

    def observe(params):
        return {"modes": linear.mode_strengths(params, task.u, task.v),
                "svals": jnp.linalg.svd(linear.end_to_end(params), compute_uv=False)}

    params = linear.init_gaussian(jax.random.key(3), sizes, std=sigma)
    traj = dynamics.gradient_flow(loss, params, None, times=times, observe=observe, rtol=RTOL, atol=RTOL * sigma**2)
    return task, times, np.asarray(traj.loss), np.asarray(traj.stats["modes"]), np.asarray(traj.stats["svals"])


def test_aligned_mode_through_half_is_the_shifted_aligned_solution():
    dt = jnp.array([-3.0, -0.4, 0.0, 0.25, 2.0])
    u, gap = aligned_mode_through_half(dt, s=2.0, depth=2)
    np.testing.assert_allclose(u, 2.0 / (1.0 + np.exp(-4.0 * np.asarray(dt))), rtol=1e-14)  # logistic, by hand
    np.testing.assert_allclose(u[2:], mode_strength(dt[2:], s=2.0, u0=1.0), rtol=1e-13)
    np.testing.assert_allclose(u + gap, 2.0, rtol=1e-15)
    u3, _ = aligned_mode_through_half(dt, s=2.0, depth=3)
    np.testing.assert_allclose(u3[2:], deep_mode_strength(dt[2:], s=2.0, u0=1.0, depth=3), rtol=1e-12)
    # backward: the time from U(dt < 0) to s/2 is −dt (closed-form antiderivative, a second route)
    np.testing.assert_allclose(deep_mode_time(u3[:2], 1.0, s=2.0, depth=3), -dt[:2], rtol=1e-10)


@pytest.mark.parametrize("depth, width, sigma, end", [(2, 4, 1e-4, 18.0), pytest.param(3, 4, 1e-3, 3000.0, marks=pytest.mark.slow)])  # depth 3: ~11 CPU s
def test_plateau_loss_stays_within_the_bias_bound_between_transitions(depth, width, sigma, end):
    task, t, loss, modes, svals = _flow(depth, width, sigma, end)
    s = np.asarray(task.s)
    half = rise_times(t, modes, s / 2)  # (r,) this run's own half-learning times
    assert np.all(np.isfinite(half)) and half[-1] < end / 1.5
    # the crossings are interpolated in ln t between records: each time is known to one grid step
    eps = float(np.log(t[2] / t[1]))
    offset = float(np.sum(s * np.abs(modes[0])) + 0.5 * np.sum(svals[0] ** 2))  # the init's own weights
    rounding = 16 * np.finfo(np.float64).eps * 0.5 * float(task.trace_yy)  # n_io² products per sum
    levels = np.asarray(plateau_losses(s, trace_yy=task.trace_yy))
    for k, level in enumerate(levels):
        lo = 0.0 if k == 0 else half[k - 1]
        hi = np.inf if k == len(s) else half[k]
        j = (t > lo) & (t < hi)
        excess, deficit = (np.asarray(b) for b in plateau_loss_bias(t[j], s, half, k, depth=depth, time_rtol=eps,
                                                                   solver_rtol=RTOL))
        off = off_mode_bound(s, k, init_scale=sigma, depth=depth, n_io=4)
        offset_k = offset + off
        dev = loss[j] - level
        assert np.all(dev <= excess + offset_k + rounding), (k, np.max(dev - excess))
        assert np.all(-dev <= deficit + offset_k + rounding), (k, np.max(-dev - deficit))
        # the bound has teeth: at its smallest it is far below a 3% error of a nonzero plateau
        if level > 0:
            assert np.min(np.maximum(excess, deficit) + offset_k + rounding) < 0.03 * level / 3


def test_bad_arguments_are_refused_in_one_line():
    good = dict(init_scale=1e-3, depth=3, n_io=4)
    for k, bad, match in [(4, {}, "k=4"), (1, {"n_io": 0}, "n_io"), (1, {"init_scale": 0.0}, "init_scale"),
                          (1, {"depth": 1}, "depth"), (1, {"confidence": 1.0}, "confidence")]:
        with pytest.raises(ValueError, match=match):
            off_mode_bound(S, k, **{**good, **bad})
    with pytest.raises(ValueError, match="s must be positive"):
        off_mode_bound((1.0, -1.0), 1, **good)
    with pytest.raises(ValueError, match="depth"):
        aligned_mode_through_half(0.0, s=1.0, depth=1)
