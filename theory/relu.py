"""Small-init dynamics of a 1-D two-layer ReLU net whose affine part is free.

Setting (``experiments.relu_kinks``): f(x) = Σᵢ aᵢ relu(wᵢx + bᵢ), x ∈ R, P data
points, loss L = (1/2P)‖P⊥(y − f)‖² with P⊥ the projection off the affine
functions of x (a linear skip v x + c fitted exactly; ``dynamics.affine_free_loss``),
gradient flow τ dθ/dt = −∇L (GD with step η: t = step·η in units of τ).

One small unit. With r = y − f the residual of the rest of the net and r̃ = P⊥r,
a unit u = (w, b), a with ‖u‖, |a| ≪ 1 obeys, to leading order,

    du/dt = a ∇G(u),   da/dt = G(u),   G(u) = (1/P) Σ_μ r̃_μ relu(u·(x_μ, 1)).

G is 1-homogeneous, so a balanced unit (|a| = ‖u‖ = ρ, a = sρ with s = ±1; the
flow keeps |a|² − ‖u‖²) has

    dρ/dt = s G(θ) ρ,     dθ/dt = s (I − θθᵀ) ∇G(θ),     θ = u/ρ:

its direction climbs sG on the circle at a speed independent of ρ and its norm
grows at the rate sG(θ) (the early-alignment phase of Maennel, Bousquet & Gelly
2018, arXiv 1803.08367; Boursier et al. 2022, arXiv 2206.00939). Since r̃ is
orthogonal to affine functions and relu(p − x) = relu(x − p) − (x − p), G
depends on θ = ±(1, −p)/√(1 + p²) only through the breakpoint p = −b/w, the
same for both orientations:

    G(p) = (1/P) Σ_μ r̃_μ relu(x_μ − p) / √(1 + p²)                   (``unit_rate``)

and G = 0 for p outside the data (the unit is affine there). The unnormalised
Ĝ(p) = √(1 + p²) G(p) has Ĝ'' = (1/P) Σ_μ r̃_μ δ(p − x_μ) and Ĝ = Ĝ' = 0 beyond
both ends of the data: the landscape is the residual integrated twice.

Lobes. Units of sign s gather at the local maxima of sG where sG > 0
(``escape_lobes``); the units of one lobe share a breakpoint (they are merged,
one kink) and grow together at the lobe's rate λ = sG.

The σ → 0 limit (``incremental_escapes``). From init scale σ a cluster escapes
(grows to O(1) and is fitted) once ∫ λ dt = ln(1/σ). In the limit the escaped
units are fitted at once, so after k escapes the net sits at the best k-unit net
f*_k (the k-th plateau), and each remaining cluster follows its lobe as the
landscape of r_k = y − f*_k changes (it climbs to the top of its basin in the new
landscape; clusters that meet merge). With A_j the log-growth cluster j has
accumulated,

    t_{k+1} = t_k + min_j (ln(1/σ) − A_j) / λ_j^{(k)},    A_j += λ_j^{(k)} (t_{k+1} − t_k),

the ReLU analogue of Pesme & Flammarion's Algorithm 1 for diagonal linear
networks (arXiv 2304.00488, ``theory.diagonal``): plateau times are ln(1/σ)
times numbers fixed by the data. Corrections are O(1/ln(1/σ)) relative (the
initial norms and alignment, the time the drop itself takes; ``theory.relu_escape``
computes them per cluster from the init, passed here as per-cluster thresholds). GD with step η
multiplies ρ by 1 + ηλ per step: its rate is λ_η = ln(1 + ηλ)/η (``gd_rate``).

When the staircase visits every f*_k. Each kink needs a lobe of its own from the
start (a lobe that appears only later has no units in it: they have all gathered
in the lobes of the earlier landscapes), some unit of the right sign must start
in each lobe's basin (``lobe_occupancy``; with h units, a basin covering a
fraction q of the breakpoint circle is empty with probability ≈ (1 − q/2)^h),
and competing lobes need rates apart (else two kinks escape together).
``experiments.relu_kinks`` picks its targets so and tests the prediction
against the wide net, seed by seed.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np


class Lobes(NamedTuple):
    """Local maxima of s·G(p) with s·G > 0, sorted by breakpoint.

    breakpoints: (m,) p of each lobe; signs: (m,) s = ±1 (the sign of the output
    weight of the units that grow there); rates: (m,) λ = s·G(p) > 0.
    """

    breakpoints: np.ndarray
    signs: np.ndarray
    rates: np.ndarray


class Escapes(NamedTuple):
    """The σ → 0 escape sequence (one entry per escape, in time order).

    times: (K,) escape times t_k in units of τ (t = step·η for GD).
    breakpoints: (K,) the escaping lobe's breakpoint, read where it escapes.
    signs: (K,) sign s of the escaping cluster.
    rates: (K,) its rate λ at escape (λ_η for GD).
    stage_rates: (K, m) rate of every cluster during each stage (0 after it escaped),
      columns in the order of ``clusters``.
    clusters: (m,) breakpoint of each cluster at stage 0 (its stage-0 lobe).
    escaped: (K,) index into ``clusters`` of the cluster that escapes at each stage.
    """

    times: np.ndarray
    breakpoints: np.ndarray
    signs: np.ndarray
    rates: np.ndarray
    stage_rates: np.ndarray
    clusters: np.ndarray
    escaped: np.ndarray


def _column(name: str, v, n=None) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1 or (n is not None and a.shape[0] != n):
        want = "(P,) or (P, 1)" if n is None else f"({n},) or ({n}, 1) to match x"
        raise ValueError(f"{name}.shape={np.shape(v)} is invalid; allowed: {want}")
    return a


def _project_affine(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    q, _ = np.linalg.qr(np.stack([x, np.ones_like(x)], axis=1))
    return r - q @ (q.T @ r)


def breakpoint_grid(x, n_grid: int = 2001) -> np.ndarray:
    """n_grid breakpoints evenly spaced over the data range [min x, max x] (the landscape
    G(p) is 0 outside it: module docstring, our derivation)."""
    x = _column("x", x)
    if not isinstance(n_grid, (int, np.integer)) or n_grid < 3:
        raise ValueError(f"n_grid={n_grid!r} is invalid; allowed: an integer ≥ 3")
    return np.linspace(x.min(), x.max(), n_grid)


def unit_rate(x, residual, breakpoints) -> np.ndarray:
    """G(p) = (1/P) Σ_μ r̃_μ relu(x_μ − p)/√(1 + p²), r̃ = P⊥ residual: the growth
    rate of a small balanced unit with breakpoint p and output sign s = +1
    (−G(p) for s = −1), either orientation. x, residual: (P,) or (P, 1).
    Our derivation (module docstring, "One small unit"), from the early-alignment equations
    of Maennel, Bousquet & Gelly 2018 (arXiv 1803.08367) and Boursier et al. 2022 (arXiv 2206.00939)."""
    x = _column("x", x)
    r = _project_affine(x, _column("residual", residual, x.size))
    p = np.asarray(breakpoints, dtype=np.float64)
    ramp = np.maximum(x[None, :] - p.reshape(-1, 1), 0.0) / np.sqrt(1.0 + p.reshape(-1, 1) ** 2)
    return (ramp @ r / x.size).reshape(p.shape)


def _lobe_indices(g: np.ndarray, tol: float):
    """(index, sign) of the strict interior local maxima of s·g with s·g > tol."""
    out = []
    for s in (1.0, -1.0):
        v = s * g
        inner = (v[1:-1] >= v[:-2]) & (v[1:-1] > v[2:]) & (v[1:-1] > tol)
        out += [(int(i) + 1, s) for i in np.nonzero(inner)[0]]
    return sorted(out)


def _landscape(x, residual, n_grid: int, rel_tol: float):
    """(grid, G on the grid, [(index, sign)] of its lobes above rel_tol · max|G|)."""
    p = breakpoint_grid(x, n_grid)
    g = unit_rate(x, residual, p)
    return p, g, _lobe_indices(g, rel_tol * float(np.max(np.abs(g), initial=0.0)))


def escape_lobes(x, residual, *, n_grid: int = 2001, rel_tol: float = 1e-6) -> Lobes:
    """Lobes of the escape landscape of ``residual`` (``unit_rate`` on a grid over
    the data range): local maxima of s·G with s·G > rel_tol · max|G|. Units gather at
    such maxima (direction ascent of s·G; Maennel et al. 2018, arXiv 1803.08367, "quantization";
    module docstring, "Lobes", our derivation for the affine-free 1-D net)."""
    p, g, found = _landscape(x, residual, n_grid, rel_tol)
    return Lobes(np.array([p[i] for i, _ in found]), np.array([s for _, s in found]),
                 np.array([s * g[i] for i, s in found]))


def lobe_occupancy(x, residual, unit_breakpoints, unit_signs, *, n_grid: int = 2001, rel_tol: float = 1e-6) -> np.ndarray:
    """How many units start in the basin of each lobe of ``escape_lobes(x, residual)``.

    A unit with breakpoint p inside the data and output sign s climbs s·G from p
    (``unit_rate``; its direction moves at a speed independent of its norm) and
    joins the lobe at the top of its basin; a unit with p outside the data is
    affine there and never moves. A lobe nobody reaches has no cluster: its
    kink is not learned on the escape sequence of ``incremental_escapes``.
    unit_breakpoints, unit_signs: (h,). Returns (m,) counts, lobes in
    ``escape_lobes`` order. Our derivation (module docstring, "When the staircase visits
    every f*_k"), from the direction ascent dθ/dt = s(I − θθᵀ)∇G(θ)."""
    p_units = _column("unit_breakpoints", unit_breakpoints)
    s_units = np.sign(_column("unit_signs", unit_signs, p_units.size))
    grid, g, lobes = _landscape(x, residual, n_grid, rel_tol)
    counts = np.zeros(len(lobes), dtype=int)
    top = {lobe: n for n, lobe in enumerate(lobes)}
    inside = (p_units > grid[0]) & (p_units < grid[-1]) & (s_units != 0)
    for p, s in zip(p_units[inside], s_units[inside]):
        end = (_climb(s * g, int(np.argmin(np.abs(grid - p)))), float(s))
        if end in top:
            counts[top[end]] += 1
    return counts


def gd_rate(rate, eta: float):
    """Per-unit-time growth rate of GD with step η on a unit of flow rate λ: ln(1 + ηλ)/η.

    Our derivation: the linearised GD map multiplies the unit's norm by 1 + ηλ per step
    (module docstring); per unit time t = step·η that is the rate ln(1 + ηλ)/η."""
    if not eta > 0:
        raise ValueError(f"eta={eta!r} is invalid; allowed: a number > 0")
    return np.log1p(eta * np.asarray(rate, dtype=np.float64)) / eta


def _climb(v: np.ndarray, i: int) -> int:
    """Index of the local maximum of v reached by walking uphill from i."""
    while True:
        left = v[i - 1] if i > 0 else -np.inf
        right = v[i + 1] if i < v.size - 1 else -np.inf
        if right > v[i] and right >= left:
            i += 1
        elif left > v[i]:
            i -= 1
        else:
            return i


def incremental_escapes(x, residuals: Sequence, *, log_inv_scale: float, eta: float = None,
                        n_grid: int = 2001, rel_tol: float = 1e-6) -> Escapes:
    """The σ → 0 sequence of escapes (module docstring, "The σ → 0 limit").

    Args:
      x: (P,) or (P, 1) inputs.
      residuals: K residuals r_k = y − f*_k, k = 0, …, K−1 (r_0 = y): the
        landscape of stage k is that of the best k-unit net (e.g. from
        ``dynamics.narrow.narrow_optimum_losses``).
      log_inv_scale: ln(1/σ), σ the init scale of the units (> 0); or (m,), one
        log-growth threshold per stage-0 cluster (``escape_lobes`` order), e.g.
        ln(1/σ) + c_j with the O(1) offsets of ``theory.relu_escape.escape_offsets``.
      eta: GD step; if given, rates are the GD rates λ_η (``gd_rate``).

    Clusters start at the stage-0 lobes with A = 0; at each stage every cluster
    climbs to the top of its basin of s·G_k, clusters that meet keep the one
    nearest its threshold (the larger A for one ln(1/σ)), and the cluster that
    reaches its threshold (A = ln(1/σ)) first escapes. Raises
    ValueError if at some stage no cluster grows (no further escape).
    """
    x = _column("x", x)
    threshold = np.asarray(log_inv_scale, dtype=np.float64)
    if threshold.ndim > 1 or not np.all(threshold > 0):
        raise ValueError(f"log_inv_scale={log_inv_scale!r} is invalid; allowed: ln(1/σ) > 0, a number or one per stage-0 lobe")
    if len(residuals) < 1:
        raise ValueError("residuals is empty; allowed: one residual per stage (r_0 = y first)")
    p, g0, start = _landscape(x, residuals[0], n_grid, rel_tol)
    landscapes = [g0] + [unit_rate(x, r, p) for r in residuals[1:]]
    index = np.array([i for i, _ in start], dtype=int)
    sign = np.array([s for _, s in start])
    if threshold.ndim == 1 and threshold.size != index.size:
        raise ValueError(f"log_inv_scale has {threshold.size} entries; allowed: a number or one per stage-0 lobe ({index.size})")
    threshold = np.broadcast_to(threshold, index.shape)
    grown = np.zeros(index.size)
    alive = np.ones(index.size, dtype=bool)
    stage_rates = np.zeros((len(landscapes), index.size))
    t, out = 0.0, []
    for k, g in enumerate(landscapes):
        for j in np.nonzero(alive)[0]:
            index[j] = _climb(sign[j] * g, index[j])
        for j in np.nonzero(alive)[0]:  # clusters that meet merge into the one grown most
            same = np.nonzero(alive & (index == index[j]) & (sign == sign[j]))[0]
            if same.size > 1:
                keep = same[np.argmax(grown[same] - threshold[same])]  # the nearest to its threshold
                alive[same[same != keep]] = False
        rate = np.where(alive, sign * g[index], 0.0)
        if eta is not None:
            rate = np.where(alive, gd_rate(np.maximum(rate, -0.99 / eta), eta), 0.0)
        stage_rates[k] = rate
        wait = np.where(alive & (rate > 0), (threshold - grown) / np.where(rate > 0, rate, 1.0), np.inf)
        j = int(np.argmin(wait)) if wait.size else 0
        if not wait.size or not np.isfinite(wait[j]):
            raise ValueError(f"stage {k}: no cluster grows (every rate ≤ 0); the escape sequence ends after {k} escapes")
        t += wait[j]
        grown = grown + rate * wait[j]
        out.append((t, p[index[j]], sign[j], rate[j], j))
        alive[j] = False
    times, bps, signs, rates, escaped = (np.array(v) for v in zip(*out))
    return Escapes(times, bps, signs, rates, stage_rates, p[np.array([i for i, _ in start], dtype=int)], escaped)


def _affine_free_fit(x: np.ndarray, yt: np.ndarray, knots) -> tuple:
    """(loss, residual) of the least-squares fit of P⊥y by Σ_j c_j P⊥relu(x − p_j), loss (1/2P)‖·‖²."""
    f = _project_affine(x, np.maximum(x[:, None] - np.asarray(knots, dtype=np.float64)[None, :], 0.0))
    coef, *_ = np.linalg.lstsq(f, yt, rcond=None)
    res = yt - f @ coef
    return 0.5 * float(res @ res) / x.shape[0], res


def _knot_scan(x: np.ndarray, yt: np.ndarray, others, grid: np.ndarray) -> np.ndarray:
    """Loss of the best fit with knots ``others`` + p, for every p in ``grid`` at once:
    with r the residual on the fixed knots and φ̃_p the new column off their span,
    L(p) = (‖r‖² − (r·φ̃_p)²/‖φ̃_p‖²)/2P."""
    n = x.shape[0]
    fixed = _project_affine(x, np.maximum(x[:, None] - np.asarray(others, dtype=np.float64)[None, :], 0.0))
    q = np.linalg.qr(fixed)[0] if fixed.shape[1] else np.zeros((n, 0))
    r = yt - q @ (q.T @ yt)
    phi = _project_affine(x, np.maximum(x[:, None] - grid[None, :], 0.0))
    phi = phi - q @ (q.T @ phi)
    den = np.sum(phi**2, axis=0)
    ok = den > 1e-12 * np.max(den)
    gain = np.where(ok, (r @ phi) ** 2 / np.where(ok, den, 1.0), 0.0)
    return 0.5 * (r @ r - gain) / n


def narrow_optima(x, y, n_kinks: int, *, n_grid: int = 401, sweeps: int = 4) -> tuple:
    """Best k-kink nets with the affine part free, k = 0..K: (losses (K+1,), residuals [(P,)]*(K+1)).

    A k-unit net with a free affine part is a linear spline with k free knots
    plus an affine function, so L*_k = min over knots p of the least-squares
    loss of P⊥y on span{P⊥relu(x − p_j)} (units with breakpoints outside the
    data are affine and add nothing). Computed here (our own numerics, no
    training): the best (k−1)-knot set plus the best new grid knot, cyclic
    coordinate search of every knot over ``n_grid`` breakpoints spanning the
    data (``sweeps`` passes), then Nelder-Mead on the knots. A local search:
    exact for k = 1 up to the grid refinement, and checked against an
    exhaustive grid search for k = 2 (tests/test_theory_overlays.py).
    """
    from scipy.optimize import minimize

    x = _column("x", x)
    y = _column("y", y, x.shape[0])
    if int(n_kinks) != n_kinks or n_kinks < 1:
        raise ValueError(f"n_kinks must be an integer ≥ 1, got {n_kinks}")
    yt = _project_affine(x, y)
    grid = breakpoint_grid(x, n_grid)[1:-1]  # end knots are affine on the data
    losses, residuals, knots = [0.5 * float(yt @ yt) / x.shape[0]], [yt], []
    for _ in range(int(n_kinks)):
        knots = knots + [grid[int(np.argmin(_knot_scan(x, yt, knots, grid)))]]
        for _ in range(sweeps):
            for j in range(len(knots)):
                knots[j] = grid[int(np.argmin(_knot_scan(x, yt, knots[:j] + knots[j + 1:], grid)))]
        res = minimize(lambda p: _affine_free_fit(x, yt, p)[0], np.array(knots), method="Nelder-Mead",
                       options={"xatol": 1e-10, "fatol": 1e-16, "maxiter": 2000})
        if res.fun < _affine_free_fit(x, yt, knots)[0]:
            knots = sorted(float(p) for p in res.x)
        loss, r = _affine_free_fit(x, yt, knots)
        losses.append(min(loss, losses[-1]))
        residuals.append(r)
    return np.asarray(losses), residuals


def predict(x, y, *, n_kinks: int, init_scale: float, tau=None, learning_rate=None, n_grid: int = 2001):
    """The σ → 0 staircase of a 1-D two-layer ReLU net with its affine part free, as a ``Staircase``.

    plateau_losses: L*_0..L*_K of the best k-kink nets (``narrow_optima``, the
    plateaus of ``experiments.relu_kinks``); transition_times: the escape
    sequence of ``incremental_escapes`` from their residuals with
    ln(1/σ) = ln(1/init_scale), with GD rates ln(1 + ηλ)/η when
    ``learning_rate`` η is given (times then in steps, τ = 1/η); ranks: kinks
    0..K. Corrections are O(1/ln(1/σ)) relative (module docstring). level =
    0.75, as ``experiments.relu_kinks`` reads its escapes. The staircase
    visits every f*_k only when each lobe is populated (module docstring).
    Args: x, y: (P,) or (P, 1); n_kinks: K ≥ 1; init_scale σ in (0, 1).
    """
    from theory.staircase import staircase, time_constant

    tau = time_constant(tau, learning_rate)
    if not 0.0 < float(init_scale) < 1.0:
        raise ValueError(f"init_scale must be in (0, 1) (small init), got {init_scale}")
    losses, residuals = narrow_optima(x, y, n_kinks)
    esc = incremental_escapes(x, residuals[:-1], log_inv_scale=float(np.log(1.0 / init_scale)),
                              eta=learning_rate, n_grid=n_grid)
    # incremental_escapes counts time in units of τ (t = step·η for GD); × τ gives steps for GD
    return staircase(losses, esc.times * tau, np.arange(losses.size), 0.75)
