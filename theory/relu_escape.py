"""The O(1) term of the ReLU escape times: per-cluster log-growth thresholds from the init.

Setting and notation as ``theory.relu`` (1-D two-layer ReLU net, affine part free,
balanced units: |aᵢ| = ‖uᵢ‖ = ρᵢ). In the σ → 0 limit a cluster escapes once its
log-growth ∫λ dt reaches ln(1/σ) (``theory.relu.incremental_escapes``). At finite σ
the log-growth it needs is Λ_j = ln(1/σ) + c_j with an O(1) offset c_j fixed by the
init; this module computes Λ_j per seed, before training (our own derivation):

1. Saturation and the detector level. Units of cluster j sit at one breakpoint p, so
   their contribution is c·relu(θ·(x, 1)) with c = Σᵢ ρᵢ² (signs equal). Along that
   direction L(c) = L_k − λc + κc²/2 with λ = sG(p) and κ = (1/P)‖P⊥relu(x − p)‖²/(1 + p²),
   and dρᵢ/dt = (λ − κc)ρᵢ gives the logistic dc/dt = 2c(λ − κc): c → u* = λ/κ, and
   c(t) = u*/(1 + (u*/c₀)e^{−2λt}). The loss has covered the fraction F = 2v − v² of the
   drop at v = c/u*, so the detector (``dynamics.plateaus``, level f) reads the escape at
   v_f = 1 − √(1 − f), i.e. when 2λt = ln(u*/c₀) + ln(v_f/(1 − v_f)):

       Λ_j = ½ ln(u*_j / c₀_j) + ½ ln(v_f/(1 − v_f))        (v_f = ½ at f = 0.75: the term is 0).

   GD with step η multiplies ρ by 1 + η(λ − κc) per step: same fixed point u*, the
   early rate λ_η = ln(1 + ηλ)/η (``theory.relu.gd_rate``), O(ηλ) changes to the midpoint.

2. The initial size c₀_j. With σ the init scale, ρᵢ² = σ²ξᵢ² (balanced scheme:
   ξᵢ² = ‖(wᵢ, bᵢ)‖²/σ² ~ χ²₂). A unit that starts at breakpoint pᵢ off the lobe's top
   grows at sG(p(t)) < λ while it climbs (``rotation_deficit``), so it arrives with
   ρᵢ² e^{−2Dᵢ} of the norm it would have had at the top from the start:

       c₀_j = Σ_{i in basin j} ρᵢ² e^{−2Dᵢ}.

   Hence c_j = ½ ln(u*_j/ξ_eff²) with ξ_eff² = Σ ξᵢ² e^{−2Dᵢ}: the unit's optimal
   coefficient against its initial norm, the detector level, and minus the rotation delay.

Not included (the remaining error): at later stages a cluster whose lobe moves climbs
again (a further deficit, ≥ 0: later escapes), clusters that merge add their c₀ (≤ ½ ln 2
earlier), the drops overlap the other clusters' growth for O(1/λ), and GD's O(ηλ).
"""
from __future__ import annotations

import numpy as np

from theory.relu import Escapes, _climb, _column, _landscape, _project_affine, unit_rate


def _cell_weights(grid: np.ndarray, v: np.ndarray):
    """Per grid cell: (Δt of the climb across it, its mean s·G), the breakpoint moving at
    dp/dt = (1 + p²)² (s·G)'(p) (cell-wise slope). Δt = inf on a flat cell."""
    dp = np.diff(grid)
    dv = np.abs(np.diff(v))
    mid = 0.5 * (grid[1:] + grid[:-1])
    with np.errstate(divide="ignore"):
        dt = np.where(dv > 0, dp**2 / ((1.0 + mid**2) ** 2 * np.where(dv > 0, dv, 1.0)), np.inf)
    return dt, 0.5 * (v[1:] + v[:-1])


def rotation_deficit(x, residual, unit_breakpoints, unit_signs, *, n_grid: int = 2001, rel_tol: float = 1e-6) -> np.ndarray:
    """D = ∫₀^∞ (λ − s·G(p(t))) dt for each unit: the log-norm a small balanced unit loses
    while its breakpoint climbs s·G to the top of its basin (λ = s·G there).

    The direction obeys dθ/dt = s(I − θθᵀ)∇G(θ) at any norm (``theory.relu`` module docstring);
    with θ = (cos φ, sin φ), p = −tan φ and G(θ) = unit_rate(p) this is the 1-D flow
    dp/dt = s(1 + p²)² G'(p), so D = ∫_{p₀}^{p_top} (λ − sG(p)) / ((1 + p²)²|G'(p)|) dp
    (our derivation), summed over the grid cells of ``theory.relu.breakpoint_grid``.
    unit_breakpoints, unit_signs: (h,). Returns (h,): inf for a unit outside the data
    (affine, never grows), with sign 0, or that must cross a flat cell; 0 at a top."""
    p_units = _column("unit_breakpoints", unit_breakpoints)
    s_units = np.sign(_column("unit_signs", unit_signs, p_units.size))
    grid, g, _ = _landscape(x, residual, n_grid, rel_tol)
    out = np.full(p_units.size, np.inf)
    inside = (p_units > grid[0]) & (p_units < grid[-1]) & (s_units != 0)
    for s in (1.0, -1.0):
        v = s * g
        dt, v_mid = _cell_weights(grid, v)
        for n in np.nonzero(inside & (s_units == s))[0]:
            i = int(np.argmin(np.abs(grid - p_units[n])))
            top = _climb(v, i)
            cells = slice(min(i, top), max(i, top))
            out[n] = float(np.sum((v[top] - v_mid[cells]) * dt[cells])) if np.all(np.isfinite(dt[cells])) else np.inf
    return out


