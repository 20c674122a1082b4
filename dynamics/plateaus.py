"""Automatic plateau and transition detection on a loss curve.

Saddle-to-saddle dynamics (Zhang, Saxe & Latham, arXiv 2512.20607; Jacot et
al. 2021, arXiv 2106.15933) give loss curves made of flat plateaus joined by
sharp drops. ``detect_plateaus`` finds them on any recorded curve — log-spaced
or linear time grid, gradient flow or GD (t = step, docs/design.md) — without being
told how many there are.

Method. Plateaus of saddle-to-saddle curves are evenly spread in log time
(depth ≥ 3: t_k ∝ 1/s_k) or have widths ∝ log(1/init) (depth 2), and their
heights span orders of magnitude (a mode of strength s removes s²/2 of loss),
so the detector works in the coordinates

    x = ln t,        z = ln(L − L_min + floor · ΔL),      ΔL = max L − min L,

where a plateau is flat whatever its height and a drop of any size is a steep
descent. The curve is resampled on a uniform grid in x, lightly smoothed, and
its log-log slope ρ = −dz/dx (the rate at which the excess loss decays per
e-fold of time) computed. A point is flat when |ρ| < ``slope_tol``, or when it
lies in a deep valley of ρ between two steep drops less than ``window`` apart
(|ρ| below ``valley_frac`` of the smaller of the two peaks); a plateau is
a maximal run of flat points at least ``min_length`` long (in ln t); adjacent
runs whose levels differ by less than ``merge_tol`` of the excess loss above
L_min are merged (no real drop between them). The plateau loss is the median of
the loss over the run, and the transition between plateaus k and k+1 is the
time at which the loss has covered a fraction ``level`` of the drop between
them (linear interpolation in ln t between recorded points).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Plateaus(NamedTuple):
    """Plateaus of a loss curve, in time order.

    plateau_losses: (n,) loss on each plateau (median over the plateau).
    transition_times: (n − 1,) time at which the loss covers the fraction
      ``level`` of the drop from plateau k to plateau k + 1.
    starts, ends: (n,) indices into the input arrays of the first and last
      recorded point of each plateau (inclusive).
    plateau_times: (n,) geometric mid-time of each plateau.
    """

    plateau_losses: np.ndarray
    transition_times: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    plateau_times: np.ndarray

    @property
    def n_plateaus(self) -> int:
        return int(self.plateau_losses.shape[0])


def _runs(mask: np.ndarray) -> list:
    """[(i, j)] inclusive index ranges of the maximal True runs of a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0] - 1))


def _smooth(z: np.ndarray, width: float) -> np.ndarray:
    """Gaussian smoothing with std ``width`` grid points, edges reflected."""
    if width < 0.5:
        return z
    half = int(np.ceil(4 * width))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / width) ** 2)
    padded = np.pad(z, half, mode="reflect")
    return np.convolve(padded, k / k.sum(), mode="valid")


def _running_median(x: np.ndarray, y: np.ndarray, width: float) -> np.ndarray:
    """Median of y over the recorded points within ±width/2 of each x, and at least the two
    neighbours on each side (where points are sparse in ln t); x sorted; width ≤ 0: y.
    On a monotone sequence the median of a window centred in index is its centre."""
    if width <= 0:
        return y
    idx = np.arange(x.size)
    lo = np.minimum(np.searchsorted(x, x - width / 2, side="left"), np.maximum(idx - 2, 0))
    hi = np.maximum(np.searchsorted(x, x + width / 2, side="right"), np.minimum(idx + 3, x.size))
    out = y.copy()
    for i in np.nonzero(hi - lo > 2)[0]:
        out[i] = np.median(y[lo[i] : hi[i]])
    return out


def _crossing_time(t: np.ndarray, y: np.ndarray, lo: int, hi: int, target: float) -> float:
    """First time in t[lo..hi] where y falls to ``target``, interpolated linearly in ln t."""
    below = np.nonzero(y[lo : hi + 1] <= target)[0]
    if below.size == 0:
        return float("nan")
    i = lo + int(below[0])
    if i == lo:
        return float(t[i])
    t0, t1, y0, y1 = t[i - 1], t[i], y[i - 1], y[i]
    f = (y0 - target) / (y0 - y1) if y0 != y1 else 1.0
    if t0 > 0:
        return float(np.exp(np.log(t0) + f * (np.log(t1) - np.log(t0))))
    return float(t0 + f * (t1 - t0))


