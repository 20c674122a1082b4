"""When does a nonnegative, energy-efficient code modularise? (Dorrell, Hsu et al.,
"Range, not independence, drives modularity in biologically inspired
representations", ICLR 2025, arXiv 2410.06232, Sec. 2, Thms 2.1-2.2.)

Setting (their Sec. 2). Sources s ∈ R^{d_s} (a sample of P points) are encoded by
a linear code z = W_in s + b_in ∈ R^{d_z} that is nonnegative on every sample
(z ≥ 0) and read out exactly, s = W_out z + b_out; among such codes the optimum
minimises activity energy ⟨‖z‖²⟩ plus weight energy. A code is *modular* when
every active neuron depends on a single source.

Why corners matter (their Fig. 1a, our restatement). Write s̄ = s − ⟨s⟩ and let
e_i = min(|min s̄_i|, |max s̄_i|) be the nearer extreme of source i. A modular
neuron for source i costs energy w_i²(Var s_i + e_i²): its bias must lift the
nearer extreme to zero. A neuron mixing sources i and j along w = (w_i, w_j)
needs the bias b = −min_μ w·s̄_μ and costs w_i² Var s_i + w_j² Var s_j
+ 2 w_i w_j ⟨s̄_i s̄_j⟩ + b². Mixing loses, for every pair and every direction
(Thm 2.1; the pairwise form is theirs for d_s > 2), iff

    f_ij(w) = (min_μ w·s̄_μ)² − wᵀ S_ij w ≥ 0   for all w ∈ R²,          (2.1)
    S_ij = [[e_i², −⟨s̄_i s̄_j⟩], [−⟨s̄_i s̄_j⟩, e_j²]],

equivalently (Thm 2.2, when S_ij ⪰ 0) the convex hull of the centred sample
(s̄_i, s̄_j) contains the ellipse {x : xᵀ S_ij⁻¹ x ≤ 1}. The authors' code
(github.com/kylehkhsu/modular, ``check_modular``) tests (2.1) on a grid of
500 angles; here it is solved exactly.

What (2.1) compares is activity energy at equal encoding weights, as
``check_modular`` does; the weight energy that fixes the code's scale is not in
it. In our simulations (experiment ``modularisation``) a weight energy with
λ_w/λ_act = 10⁻² kept codes modular one grid step past the predicted switch
(an unmixing readout costs weight), so the prediction is for λ_w ≪ λ_act.

The margin (our derivation). f_ij(w) ≥ 0 holds with equality on one axis
direction by construction (the ellipse always touches the hull at the nearer
extreme), so min_w f_ij is 0 on the modular side and says nothing about how far
the sample is from the switch. (2.1) is linear in the covariance c = ⟨s̄_i s̄_j⟩,
so it is a band on c set by the support alone:

    c_lo ≤ c ≤ c_hi,   c_lo = −inf_{w_i w_j > 0} G(w),   c_hi = inf_{w_i w_j < 0} G(w),
    G(w) = [(min_μ w·s̄_μ)² − w_i² e_i² − w_j² e_j²] / (2 |w_i w_j|).

``pairwise_margins`` returns m_ij = min(c − c_lo, c_hi − c) / (e_i e_j): the
(dimensionless) amount by which the sources' covariance could move, with their
support fixed, before the code mixes; m_ij ≥ 0 iff (2.1) holds. It is invariant
to shifting, rescaling or sign-flipping a source. Independent uniform sources on
a square have c = 0, c_lo = −e_i e_j, c_hi = e_i e_j: m = 1.

Exact evaluation: with w = (σ_i cos θ, σ_j sin θ), t = tan θ > 0 and points
q_μ = (−σ_i s̄_iμ/e_i, −σ_j s̄_jμ/e_j), G = [H(t)² − 1 − t²]/(2t) with
H(t) = max_μ (q_μ0 + t q_μ1), piecewise linear with breaks at the convex hull's
edges. On a piece where vertex (a, b) is active, G = (a² − 1)/(2t) + ab +
t(b² − 1)/2, with an interior minimum only if a > 1 and b > 1, i.e. both axes
on their far side; then the opposite direction −w (same sign of w_i w_j) has
both axes tight, where G → b* ≤ 1 as t → 0, below ab + √((a² − 1)(b² − 1)) ≥ 1.
So the infimum that sets the band lies at a hull break or in the limits t → 0⁺,
∞ (which ``_quadrant_inf`` takes analytically).

The family used by experiment ``modularisation`` (our construction): two
sources uniform on the square [−½, ½]² with the two corners where both are low
or both are high cut off, |s_1 + s_2| ≤ δ, δ ∈ (0, 1] (δ = 1: independent).
For the continuous uniform density (``strip_covariance``, ``strip_switch``)
the marginal ranges stay [−½, ½] (e = ½), and (2.1) reduces to the cut facets:
modular iff ¼ − c(δ) ≤ δ²/2, which switches at δ* ≈ 0.7258.
"""
from __future__ import annotations