def detector_offset(level: float) -> float:
    """½ ln(v/(1 − v)), v = 1 − √(1 − level): the log-growth between the logistic's midpoint
    c = u*/2 and the time the loss has covered ``level`` of its drop (module docstring, 1)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} is invalid; allowed: a number in (0, 1)")
    v = 1.0 - np.sqrt(1.0 - level)
    return 0.5 * float(np.log(v / (1.0 - v)))


def optimal_coefficient(x, residual, breakpoint: float, sign: float) -> float:
    """u* = λ/κ: the coefficient c = Σρᵢ² a cluster at ``breakpoint`` saturates at on the
    landscape of ``residual`` (module docstring, 1); λ = s·G(p), κ = (1/P)‖P⊥relu(x − p)‖²/(1 + p²)."""
    x = _column("x", x)
    lam = sign * float(unit_rate(x, residual, np.array([breakpoint]))[0])
    phi = _project_affine(x, np.maximum(x - breakpoint, 0.0))
    return lam / (float(phi @ phi) / x.size / (1.0 + breakpoint**2))


def escape_thresholds(x, residuals, escapes: Escapes, unit_breakpoints, unit_signs, unit_norms2, *,
                      level: float = 0.75, n_grid: int = 2001, rel_tol: float = 1e-6) -> np.ndarray:
    """Λ_j, the log-growth each stage-0 cluster needs before the detector reads its escape
    (module docstring): ½ ln(u*_j / Σ_{i in basin j} ρᵢ² e^{−2Dᵢ}) + ``detector_offset(level)``.

    Args:
      x: (P,); residuals: r_k = y − f*_k, k = 0..K−1, as for ``incremental_escapes``;
      escapes: its σ → 0 sequence (gives the stage and breakpoint at which each cluster
        escapes, for u*); unit_breakpoints, unit_signs, unit_norms2: (h,) the init's
        pᵢ = −bᵢ/wᵢ, sign(aᵢ), ρᵢ² = |aᵢ|‖(wᵢ, bᵢ)‖.
    Returns (m,) in ``escape_lobes`` order (pass as ``log_inv_scale`` to ``incremental_escapes``):
    inf for a cluster with no unit in its basin or that never escapes on ``escapes``.
    """
    p_units = _column("unit_breakpoints", unit_breakpoints)
    s_units = np.sign(_column("unit_signs", unit_signs, p_units.size))
    rho2 = _column("unit_norms2", unit_norms2, p_units.size)
    grid, g, lobes = _landscape(x, residuals[0], n_grid, rel_tol)
    deficit = rotation_deficit(x, residuals[0], p_units, s_units, n_grid=n_grid, rel_tol=rel_tol)
    c0 = np.zeros(len(lobes))
    top = {lobe: n for n, lobe in enumerate(lobes)}
    for p, s, r2, d in zip(p_units, s_units, rho2, deficit):
        if not np.isfinite(d):
            continue
        end = (_climb(s * g, int(np.argmin(np.abs(grid - p)))), float(s))
        if end in top:
            c0[top[end]] += r2 * np.exp(-2.0 * d)
    out = np.full(len(lobes), np.inf)
    for k, j in enumerate(escapes.escaped):
        if c0[j] > 0:
            u_star = optimal_coefficient(x, residuals[k], escapes.breakpoints[k], escapes.signs[k])
            out[j] = 0.5 * np.log(u_star / c0[j]) + detector_offset(level)
    return out


def realignment_bracket(fixed_drop, plateau_drop, level: float = 0.75) -> np.ndarray:
    """b ≤ 0: how much earlier (in log-growth) the loss can reach L_k − level·(fixed drop) when the
    escaping cluster's breakpoint realigns during its own drop (our derivation, a bracket).

    At a frozen breakpoint the loss falls by d = λu*/2 (``optimal_coefficient``), less than the
    plateau drop ΔL = L*_k − L*_{k+1}; the rest comes as the breakpoint moves to f*_{k+1}'s. The two
    limits: realignment only after the drop (offset 0), or at once, the whole ΔL coming along the
    logistic with saturation R u*, R = ΔL/d, at the same rate λ; the level L_k − level·d is then crossed
    at 2v − v² = level/R, i.e. ½ ln R + ½ ln(v/(1 − v)) − detector_offset(level) earlier, which is ≤ 0.
    fixed_drop, plateau_drop: (K,). Returns (K,) b in [that value, 0]'s lower end."""
    d = np.asarray(fixed_drop, dtype=np.float64)
    ratio = np.maximum(np.asarray(plateau_drop, dtype=np.float64) / d, 1.0)
    v = 1.0 - np.sqrt(1.0 - level / ratio)
    return 0.5 * np.log(ratio) + 0.5 * np.log(v / (1.0 - v)) - detector_offset(level)