def rise_times(t, y, level) -> np.ndarray:
    """First time each series in ``y`` (T, ...) rises to ``level``, interpolated in ln t.

    ``level`` broadcasts against ``y[0]``; the result has ``y[0]``'s shape, inf where
    the series never reaches the level or already starts there (no rise to time).
    Between recordings the crossing is interpolated linearly in ln t (in t where
    the earlier recording is t = 0), the natural scale of log-spaced grids.
    """
    t, y = np.asarray(t, float), np.asarray(y, float)
    above = y >= level
    j = np.argmax(above, axis=0)
    ok = above.any(axis=0) & (j > 0)
    i = np.maximum(j - 1, 0)
    y0 = np.take_along_axis(y, i[None], 0)[0]
    y1 = np.take_along_axis(y, j[None], 0)[0]
    t0, t1 = t[i], t[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (level - y0) / (y1 - y0)
        log_interp = np.exp(np.log(t0) + f * np.log(t1 / t0))
    return np.where(ok, np.where(t0 > 0, log_interp, t1), np.inf)


def rise_time_resolution(profile, level: float, ratio: float, *, n_phase: int = 257) -> float:
    """Worst error |ln t_read − ln t*| of ``rise_times`` on a curve of known shape, sampled every
    factor ``ratio`` in time (a log grid), over every position of the crossing between two samples.

    The curve is y = profile(x), x = ln(t/t*), rising, with profile(0) = level (t* the true crossing).
    With samples at x₀ = −φ ln r and x₁ = x₀ + ln r (φ ∈ [0, 1), ``n_phase`` values), ``rise_times``
    reads x̂ = x₀ + (level − y₀)/(y₁ − y₀)·ln r; returned: max_φ |x̂|, a relative error in time (≤ ln r;
    0 for a profile linear in ln t; → ½ ln r for a step). Decided from the grid and the theory's shape
    of the rise, not from the measurement. Our derivation.
    """
    if not ratio > 1.0:
        raise ValueError(f"ratio={ratio!r} is invalid; allowed: a number > 1 (consecutive recording times' ratio)")
    h = np.log(ratio)
    x0 = -h * np.arange(n_phase) / n_phase
    y0, y1 = np.asarray(profile(x0), float), np.asarray(profile(x0 + h), float)
    with np.errstate(divide="ignore", invalid="ignore"):
        read = x0 + np.where(y1 > y0, (level - y0) / (y1 - y0), 0.5) * h
    return float(np.max(np.abs(read)))


def grid_ratio(t, t_near: float, window: float = 1.2) -> float:
    """Largest ratio t_{i+1}/t_i of consecutive positive recording times t_i within [t_near/window, t_near·window]
    (the grid's resolution where a predicted event t_near is to be read; its nearest pair if none lies there)."""
    t = np.asarray(t, float)
    t = t[t > 0]
    r = t[1:] / t[:-1]
    near = (t[1:] >= t_near / window) & (t[:-1] <= t_near * window)
    if not near.any():
        near = np.arange(r.size) == int(np.argmin(np.abs(np.log(t[1:] / t_near))))
    return float(np.max(r[near]))


def detect_plateaus(
    t,
    loss,
    *,
    slope_tol: float = 0.1,
    valley_frac: float = 0.2,
    window: float = 1.0,
    min_length: float = 0.05,
    merge_tol: float = 0.05,
    floor: float = 1e-3,
    level: float = 0.75,
    smooth: float = 0.01,
    denoise: float = 0.1,
    noise_tol: float = 3.0,
    min_drop: float = 0.0,
    n_grid: int = 4096,
) -> Plateaus:
    """Find the plateaus of a loss curve and the transitions between them.

    Args:
      t: (T,) non-decreasing recording times (flow time, or GD step index;
        unit: whatever the caller's t is, every time below is in it);
        points with t ≤ 0 are used for the levels and crossings but not for
        the slope, which is taken in ln t.
      loss: (T,) loss at those times (any unit; levels come back in it).
      slope_tol: a point is flat when the excess loss L − L_min decays by less
        than this per e-fold of time, |d ln(L − L_min + floor·ΔL) / d ln t| < slope_tol
        (unit: e-folds of excess loss per e-fold of time; dimensionless).
      valley_frac, window: a point is also flat when |ρ| is below valley_frac
        (a fraction of ρ, dimensionless) times the smaller of the largest ρ
        within ``window`` (unit: ln t, i.e. e-folds of time) before it and
        after it: the bottom of a valley between two close transitions, where
        the next drop starts before the last has fully settled.
      min_length: shortest plateau, in units of ln t (0.05 ≈ a 5% stretch of time).
      merge_tol: adjacent flat runs whose losses differ by less than this
        fraction (dimensionless) of the excess loss L − L_min of the earlier one
        are one plateau.
      floor: the excess loss is floored at floor·ΔL (a fraction of ΔL =
        max L − min L of the denoised curve), so drops smaller than that are
        not resolved and noise at the end is flat.
      level: the transition from plateau k to k+1 is the time at which the loss
        reaches L_k − level·(L_k − L_{k+1}). The default 0.75 marks the instant
        a linear-network mode is half learned: a mode of strength s moving from
        u = 0 to u lowers the loss by s u − u²/2 = (s²/2)[1 − (1 − u/s)²], which
        is 3/4 of its drop s²/2 at u = s/2 (Saxe et al. 2014, arXiv 1312.6120).
        level = 0.5 gives the loss midpoint, reached at u = (1 − 1/√2) s.
      smooth: std of the Gaussian smoothing of the log-excess, in units of ln t
        (0 disables it).
      denoise: width, in units of ln t, of the running median taken over the
        recorded points before anything else (0 disables it). Real curves are
        not monotone: GD near the edge of stability alternates between two
        branches every step (period 2), SGD's full-data loss jitters with the
        minibatches, large steps throw the loss up for a few steps
        (catapults). None of these is a transition. The running median
        removes jitter and isolated spikes, and the slope and the plateau
        runs are then taken on its running minimum from the left (the
        monotone envelope: a saddle-to-saddle transition only goes down), so
        a bump up, and the return from it, is never a drop. Plateau levels
        and transition crossings are read on the running median (not the
        envelope), so noise does not bias them low. A non-increasing curve
        (up to 1e-9 of its range) is left exactly as it is. Before the median, each
        point is averaged with its two neighbours, weights (1, 2, 1)/4: this
        cancels a period-2 oscillation exactly and moves a smooth curve by
        only a quarter of its second difference.
      noise_tol: adjacent flat runs whose levels differ by less than this many
        standard errors of that difference are one plateau (unit: standard
        errors; 0 disables it). The standard error is σ √(1/n_a + 1/n_b), with
        σ the robust standard deviation (1.4826 × median absolute deviation) of
        the scatter the running median removes, over the two runs, and
        n their numbers of independent values (recorded points, at most one per
        ``denoise`` of ln t). A noise-free curve has no scatter,
        so this changes nothing there.
      min_drop: adjacent flat runs whose levels differ by less than min_drop·ΔL
        (a fraction of the whole drop, dimensionless) are one plateau. Off (0)
        by default, so a small last mode (0.6% of ΔL) keeps its plateau; set it
        for networks whose loss keeps creeping down after the last saddle (e.g.
        a tanh MLP trained at a large step: steps of ~1e-4 ΔL in its tail).
      n_grid: points of the uniform ln t grid the curve is resampled on.

    Returns:
      Plateaus (plateau_losses, transition_times, starts, ends, plateau_times).
      A flat curve has one plateau and no transitions; a single drop between
      two flat stretches has two plateaus (before and after) and one
      transition, matching ``theory.saddle.plateau_losses`` (r modes → r + 1
      plateaus). A curve that does not flatten at its start or end has no
      plateau there. Host-side numpy: not for use under ``jax.jit``.
    """
    t = np.asarray(t, dtype=float).ravel()
    y = loss_arr = np.asarray(loss, dtype=float).ravel()
    if t.shape != y.shape or t.size < 3:
        raise ValueError(f"t and loss must be 1-D of equal length ≥ 3, got shapes {t.shape} and {y.shape}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(y))):
        raise ValueError("t and loss must be finite (a diverged run has no plateaus)")
    if np.any(np.diff(t) < 0):
        raise ValueError("t must be non-decreasing")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if slope_tol <= 0 or min_length < 0 or merge_tol < 0 or floor <= 0 or n_grid < 16 or denoise < 0 or noise_tol < 0 or min_drop < 0:
        raise ValueError(
            f"need slope_tol > 0, min_length ≥ 0, merge_tol ≥ 0, floor > 0, n_grid ≥ 16, denoise ≥ 0, noise_tol ≥ 0, "
            f"min_drop ≥ 0; got {slope_tol}, {min_length}, {merge_tol}, {floor}, {n_grid}, {denoise}, {noise_tol}, {min_drop}"
        )

    positive = t > 0
    if np.count_nonzero(positive) < 3:
        raise ValueError("need at least 3 recorded times t > 0")
    # Denoise ((1, 2, 1)/4 against period 2, running median in ln t), then the
    # monotone envelope for the slope; ``scatter`` is what the median removed
    # (a period-2 oscillation is gone before it, so it does not count as noise).
    y = y.copy()
    yp = y[positive]
    span = float(np.max(yp) - np.min(yp))
    if np.all(np.diff(yp) <= 1e-9 * span):  # already non-increasing: nothing to denoise, results as before
        denoise = 0.0
    if denoise > 0 and yp.size >= 3:
        yp = np.concatenate([yp[:1], (yp[:-2] + 2 * yp[1:-1] + yp[2:]) / 4, yp[-1:]])
    y[positive] = _running_median(np.log(t[positive]), yp, denoise)
    scatter = np.zeros_like(y)
    raw = loss_arr[positive]
    if raw.size >= 2:  # pair means cancel a period-2 oscillation; √2 restores the std of white noise
        pairs = np.concatenate([(raw[:-1] + raw[1:]) / 2, raw[-1:]])
        scatter[positive] = np.sqrt(2.0) * np.abs(pairs - y[positive])
    env = np.minimum.accumulate(y)
    y_min, drop = float(np.min(y)), float(np.max(y) - np.min(y))
    whole = lambda: Plateaus(np.array([float(np.median(y))]), np.zeros(0), np.array([0]), np.array([t.size - 1]),
                             np.array([float(np.sqrt(t[positive][0] * t[-1]))]))
    if drop <= 1e-12 * max(1.0, float(np.max(np.abs(y)))):
        return whole()

    # Uniform grid in ln t; log excess loss; its slope.
    x_rec, y_rec, e_rec = np.log(t[positive]), y[positive], env[positive]
    x_rec, keep = np.unique(x_rec, return_index=True)  # repeated times: keep the first
    y_rec, e_rec = y_rec[keep], e_rec[keep]
    xg = np.linspace(x_rec[0], x_rec[-1], n_grid)
    z = np.log(np.interp(xg, x_rec, e_rec) - y_min + floor * drop)
    dx = xg[1] - xg[0]
    z = _smooth(z, smooth / dx)
    rho = -np.gradient(z, dx)

    # Flat: slower than slope_tol, or than valley_frac of the nearer of the two steepest
    # drops within ``window`` on either side (a valley between two close transitions).
    w = max(1, int(round(window / dx)))
    padded = np.pad(rho, w, mode="constant", constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(padded, w + 1)
    left, right = win[:n_grid].max(axis=1), win[w : w + n_grid].max(axis=1)
    tol = np.maximum(slope_tol, valley_frac * np.minimum(left, right))
    runs = [(i, j) for i, j in _runs(np.abs(rho) < tol) if xg[j] - xg[i] >= min_length]
    if not runs:
        return Plateaus(np.zeros(0), np.zeros(0), np.zeros(0, int), np.zeros(0, int), np.zeros(0))

    def level_of(i, j):
        yg = np.interp(xg[i : j + 1], x_rec, y_rec)
        return float(np.median(yg))

    def points(i, j):  # recorded t > 0 inside the grid run [i, j]
        return positive & (t >= np.exp(xg[i]) * (1 - 1e-12)) & (t <= np.exp(xg[j]) * (1 + 1e-12))

    def level_noise(a, b):
        """Standard error of the difference of two runs' levels: robust std of the raw
        scatter over both runs × √(1/n_a + 1/n_b), n = independent values in each run
        (recorded points, at most one per ``denoise`` of ln t: the running median
        correlates the points inside one window)."""
        pa, pb = points(*a), points(*b)

        def n_eff(run, pts):
            return max(1.0, min(float(np.count_nonzero(pts)), (xg[run[1]] - xg[run[0]]) / max(denoise, 1e-12)))

        n_a, n_b = n_eff(a, pa), n_eff(b, pb)
        both = pa | pb
        sigma = 1.4826 * float(np.median(scatter[both])) if np.any(both) else 0.0
        return sigma * np.sqrt(1.0 / n_a + 1.0 / n_b)

    merged = [list(runs[0])]
    for i, j in runs[1:]:
        prev = level_of(*merged[-1])
        tol_merge = max(merge_tol * (prev - y_min + floor * drop), noise_tol * level_noise(merged[-1], (i, j)),
                        min_drop * drop)
        if abs(prev - level_of(i, j)) <= tol_merge:
            merged[-1][1] = j
        else:
            merged.append([i, j])

    # Map grid runs back to indices of the input arrays (t ≤ 0 points join the first plateau).
    t_lo, t_hi = np.exp(xg[[i for i, _ in merged]]), np.exp(xg[[j for _, j in merged]])
    starts = np.searchsorted(t, t_lo * (1 - 1e-12), side="left")
    ends = np.searchsorted(t, t_hi * (1 + 1e-12), side="right") - 1
    if merged[0][0] == 0:
        starts[0] = 0
    ends = np.maximum(ends, starts)
    levels = np.array([level_of(i, j) for i, j in merged])
    # A flat run inside a merged plateau's gap keeps the median of the flat points only.
    for k, (i, j) in enumerate(merged):
        flat = np.abs(rho[i : j + 1]) < tol[i : j + 1]
        levels[k] = float(np.median(np.interp(xg[i : j + 1][flat], x_rec, y_rec)))

    trans = np.array([
        _crossing_time(t, env, int(ends[k]), int(starts[k + 1]), levels[k] - level * (levels[k] - levels[k + 1]))
        for k in range(len(merged) - 1)
    ])
    mids = np.sqrt(t_lo * t_hi)
    return Plateaus(levels, trans, starts.astype(int), ends.astype(int), mids)


def compare(t, loss, prediction, *, time_tol: float = 0.1, loss_tol: float = 0.02, label: str = "",
            **detect_kwargs) -> list:
    """Verify rows of a simulated loss curve against a predicted staircase.

    ``prediction`` is any ``theory.<family>.predict(...)`` result (a
    ``theory.staircase.Staircase``: plateau_losses, transition_times, ranks,
    level), in the same time units as ``t`` (flow time, or GD steps when the
    prediction was made with ``learning_rate``). The curve's plateaus are found
    by ``detect_plateaus(t, loss, level=prediction.level, **detect_kwargs)``.

    Rows (``dynamics.rows.row`` dicts, as ``saddle verify --json`` prints them):
    the plateau count (exact); when it matches, each plateau loss (relative
    ``loss_tol``; a predicted zero loss is compared as L/L_0 with absolute
    ``loss_tol``) and each transition time (relative ``time_tol``). Choose the
    tolerances from the theory's stated accuracy (e.g. 1/ln(1/σ) for the σ → 0
    limits, the spread over inits for median times): the defaults are only
    placeholders for a well-separated, small-init staircase.
    """
    from dynamics.rows import row

    pl = np.asarray(prediction.plateau_losses, dtype=float)
    tt = np.asarray(prediction.transition_times, dtype=float)
    if pl.ndim != 1 or tt.shape != (pl.size - 1,):
        raise ValueError(f"prediction needs n + 1 plateau losses and n transition times, got {pl.shape} and {tt.shape}")
    prefix = f"{label}: " if label else ""
    found = detect_plateaus(t, loss, level=float(prediction.level), **detect_kwargs)
    rows = [row(f"{prefix}plateau count", pl.size, found.n_plateaus, tol=0, relative=False)]
    if found.n_plateaus != pl.size:
        return rows
    scale = abs(pl[0]) if pl[0] != 0 else 1.0
    for k, (want, got) in enumerate(zip(pl, found.plateau_losses)):
        if abs(want) > 1e-9 * scale:
            rows.append(row(f"{prefix}plateau {k} loss", want, got, tol=loss_tol))
        else:
            rows.append(row(f"{prefix}plateau {k} loss / L_0", 0.0, got / scale, tol=loss_tol, relative=False))
    for k, (want, got) in enumerate(zip(tt, found.transition_times), start=1):
        rows.append(row(f"{prefix}transition {k} time", want, got, tol=time_tol))
    return rows
