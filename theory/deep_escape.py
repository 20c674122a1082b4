"""The σ → 0 escape process of a deep linear network from small random init.

Our derivation (the reduction behind ``theory.saddle``; setting of that module:
white inputs, Σyx = Σ_k s_k u_k v_kᵀ, depth L ≥ 3 weight layers of hidden
width h, every entry i.i.d. N(0, σ²), τ dθ/dt = −∂L/∂θ).

1. Linear regime. While W = W_L⋯W_1 is O(σ^L), the loss is −Σ_k s_k u_kᵀ W v_k
   up to O(σ^{2L}), and only a_k = W_1 v_k, b_k = W_Lᵀ u_k (∈ R^h) and the
   middle layers M_2, …, M_{L−1} (h × h, shared by all modes) move:

       F(θ) = Σ_k s_k b_kᵀ M_{L−1}⋯M_2 a_k,      τ dθ/dt = ∇F(θ).

   F is homogeneous of degree L, so with θ = σ√h θ̂ and T = t (σ√h)^{L−2}/τ the
   flow is dθ̂/dT = ∇F(θ̂) from a_k, b_k ~ N(0, I_h/h), M_l ~ N(0, 1/h) entries:
   scale free, it depends on L, h and the ratios of s only. It blows up in
   finite time T_1 (the first escape; Saxe et al. 2014, arXiv 1312.6120, Sec. 4
   give the aligned balanced blow-up τ da/dt = s a^{L−1}).
2. After an escape. The escaped mode j saturates at u_j = s_j in O(1) real time
   (negligible against the plateau, ∝ σ^{−(L−2)}); its path through the hidden
   layers is q_1 = a_j/|a_j|, q_l ∝ M_l⋯M_2 a_j. Every other mode's cross-talk
   with it (u_jᵀ W v_k, u_kᵀ W v_j) then costs a loss with a curvature ∝ the
   saturated weights, which removes, in O(1) real time, a_k's component along
   q_1, b_k's along q_{L−1} and the components of the chain M_l⋯M_2 a_k along
   q_l (the cheapest move is along a_k or b_k, whose gradient carries the
   large weights of all other layers). So the slow dynamics continues on the
   projected variables a_k ← P_1 a_k, b_k ← P_{L−1} b_k, M_l ← P_l M_l P_{l−1},
   P_l = I − q_l q_lᵀ, until the next blow-up; the hidden space shrinks by one
   per escape (h − k + 1 directions left for mode k).

The escape time of mode k is T_k (scale-free units); its law over inits is
sampled here by integrating the process. Two effects the one-mode picture
misses come out of it: modes share the middle layers, and the escaped paths q
are the directions the random middle layers favour, which later modes also
grow along, so projecting them out delays later modes by a few % beyond the
loss of one random direction (the "2–5% late" of earlier versions).

Numerics: classical RK4 in a time s with dT/ds = 1/g, g the fastest relative
rate of change max(|∂F/∂a_k|/|a_k|, |∂F/∂b_k|/|b_k|, ‖∂F/∂M_l‖/‖M_l‖) (each step
changes every block by at most ≈ ``step`` relatively, and the blow-up is pushed to s = ∞);
an epoch ends when a mode's |a_k| or |b_k| passes ``rho_stop``, its remaining
time is the aligned balanced one, a^{−(L−2)}/((L−2) s_k) with a = F_k^{1/L}
(relative error O(1/a²)). Truncating the other modes' evolution at that point
changes their times little: the medians agree to 1e-4 for rho_stop = 1e2 … 1e5
(s = (4, 2, 1), L = 3, h = 8). With step 0.2 the RK4 error is ≈ 3e-4 relative
(step 0.1 vs 0.2 at L = 3, h = 8 and L = 4, h = 32), below the Monte-Carlo error.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np


class EscapeStatistics(NamedTuple):
    """Law of the scale-free escape times over inits (module docstring).

    constant: (r,) C_k = s_k · median_inits T_k (one mode, r = 1: C_L(h)).
    standard_error: (r,) Monte-Carlo standard error of ``constant``
      (order statistics: half the width of the ±1σ binomial band of the median).
    log_std: (r,) standard deviation over inits of ln T_k.
    samples: (n, r) s_k T_k for each sampled init (inf: never escapes, k > h).
    """

    constant: np.ndarray
    standard_error: np.ndarray
    log_std: np.ndarray
    samples: np.ndarray


def _gradient(a, b, ms, weight):
    """∇F for a batch: a, b (n, r, h), ms (n, L−2, h, h), weight (n, r) = s_k on live modes, 0 else."""
    zs = [a]  # z^(l) = M_{l+1}⋯M_2 a_k, the forward chain, rows (n, r, h)
    for l in range(ms.shape[1]):
        zs.append(np.matmul(zs[-1], ms[:, l].transpose(0, 2, 1)))
    ws = [b]  # backward chain M_{l+1}ᵀ⋯M_{L−1}ᵀ b_k
    for l in reversed(range(ms.shape[1])):
        ws.append(np.matmul(ws[-1], ms[:, l]))
    ws = ws[::-1]
    ga, gb = weight[..., None] * ws[0], weight[..., None] * zs[-1]
    gm = np.stack([np.matmul((weight[..., None] * ws[l + 1]).transpose(0, 2, 1), zs[l]) for l in range(ms.shape[1])], axis=1)
    return ga, gb, gm, np.sum(b * zs[-1], axis=-1)


def _field(a, b, ms, weight):
    """(dθ/ds, dT/ds) with dT/ds = 1/g, g the fastest relative rate of change of a live a_k, b_k or an M_l."""
    ga, gb, gm, _ = _gradient(a, b, ms, weight)
    with np.errstate(divide="ignore", invalid="ignore"):
        ra = np.linalg.norm(ga, axis=-1) / np.linalg.norm(a, axis=-1)
        rb = np.linalg.norm(gb, axis=-1) / np.linalg.norm(b, axis=-1)
        rm = np.linalg.norm(gm, axis=(-2, -1)) / np.linalg.norm(ms, axis=(-2, -1))  # (n, L−2)
    g = np.max(np.where(weight > 0, np.nan_to_num(np.maximum(ra, rb)), 0.0), axis=-1)
    if rm.shape[1]:
        g = np.maximum(g, np.max(np.nan_to_num(rm), axis=-1))
    inv = 1.0 / np.maximum(g, 1e-6)
    return ga * inv[:, None, None], gb * inv[:, None, None], gm * inv[:, None, None, None], inv


def _sample_process(s, depth, width, n, seed, step, rho_stop):
    """(n, r) scale-free escape times T_k (rates s, one row per init); inf if never."""
    rng = np.random.default_rng(seed)
    r, h = s.size, width
    a = rng.standard_normal((n, r, h)) / math.sqrt(h)
    b = rng.standard_normal((n, r, h)) / math.sqrt(h)
    ms = rng.standard_normal((n, depth - 2, h, h)) / math.sqrt(h)
    return _run_process(a, b, ms, s, step, rho_stop)


def _run_process(a, b, ms, s, step, rho_stop, max_steps=200_000):
    """Integrate the escape process from a, b: (n, r, h), ms: (n, L−2, h, h); (n, r) times."""
    a, b, ms = (np.array(x, dtype=np.float64) for x in (a, b, ms))
    n, r, h = a.shape
    depth = ms.shape[1] + 2
    live = np.ones((n, r), bool)
    live[:, h:] = False  # at most h modes escape: the hidden space is used up
    t, times = np.zeros(n), np.full((n, r), np.inf)
    for _ in range(max_steps):
        going = live.any(axis=1)
        if not going.any():
            break
        idx = np.nonzero(going)[0]
        a_, b_, m_, w_ = a[idx], b[idx], ms[idx], np.where(live[idx], s, 0.0)
        k1 = _field(a_, b_, m_, w_)
        k2 = _field(a_ + step / 2 * k1[0], b_ + step / 2 * k1[1], m_ + step / 2 * k1[2], w_)
        k3 = _field(a_ + step / 2 * k2[0], b_ + step / 2 * k2[1], m_ + step / 2 * k2[2], w_)
        k4 = _field(a_ + step * k3[0], b_ + step * k3[1], m_ + step * k3[2], w_)
        a[idx] = a_ + step / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        b[idx] = b_ + step / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        ms[idx] = m_ + step / 6 * (k1[2] + 2 * k2[2] + 2 * k3[2] + k4[2])
        t[idx] += step / 6 * (k1[3] + 2 * k2[3] + 2 * k3[3] + k4[3])
        size = np.where(live, np.maximum(np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)), 0.0)
        for i in np.nonzero(size.max(axis=1) >= rho_stop)[0]:
            j = int(np.argmax(size[i]))
            _, _, _, f = _gradient(a[i : i + 1], b[i : i + 1], ms[i : i + 1], np.ones((1, r)))
            # the remaining aligned balanced blow-up time, a^{−(L−2)}/((L−2) s_j), a = F_j^{1/L}
            times[i, j] = t[i] + f[0, j] ** (-(depth - 2) / depth) / ((depth - 2) * s[j])
            qs = [a[i, j]]  # the escaped path q_1, ..., q_{L−1} through the hidden layers
            for l in range(depth - 2):
                qs.append(ms[i, l] @ qs[-1])
            qs = [q / np.linalg.norm(q) for q in qs]
            a[i] -= np.outer(a[i] @ qs[0], qs[0])
            b[i] -= np.outer(b[i] @ qs[-1], qs[-1])
            for l in range(depth - 2):  # M_l ← P_l M_l P_{l−1}
                m = ms[i, l] - np.outer(ms[i, l] @ qs[l], qs[l])
                ms[i, l] = m - np.outer(qs[l + 1], qs[l + 1] @ m)
            live[i, j] = False
            a[i, j] = b[i, j] = 0.0
    return times


def default_samples(width: int) -> int:
    """Inits sampled by default: the relative spread of T_k is ≈ 0.5–1/√h (module
    ``theory.saddle``), so n = 8192/h (at least 256, at most 2048) keeps the
    Monte-Carlo error of the median ≈ 1.25 · spread/√n below ≈ 1.4% at every width
    (≈ 0.5-1% at h ≤ 32) at a cost ∝ n h² ∝ h."""
    return int(min(2048, max(256, 8192 // max(int(width), 1))))


@functools.lru_cache(maxsize=256)
def _statistics(ratios: tuple, depth: int, width: int, n_samples: int, seed: int, step: float, rho_stop: float):
    s = np.asarray(ratios, dtype=np.float64)
    out = s * _sample_process(s, depth, width, n_samples, seed, step, rho_stop)
    with np.errstate(invalid="ignore"):
        median = np.median(out, axis=0)
        # order-statistic band of the median: ranks n/2 ± √n/2 hold it with 68% probability
        lo, hi = np.quantile(out, [0.5 - 0.5 / math.sqrt(n_samples), 0.5 + 0.5 / math.sqrt(n_samples)], axis=0)
        log_std = np.std(np.log(out), axis=0)
    return median, 0.5 * (hi - lo), log_std, out


def escape_statistics(s, *, depth: int, width: int, n_samples: int | None = None, seed: int = 0,
                      step: float = 0.2, rho_stop: float = 1e2) -> EscapeStatistics:
    """Sample the σ → 0 escape process (module docstring) and return its statistics.

    s: (r,) positive singular values (only their ratios matter; sorted descending
    here). depth ≥ 3, width ≥ 1: Python ints. n_samples inits (default
    ``default_samples(width)``) drawn from PRNG key ``seed``: the result is
    deterministic, and cached per arguments. Runs on the host (numpy out).
    """
    depth, width = int(depth), int(width)
    if depth < 3:
        raise ValueError(f"escape_statistics needs depth ≥ 3 (depth 2 has no finite-time escape), got {depth}")
    if width < 1:
        raise ValueError(f"width must be ≥ 1, got {width}")
    s = np.sort(np.asarray(s, dtype=float).ravel())[::-1]
    if s.size == 0 or not np.all(s > 0):
        raise ValueError(f"s must be a non-empty sequence of positive values, got {s.tolist()}")
    n = default_samples(width) if n_samples is None else int(n_samples)
    if n < 16:
        raise ValueError(f"n_samples must be ≥ 16, got {n}")
    ratios = tuple(float(x) for x in s / s[0])
    median, se, log_std, out = _statistics(ratios, depth, width, n, int(seed), float(step), float(rho_stop))
    return EscapeStatistics(median.copy(), se.copy(), log_std.copy(), out.copy())


def escape_times_from_init(weights, u, v, s, *, tau: float = 1.0, step: float = 0.2, rho_stop: float = 1e2) -> np.ndarray:
    """σ → 0 escape (blow-up) time of every mode of given networks, from their own init.

    weights: [W_1 (n, h, n_in), W_2 … W_{L−1} (n, h, h), W_L (n, n_out, h)] for n
    networks of depth L ≥ 3 (a leading seed axis); u: (n_out, r), v: (n_in, r)
    orthonormal singular vectors of Σyx with values s (r,), descending. The
    process of the module docstring is run from a_k = W_1 v_k, b_k = W_Lᵀ u_k
    and the middle layers as they are (rescaled by c = rms(W_1)·√h for the
    numerics; the flow is homogeneous, so T = t c^{L−2}/τ); returns (n, r)
    times t*_k in the units of t (inf for modes the width cannot hold). This is
    the per-seed prediction behind the median of ``escape_statistics``.
    """
    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    if len(ws) < 3 or any(w.ndim != 3 for w in ws):
        raise ValueError("weights must be ≥ 3 arrays with a leading seed axis: (n, h, n_in), (n, h, h)…, (n, n_out, h)")
    s = np.asarray(s, dtype=np.float64).ravel()
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if not (np.all(np.diff(s) <= 0) and np.all(s > 0)) or u.shape[1] != s.size or v.shape[1] != s.size:
        raise ValueError(f"need s positive and descending with u, v of r = {s.size} columns; got s={s.tolist()}, "
                         f"u {u.shape}, v {v.shape}")
    depth, h = len(ws), ws[0].shape[1]
    c = np.sqrt(np.mean(ws[0] ** 2, axis=(1, 2)) * h)  # (n,)
    a = np.einsum("nij,jr->nri", ws[0], v) / c[:, None, None]
    b = np.einsum("nji,jr->nri", ws[-1], u) / c[:, None, None]
    ms = np.stack(ws[1:-1], axis=1) / c[:, None, None, None]
    ratios = s / s[0]
    times = _run_process(a, b, ms, ratios, step, rho_stop)  # T' = t c^{L−2} s_1 / τ
    return tau * times / (s[0] * c[:, None] ** (depth - 2))