def drop_profile(x, growth: float):
    """Fraction F = 2v − v² of a frozen-breakpoint drop covered at t = t_mid·eˣ (x = ln(t/t_mid)), for a
    cluster that needed the log-growth ``growth`` = λ·t_mid from t = 0: v = 1/(1 + e^{−2λ(t − t_mid)})
    = 1/(1 + exp(−2·growth·(eˣ − 1))) (module docstring, 1: the logistic dc/dt = 2c(λ − κc), v = c/u*).
    The shape of the first escape's loss curve in ln t, F = ¾ at x = 0 (v = ½)."""
    x = np.asarray(x, dtype=np.float64)
    v = 1.0 / (1.0 + np.exp(np.clip(-2.0 * growth * np.expm1(x), -700.0, 700.0)))
    return 2.0 * v - v * v


def corner_chatter(x, residual, breakpoint: float, sign: float, learning_rate: float, h: float = 1e-7) -> float:
    """The most GD's chatter at a lobe's top can lower a unit's growth rate (our derivation).

    The top p₀ is a data point where λ(p) = s·G(p) has a corner: slope a > 0 left of it, −c < 0 right
    of it (``unit_rate``). The breakpoint follows dp/dt = (1 + p²)² λ'(p) (module docstring of
    ``theory.relu``), so a GD step moves it by ηk·a left of p₀ and by −ηk·c right of it (k = (1 + p₀²)²):
    a rotation of the interval [p₀ − ηkc, p₀ + ηka), which it never leaves once in. There
    λ₀ − λ(p) ≤ max(a·ηkc, c·ηka) = ηk·a·c (its average over the interval is half that):

        deficit rate ≤ η (1 + p₀²)² a c.

    a, c from one-sided differences of ``unit_rate`` over h. Returns the rate (per unit time)."""
    lam = sign * unit_rate(x, residual, np.array([breakpoint - h, breakpoint, breakpoint + h]))
    a, c = max((lam[1] - lam[0]) / h, 0.0), max((lam[1] - lam[2]) / h, 0.0)
    return float(learning_rate * (1.0 + breakpoint**2) ** 2 * a * c)


def first_escape_tolerance(growth, bracket: float, rate, learning_rate: float, chatter=0.0):
    """Relative uncertainty of a seed's first escape time t̂ = Λ_j/λ_j (``escape_thresholds`` Λ_j of the
    cluster that escapes first, its GD rate λ_j at stage 0), decided before training (our derivation):

        tol = (|b₁| + 2ηλ_j)/Λ_j + δ_j/λ_j.

    * b₁ ≤ 0 (``realignment_bracket``, stage 0): the breakpoint's realignment during the drop makes the
      level-¾ reading up to |b₁| e-folds of log-growth earlier; at rate λ_j that is |b₁|/λ_j in time,
      |b₁|/Λ_j relative (the first escape starts from t = 0, so t̂λ_j = Λ_j).
    * GD (step η): λ_j = ln(1 + ηλ)/η is exact for a small unit at a smooth top; the logistic's
      saturation under GD reaches its midpoint (ln 2/4)ηλ e-folds early (first order in η) and the climb
      to the top differs from the flow's by O(ηλ) e-folds: bounded by 2ηλ_j. At the top the breakpoint
      chatters across the corner, lowering the rate by at most δ_j (``corner_chatter``) for the whole
      t̂: δ_j t̂ e-folds, δ_j/λ_j relative.
    Not in it: the reading of the sampled curve (``dynamics.plateaus.rise_time_resolution`` with
    ``drop_profile``). Later escapes have no such bound: a cluster whose lobe moves at a later stage
    climbs again for an underived time (≥ 0), and clusters that merge add their c₀ (module docstring).
    growth, rate, chatter: Λ_j, λ_j, δ_j (scalars or arrays, broadcast). Returns the relative tolerance."""
    growth, rate = np.asarray(growth, dtype=np.float64), np.asarray(rate, dtype=np.float64)
    return (abs(float(bracket)) + 2.0 * learning_rate * rate) / growth + np.asarray(chatter, dtype=np.float64) / rate