import itertools

import numpy as np

__all__ = ["is_modular", "modularisation_margin", "pairwise_margins", "covariance_band",
           "strip_covariance", "strip_margin", "strip_switch"]


def _check_sources(sources) -> np.ndarray:
    s = np.asarray(sources, dtype=float)
    if s.ndim != 2 or s.shape[1] < 2 or s.shape[0] < 2:
        raise ValueError(f"sources with shape {s.shape} is invalid; allowed: an (n_samples, n_sources) array "
                         "with n_samples ≥ 2 and n_sources ≥ 2")
    if not np.all(np.isfinite(s)):
        raise ValueError("sources containing NaN or inf is invalid; allowed: finite values")
    centred = s - s.mean(axis=0)
    extreme = np.minimum(-centred.min(axis=0), centred.max(axis=0))
    scale = np.max(np.abs(centred), axis=0)
    flat = np.flatnonzero(~(extreme > 1e-12 * np.maximum(scale, np.finfo(float).tiny)))
    if flat.size:
        raise ValueError(f"sources whose column(s) {flat.tolist()} are constant is invalid; allowed: every source "
                         "takes at least two values (a constant source has no range to encode)")
    return centred


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull vertices of 2-D points, counter-clockwise (Andrew's monotone chain).

    Only the lowest and highest point of each distinct first coordinate can be a
    vertex, so the chain runs over those (a grid of n² points gives 2n)."""
    order = np.lexsort((points[:, 1], points[:, 0]))
    pts = points[order]
    first = np.r_[True, pts[1:, 0] != pts[:-1, 0]]
    last = np.r_[pts[1:, 0] != pts[:-1, 0], True]
    pts = np.unique(pts[first | last], axis=0)
    if len(pts) <= 2:
        return pts

    def half(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.asarray(lower[:-1] + upper[:-1])


def _quadrant_inf(q: np.ndarray, vertices: np.ndarray) -> float:
    """inf_{t>0} G(t), G = [H(t)² − 1 − t²]/(2t), H(t) = max_μ (q_μ0 + t q_μ1).

    q: (P, 2) normalised points (max of each column ≥ 1 by construction);
    vertices: (V, 2) their convex hull vertices. Returns +inf when unbounded."""
    a, b = vertices[:, 0], vertices[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (np.roll(a, -1) - a) / (b - np.roll(b, -1))                 # ties between adjacent vertices
    t = t[np.isfinite(t) & (t > 0)]
    values = [np.inf]
    if t.size:
        h = np.max(a[None, :] + t[:, None] * b[None, :], axis=1)
        values.append(np.min((h ** 2 - 1 - t ** 2) / (2 * t)))
    # t → 0⁺: H → max q0 = A; G → +inf if A > 1, else (A = 1) → max{q1 : q0 = A}.
    top0 = q[:, 0].max()
    if top0 <= 1.0:
        values.append(q[q[:, 0] == top0, 1].max())
    top1 = q[:, 1].max()                                                 # t → ∞, by symmetry
    if top1 <= 1.0:
        values.append(q[q[:, 1] == top1, 0].max())
    return float(min(values))


def _pair_band(x: np.ndarray, y: np.ndarray):
    """(c, c_lo, c_hi) of one centred pair, in units of e_x e_y."""
    ex = min(-x.min(), x.max())
    ey = min(-y.min(), y.max())
    p = np.stack([x / ex, y / ey], axis=1)
    c = float(np.mean(p[:, 0] * p[:, 1]))
    vertices = _hull(p)
    infs = {}
    for sx, sy in itertools.product((1.0, -1.0), repeat=2):
        flip = np.array([-sx, -sy])
        infs[(sx, sy)] = _quadrant_inf(p * flip, vertices * flip)
    c_lo = -min(infs[(1.0, 1.0)], infs[(-1.0, -1.0)])
    c_hi = min(infs[(1.0, -1.0)], infs[(-1.0, 1.0)])
    return c, c_lo, c_hi


def covariance_band(sources):
    """Normalised covariances and the band (2.1) allows, per pair of sources.

    Args:
      sources: (n_samples, n_sources) array, one sample per row.
    Returns:
      (c, c_lo, c_hi), each (n_sources, n_sources), symmetric, diagonal NaN:
      c_ij = ⟨s̄_i s̄_j⟩ / (e_i e_j) and the bounds c_lo ≤ c ≤ c_hi of (2.1)
      (arXiv 2410.06232 Thm 2.1), set by the support only (±inf if unbounded).
    """
    s = _check_sources(sources)
    k = s.shape[1]
    out = np.full((3, k, k), np.nan)
    for i, j in itertools.combinations(range(k), 2):
        out[:, i, j] = out[:, j, i] = _pair_band(s[:, i], s[:, j])
    return out[0], out[1], out[2]


def pairwise_margins(sources) -> np.ndarray:
    """m_ij = min(c − c_lo, c_hi − c) (normalised; see the module docstring):
    ≥ 0 iff the pair (i, j) modularises (arXiv 2410.06232 Thm 2.1).

    Args: sources: (n_samples, n_sources). Returns: (n_sources, n_sources), diagonal +inf."""
    c, lo, hi = covariance_band(sources)
    m = np.minimum(c - lo, hi - c)
    np.fill_diagonal(m, np.inf)
    return m


def modularisation_margin(sources) -> float:
    """min over pairs of ``pairwise_margins``: the quantity ``is_modular`` thresholds at 0.
    1 for independent uniform sources on a box; negative when some pair mixes."""
    return float(np.min(pairwise_margins(sources)))


def is_modular(sources) -> bool:
    """Whether the optimal nonnegative, energy-efficient linear autoencoder of this
    sample of sources is modular (arXiv 2410.06232 Thm 2.1, every pair; at equality
    modular and mixed codes tie and we answer True).

    Args:
      sources: (n_samples, n_sources) array, n_samples ≥ 2, n_sources ≥ 2, no
        constant source. Any location, scale or sign of each source.
    """
    return modularisation_margin(sources) >= 0.0


# ------------------------------------------------ the corner-cut square family

def _check_delta(delta) -> np.ndarray:
    d = np.asarray(delta, dtype=float)
    if not np.all((d > 0) & (d <= 1)):
        raise ValueError(f"delta={delta!r} is invalid; allowed: 0 < delta ≤ 1 (half-width of the kept strip "
                         "|s_1 + s_2| ≤ delta inside [−½, ½]²)")
    return d


def strip_covariance(delta):
    """c(δ) = ⟨s_1 s_2⟩ for s uniform on {|s_1|, |s_2| ≤ ½, |s_1 + s_2| ≤ δ} (our derivation).

    With u = s_1 + s_2, v = s_1 − s_2 the region is |u| ≤ δ, |v| ≤ 1 − |u|, so with
    area ∝ A = 4δ − 2δ²: ⟨u²⟩ = (4δ³/3 − δ⁴)/A, ⟨v²⟩ = (1 − (1 − δ)⁴)/(3A) and
    c = (⟨u²⟩ − ⟨v²⟩)/4 (0 at δ = 1, → −1/12 as δ → 0). The mean stays 0 by symmetry."""
    d = _check_delta(delta)
    area = 4 * d - 2 * d ** 2
    return ((4 * d ** 3 / 3 - d ** 4) - (1 - (1 - d) ** 4) / 3) / (4 * area)


def strip_margin(delta):
    """Normalised margin m(δ) of the continuous strip family (our derivation from Thms 2.1-2.2).

    e = ½ for both sources, so S = [[¼, −c], [−c, ¼]]. The facets s_i = ±½ touch the
    ellipse for every δ; the cut facets s_1 + s_2 = ±δ (normal u = (1, 1)/√2, support
    δ/√2) contain it iff uᵀSu = ¼ − c ≤ δ²/2, i.e. c ≥ c_lo = ¼ − δ²/2. The uncut
    corners (±½, ∓½) give c_hi = e² = ¼ ≥ c. So m = (c − c_lo)/e² = 4c(δ) + 2δ² − 1:
    1 at δ = 1, 0 at ``strip_switch``, −1 − 1/3 as δ → 0."""
    d = _check_delta(delta)
    return 4 * strip_covariance(d) + 2 * d ** 2 - 1


def strip_switch() -> float:
    """δ* with strip_margin(δ*) = 0: cut corners deeper (δ < δ*) and the code mixes.
    Bisection on (0.5, 1] where strip_margin is increasing (it is −0.10 at ½ and +1 at 1)."""
    lo, hi = 0.5, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if strip_margin(mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)
