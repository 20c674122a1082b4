"""Saddle-to-saddle dynamics of deep linear networks from small random init.

Setting (docs/design.md conventions): white inputs Σxx = I, Σyx = Σ_α s_α u_α v_αᵀ
(s descending), loss L = ½ tr Σyy − tr(W Σyxᵀ) + ½‖W‖²_F with W = W_L⋯W_1,
gradient flow τ dW_l/dt = −∂L/∂W_l, and every layer initialised i.i.d.
N(0, σ²) (``models.linear.init_gaussian(key, (n_in, h, ..., h, n_out),
std=σ)``, depth L weight layers, hidden width h).

From σ → 0 the network visits a sequence of saddles: it sits near the rank-k
solution (modes 1..k learned) for a long plateau, then learns mode k+1 in a
short transition (Saxe, McClelland & Ganguli 2014, arXiv 1312.6120; Jacot et
al. 2021, arXiv 2106.15933; Zhang, Saxe & Latham, arXiv 2512.20607). The
plateau losses are fixed by the data; the transition times by the init.

Effective initial mode strength (derived here). Near zero only the projections
a_k = W_1 v_k ∈ R^h and b_k = W_Lᵀ u_k ∈ R^h and the middle layers move:

* depth 2: τ da_k/dt = s_k b_k, τ db_k/dt = s_k a_k, so a_k + b_k grows as
  e^{s_k t/τ} while a_k − b_k decays, and u_k = b_k·a_k →
  ¼‖a_k(0) + b_k(0)‖² e^{2 s_k t/τ}. This is the small-u limit of the aligned
  logistic of Saxe et al. (Eq. 8) with u0 = ¼‖a_k(0) + b_k(0)‖² = (σ²/2) χ²_h.
  Hidden directions already used by the k − 1 stronger modes are projected
  out of mode k once those are learned (the loss penalises the cross-talk),
  leaving h_k = h − k + 1 directions, so

      u0_eff,k = (σ²/2) · median(χ²_{h_k}),     h_k = h − k + 1.

* depth L ≥ 3: the near-zero flow τ dθ/dt = ∇_θ s_k u_kᵀ W_L⋯W_1 v_k is
  homogeneous of degree L − 1, so with θ = σ√h θ̂ (θ̂ of order one) it is
  scale free in T = t s_k σ^{L−2} h^{(L−2)/2}/τ: it blows up at a random T*
  whose law depends on L and h only, with median C_L(h); the aligned
  balanced solution of Saxe et al.
  (τ da/dt = s a^{L−1}, u = a^L) blows up at t* = τ / ((L−2) s a0^{L−2}).
  Matching the two blow-up times (both dynamics are aligned and balanced by
  then, and the saturation s − u does not act yet) gives

      a0_eff,k = σ √h_k · ((L − 2) C_L(h_k))^{−1/(L−2)},   u0_eff,k = a0_eff,k^L,

  with C_L(h) the median blow-up time of the scale-free problem
  dã/dT = M_2ᵀ⋯ b̃, …, over ã, b̃ ~ N(0, I_h/h), M_l ~ N(0, 1/h) entries
  (``escape_constant``). It has no closed form we know; it was computed once
  by Monte Carlo (1000 inits per width for h ≤ 16, float64 Tsit5, see
  ``escape_constant``), and is fitted as C_L(h) = c0 + c1/h + c2/h².
  The distribution concentrates as h grows (relative spread ≈ 0.5/√h at
  L = 3), so single runs at small width scatter by ~20% around the median.
  The same h_k = h − k + 1 applies to later modes. Simulated later modes
  come 2–5% after this prediction (h = 8 and 32, medians over 16–40 seeds):
  the k − 1 learned modes took hidden directions favoured by the random
  middle layers, not random ones (removing instead the top singular pairs
  of M_2 in the scale-free problem overshoots by a similar amount at h = 8).

The transition time of mode k (mode half learned, u_k = s_k/2) is then the
aligned time ``theory.linear.deep_mode_time(u0_eff,k, s_k/2, s=s_k, depth=L)``,
the median over random inits. Leading order: depth 2,
t_k = (τ/2s_k) ln(s_k/u0_eff,k − 1) ≈ (τ/s_k) ln(1/σ); depth L ≥ 3,
t_k ≈ τ C_L(h_k) / (s_k σ^{L−2} h_k^{(L−2)/2}) ∝ σ^{−(L−2)}. Modes grow
independently from t = 0 in the linear regime, so each time follows from its
own u0_eff,k.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from theory.linear import deep_mode_strength, deep_mode_time

# Median blow-up time C_L(h) of the scale-free escape problem (module docstring),
# fitted as c0 + c1/h + c2/h² to Monte Carlo medians at h = 2..64; see escape_constant.
_ESCAPE_FIT = {
    3: (1.1574, 0.531, 0.0),
    4: (0.5882, 0.5698, 0.0),
    5: (0.3921, 0.3371, 0.8821),
}
_ESCAPE_H1 = {3: 1.85, 4: 1.48, 5: 1.60}


def _sorted_s(s) -> jnp.ndarray:
    """s as a descending float array; values are checked when concrete (not under jit)."""
    s = jnp.sort(jnp.asarray(s, dtype=jnp.result_type(float)).ravel())[::-1]
    if s.size == 0:
        raise ValueError("s must be a non-empty sequence of singular values")
    if not isinstance(s, jax.core.Tracer) and bool(jnp.any(s <= 0)):
        raise ValueError(f"s must be positive, got {np.asarray(s).tolist()}")
    return s


def plateau_losses(s, *, trace_yy):
    """Loss on the saddle plateaus: after k = 0..r modes are learned,

        L_k = ½ tr Σyy − ½ Σ_{α ≤ k} s_α²        (white inputs, s sorted descending)

    (the rank-k saddle W = Σ_{α≤k} s_α u_α v_αᵀ; Saxe et al. 2014, arXiv
    1312.6120; Zhang, Saxe & Latham, arXiv 2512.20607). Any depth ≥ 2.
    Returns (r + 1,); L_r is the global minimum ½ tr Σyy − ½ Σ s² (0 without noise).
    """
    s = jnp.sort(jnp.asarray(s, dtype=jnp.result_type(float)).ravel())[::-1]
    learned = jnp.concatenate([jnp.zeros(1, s.dtype), jnp.cumsum(s**2)])
    return 0.5 * jnp.asarray(trace_yy, s.dtype) - 0.5 * learned


def escape_constant(depth: int, width: int) -> float:
    """C_L(h): median blow-up time of the scale-free escape problem of depth L ≥ 3.

    The near-zero flow of one mode, rescaled (module docstring), is gradient
    ascent dθ̂/dT = ∇f on f = b̃ᵀ M_{L−1}⋯M_2 ã with ã, b̃ ~ N(0, I_h/h) and
    M_l having i.i.d. N(0, 1/h) entries; T* is the time f → ∞ and C_L(h) its
    median over inits. No closed form is known to us, so it was computed by
    Monte Carlo (float64 Tsit5 to ‖ã‖² = 10⁶, then the aligned remainder
    1/((L−2) f^{(L−2)/L}); 1000 inits per h ≤ 16, 400 at h = 32, 200 at 64):

        h        1     2      3      4      6      8      12     16     32     64
        L = 3  1.85  1.424  1.335  1.281  1.245  1.227  1.208  1.187  1.171  1.167
        L = 4  1.48  0.874  0.798  0.733  0.675  0.651  0.635  0.630  0.606  0.596
        L = 5  1.60  0.758  0.609  0.528  0.480  0.450  0.424  0.414  0.402  0.401

    (standard errors 0.5–1% for h ≥ 4, 2–6% at h = 2, 3; h = 1 is heavy-tailed
and only indicative) and
    fitted for h ≥ 2 by c0 + c1/h + c2/h²: L = 3: 1.1574 + 0.531/h;
    L = 4: 0.5882 + 0.5698/h; L = 5: 0.3921 + 0.3371/h + 0.8821/h² (residuals
    within 1–2 standard errors, except 3% at L = 5, h = 2). The spread of T*
    shrinks like ≈ 0.5/√h (L = 3) to ≈ 1/√h (L = 5). Empirically
    (L − 2)·C_L(∞) ≈ 1.16–1.18 for L = 3, 4, 5. ``tests/test_saddle_theory.py::
    test_escape_constant_monte_carlo`` (slow) re-estimates it. Depth 3, 4, 5.
    """
    depth, width = int(depth), int(width)
    if depth not in _ESCAPE_FIT:
        raise ValueError(f"escape_constant is tabulated for depth in {sorted(_ESCAPE_FIT)}, got {depth}")
    if width < 1:
        raise ValueError(f"width must be ≥ 1, got {width}")
    if width == 1:
        return _ESCAPE_H1[depth]
    c0, c1, c2 = _ESCAPE_FIT[depth]
    return c0 + c1 / width + c2 / width**2


def _chi2_median(k: int) -> float:
    """Median of χ²_k (scipy's inverse χ² survival function; scipy ships with jax)."""
    return float(scipy.special.chdtri(k, 0.5))


def _check(init_scale, depth, width):
    if int(depth) != depth or depth < 2:
        raise ValueError(f"depth must be an integer ≥ 2 (weight layers), got {depth}")
    if int(width) != width or width < 1:
        raise ValueError(f"width must be an integer ≥ 1, got {width}")
    if not isinstance(init_scale, jax.core.Tracer) and not float(init_scale) > 0:
        raise ValueError(f"init_scale must be > 0, got {init_scale}")


def _u0_coefficients(r: int, depth: int, width: int) -> np.ndarray:
    """c_k with u0_eff,k = c_k σ^L (static in depth and width); 0 for modes beyond the width."""
    out = np.zeros(r)
    for k in range(min(r, width)):
        h_k = width - k
        if depth == 2:
            out[k] = 0.5 * _chi2_median(h_k)
        else:
            out[k] = (math.sqrt(h_k) * ((depth - 2) * escape_constant(depth, h_k)) ** (-1.0 / (depth - 2))) ** depth
    return out


def effective_u0(s, *, init_scale, depth, width):
    """Effective initial strength u0_eff,k of each mode (module docstring), shape (r,).

    depth 2:   u0_eff,k = (σ²/2) · median(χ²_{h−k+1});
    depth ≥ 3: u0_eff,k = [σ √(h−k+1) ((L−2) C_L(h−k+1))^{−1/(L−2)}]^L.
    The aligned balanced solution started at u0_eff,k reaches u_k = s_k/2 at
    the median time a network from i.i.d. N(0, σ²) init does. Modes beyond the
    width (k > h) are never learned and get u0_eff = 0. Only the number of
    modes r = len(s) matters here. depth, width: Python ints (static under
    jit); init_scale may be traced.
    """
    _check(init_scale, depth, width)
    s = _sorted_s(s)
    coef = jnp.asarray(_u0_coefficients(s.size, int(depth), int(width)), s.dtype)
    return coef * jnp.asarray(init_scale, s.dtype) ** int(depth)


def transition_times(s, *, init_scale, depth, width, tau=1.0, fraction=0.5):
    """Median time at which mode k is half learned, u_k(t) = s_k/2, k = 1..r.

    Network: sizes (n_in, width, ..., width, n_out) with ``depth`` weight
    layers, every entry i.i.d. N(0, init_scale²), white inputs, gradient flow
    τ dW/dt = −∂L/∂W on L = (1/2P)Σ‖y − ŷ‖² (GD with rate η: τ = 1/η, t = step).

        t_k = deep_mode_time(u0_eff,k, fraction·s_k, s=s_k, depth)

    with u0_eff,k from ``effective_u0`` (derivation in the module docstring);
    in closed form t_k = (τ/2s_k) ln(s_k/u0_eff,k − 1) at depth 2 (fraction ½) and, to leading order,
    t_k ≈ τ C_L(h_k)/(s_k σ^{L−2} h_k^{(L−2)/2}) at depth L ≥ 3, h_k = width − k + 1.
    n_in and n_out do not enter: only W_1 v_k and W_Lᵀ u_k move early on,
    and they are N(0, σ² I_h) whatever the input and output dimensions.
    Accurate for σ ≪ s^{1/L} and well separated s (ratios ≳ 2); the median over
    inits of the simulated time agrees within a few % (tests/test_saddle_theory.py).
    Modes beyond the width (k > width) get t = inf. s is sorted descending.
    ``fraction`` (default ½) sets the target u_k = fraction·s_k.
    depth, width: Python ints; s, init_scale, tau may be traced (jit/vmap).

    The loss crosses L_{k−1} − ¾(L_{k−1} − L_k) when u_k = s_k/2, so these are
    the times ``dynamics.plateaus.detect_plateaus`` (default level=0.75) reports.
    """
    _check(init_scale, depth, width)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    s = _sorted_s(s)
    u0 = effective_u0(s, init_scale=init_scale, depth=depth, width=width)
    learnable = u0 > 0
    t = deep_mode_time(jnp.where(learnable, u0, 1.0), fraction * s, s=s, depth=int(depth), tau=tau)
    return jnp.where(learnable, t, jnp.inf)


def rank_staircase(t, s, *, trace_yy, init_scale, depth, width, tau=1.0):
    """Predicted loss curve and rank: (loss(t), rank(t)), each shaped like t.

    Each mode follows the aligned solution from its effective init,
    u_k(t) = deep_mode_strength(t, s_k, u0_eff,k, depth), and
    L(t) = ½ tr Σyy − Σ_k (s_k u_k − ½ u_k²); rank(t) counts modes past half
    learned (u_k > s_k/2). Median-init prediction, as ``transition_times``.
    """
    s_j = _sorted_s(s)
    u0 = effective_u0(s_j, init_scale=init_scale, depth=depth, width=width)
    t = jnp.asarray(t, dtype=jnp.result_type(float))
    live = u0 > 0
    u = deep_mode_strength(t[..., None], s=s_j, u0=jnp.where(live, u0, 1e-300), depth=int(depth), tau=tau)
    u = jnp.where(live, u, 0.0)
    loss = 0.5 * jnp.asarray(trace_yy) - jnp.sum(s_j * u - 0.5 * u**2, axis=-1)
    rank = jnp.sum(u > 0.5 * s_j, axis=-1)
    return loss, rank


def predict(s, *, init_scale, depth, width, trace_yy=None, tau=None, learning_rate=None):
    """The staircase of a deep linear net from i.i.d. N(0, init_scale²) init, as a ``Staircase``.

    Setting as ``transition_times``: white inputs, Σyx singular values ``s``,
    ``depth`` weight layers of hidden ``width``. plateau_losses from
    ``plateau_losses`` (trace_yy = tr Σyy, default Σ s², a noiseless teacher),
    transition_times from ``transition_times`` (median over inits, mode half
    learned, so level = 0.75), ranks 0..n. Modes beyond the width are never
    learned and have no plateau. Time: ``tau`` (flow) or ``learning_rate`` η
    (GD, τ = 1/η, times in steps). Any depth ≥ 2 for which ``escape_constant``
    is available. Host-side (numpy), not for use under jit.
    """
    from theory.staircase import staircase, time_constant

    tau = time_constant(tau, learning_rate)
    s = np.sort(np.asarray(s, dtype=np.float64).ravel())[::-1]
    trace_yy = float(np.sum(s**2)) if trace_yy is None else float(trace_yy)
    times = np.asarray(transition_times(s, init_scale=init_scale, depth=depth, width=width, tau=tau))
    n = int(np.sum(np.isfinite(times)))
    losses = np.asarray(plateau_losses(s, trace_yy=trace_yy))[: n + 1]
    return staircase(losses, times[:n], np.arange(n + 1), 0.75)
