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

* depth L ≥ 3: the near-zero flow τ dθ/dt = ∇_θ Σ_k s_k u_kᵀ W_L⋯W_1 v_k is
  homogeneous of degree L − 1, so with θ = σ√h θ̂ (θ̂ of order one) it is
  scale free in T = t σ^{L−2} h^{(L−2)/2}/τ: mode k blows up at a random T_k
  whose law depends on L, h and the ratios of s only (``theory.deep_escape``:
  the modes share the middle layers, and each escape removes its hidden path
  from the later modes, leaving h − k + 1 directions for mode k). The aligned
  balanced solution of Saxe et al. (τ da/dt = s a^{L−1}, u = a^L) blows up at
  t* = τ / ((L−2) s a0^{L−2}). Matching the two blow-up times (both dynamics
  are aligned and balanced by then, and the saturation s − u does not act yet)
  gives

      a0_eff,k = σ √h · ((L − 2) C_k)^{−1/(L−2)},   u0_eff,k = a0_eff,k^L,

  C_k = s_k · median_inits T_k (one mode: C_L(h), ``escape_constant``). C_k is
  computed at call time by sampling the scale-free process (deterministic
  seed; Monte-Carlo standard error ≈ 1% of C_k by default, reported by
  ``theory.deep_escape.escape_statistics``); it has no closed form we know.
  Later modes escape later than a fresh init on h − k + 1 directions would
  (+1.5% for mode 2, +6% for mode 3 at L = 3, h = 8, s = (4, 2, 1)): the
  escaped paths are the directions the random middle layers amplify most,
  which the later modes had also been growing along.

The transition time of mode k (mode half learned, u_k = s_k/2) is then the
aligned time ``theory.linear.deep_mode_time(u0_eff,k, s_k/2, s=s_k, depth=L)``,
the median over random inits. Leading order: depth 2,
t_k = (τ/2s_k) ln(s_k/u0_eff,k − 1) ≈ (τ/s_k) ln(1/σ); depth L ≥ 3,
t_k ≈ τ C_k / (s_k σ^{L−2} h^{(L−2)/2}) ∝ σ^{−(L−2)}. Modes grow
independently from t = 0 in the linear regime, so each time follows from its
own u0_eff,k (depth ≥ 3: until the earlier escapes, which the process of
``theory.deep_escape`` includes).
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from theory.deep_escape import escape_statistics, escape_times_from_init
from theory.linear import deep_mode_strength, deep_mode_time

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


def escape_constant(depth: int, width: int, *, n_samples: int | None = None, seed: int = 0) -> float:
    """C_L(h): median blow-up time of the scale-free one-mode escape problem, depth L ≥ 3.

    The near-zero flow of one mode, rescaled (module docstring), is gradient
    ascent dθ̂/dT = ∇f on f = b̃ᵀ M_{L−1}⋯M_2 ã with ã, b̃ ~ N(0, I_h/h) and
    M_l having i.i.d. N(0, 1/h) entries; T* is the time f → ∞ and C_L(h) its
    median over inits (our derivation). Computed at call time by integrating
    that ODE from ``n_samples`` inits (``theory.deep_escape.escape_statistics``
    with one mode; default 8192/h inits in [256, 2048], Monte-Carlo standard
    error 0.5–1.4%, RK4 error ≈ 3e-4) and cached. It agrees with the fitted
    table of earlier versions within its Monte-Carlo error (e.g. L = 3, h = 8:
    1.22 vs 1.227). The spread of T* shrinks like ≈ 0.5/√h (L = 3) to
    ≈ 1/√h (L = 5); (L − 2)·C_L(∞) ≈ 1.16–1.18 for L = 3, 4, 5. Any depth ≥ 3,
    any width ≥ 1 (cost ∝ n h² L per step; seconds for h ≤ 32).
    """
    depth, width = int(depth), int(width)
    if depth < 3:
        raise ValueError(f"escape_constant needs depth ≥ 3 (depth 2 has no finite-time escape; see effective_u0), got {depth}")
    if width < 1:
        raise ValueError(f"width must be ≥ 1, got {width}")
    return float(escape_statistics((1.0,), depth=depth, width=width, n_samples=n_samples, seed=seed).constant[0])


def _check(init_scale, depth, width):
    if int(depth) != depth or depth < 2:
        raise ValueError(f"depth must be an integer ≥ 2 (weight layers), got {depth}")
    if int(width) != width or width < 1:
        raise ValueError(f"width must be an integer ≥ 1, got {width}")
    if not isinstance(init_scale, jax.core.Tracer) and not float(init_scale) > 0:
        raise ValueError(f"init_scale must be > 0, got {init_scale}")


def _log_normal_z(quantile: float) -> float:
    return float(scipy.special.ndtri(quantile))


def _u0_coefficients(s: np.ndarray, depth: int, width: int, quantile: float = 0.5) -> np.ndarray:
    """c_k with u0_eff,k = c_k σ^L (host numpy, s concrete); 0 for modes beyond the width.

    quantile q: the u0 whose aligned transition time is the q-quantile over
    inits of the escape time (q = ½: the median). Depth 2: χ² quantile 1 − q
    (a smaller u0 escapes later). Depth ≥ 3: the empirical quantile of the
    sampled C_k for q within [0.05, 0.95], beyond that the log-normal
    extrapolation median·exp(z_q·std ln T_k) (for horizons, not predictions).
    """
    r = s.size
    out = np.zeros(r)
    if depth == 2:
        for k in range(min(r, width)):
            out[k] = 0.5 * float(scipy.special.chdtri(width - k, quantile))
        return out
    stats = escape_statistics(s, depth=depth, width=width)
    if quantile == 0.5:
        c = stats.constant
    elif 0.05 <= quantile <= 0.95:
        c = np.quantile(stats.samples, quantile, axis=0)
    else:
        c = stats.constant * np.exp(_log_normal_z(quantile) * stats.log_std)
    with np.errstate(divide="ignore", invalid="ignore"):
        a0 = math.sqrt(width) * ((depth - 2) * c) ** (-1.0 / (depth - 2))
    return np.where(np.isfinite(c), a0**depth, 0.0)


def _coefficients(s, depth, width, quantile):
    """_u0_coefficients for a concrete or traced s (traced: through jax.pure_callback)."""
    if depth == 2 or not isinstance(s, jax.core.Tracer):
        return jnp.asarray(_u0_coefficients(np.asarray(s), depth, width, quantile), s.dtype)
    host = lambda v: _u0_coefficients(np.asarray(v), depth, width, quantile).astype(v.dtype)
    return jax.pure_callback(host, jax.ShapeDtypeStruct(s.shape, s.dtype), s, vmap_method="sequential")


def effective_u0(s, *, init_scale, depth, width, quantile=0.5):
    """Effective initial strength u0_eff,k of each mode (module docstring), shape (r,).

    depth 2:   u0_eff,k = (σ²/2) · median(χ²_{h−k+1})   (u0 = ¼‖a_k + b_k‖², derived here);
    depth ≥ 3: u0_eff,k = [σ √h ((L−2) C_k)^{−1/(L−2)}]^L, C_k = s_k median T_k of
    the σ → 0 escape process (``theory.deep_escape``, derived here; computed at call
    time, Monte-Carlo error ≈ 1% in C_k). ``quantile`` ≠ ½ gives the u0 of the
    q-quantile escape time instead (see ``_u0_coefficients``).
    The aligned balanced solution started at u0_eff,k reaches u_k = s_k/2 at
    the median time a network from i.i.d. N(0, σ²) init does. Modes beyond the
    width (k > h) are never learned and get u0_eff = 0. Only the number of
    modes r = len(s) and (depth ≥ 3) the ratios of s matter here. depth, width:
    Python ints (static under jit); init_scale and s may be traced (s through a
    host callback at depth ≥ 3).
    """
    _check(init_scale, depth, width)
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    s = _sorted_s(s)
    coef = _coefficients(s, int(depth), int(width), float(quantile))
    return coef * jnp.asarray(init_scale, s.dtype) ** int(depth)


def transition_times(s, *, init_scale, depth, width, tau=1.0, fraction=0.5, quantile=0.5):
    """Median time at which mode k is half learned, u_k(t) = s_k/2, k = 1..r.

    Network: sizes (n_in, width, ..., width, n_out) with ``depth`` weight
    layers, every entry i.i.d. N(0, init_scale²), white inputs, gradient flow
    τ dW/dt = −∂L/∂W on L = (1/2P)Σ‖y − ŷ‖² (GD with rate η: τ = 1/η, t = step).

        t_k = deep_mode_time(u0_eff,k, fraction·s_k, s=s_k, depth)

    with u0_eff,k from ``effective_u0`` (our derivation, module docstring; the aligned
    solution is Saxe et al. 2014, arXiv 1312.6120, Eq. 8 (depth 2) and Sec. 4 (depth L));
    in closed form t_k = (τ/2s_k) ln(s_k/u0_eff,k − 1) at depth 2 (fraction ½) and, to leading order,
    t_k ≈ τ C_k/(s_k σ^{L−2} h^{(L−2)/2}) at depth L ≥ 3 (C_1 = C_L(h), ``escape_constant``).
    ``quantile`` q ≠ ½: the q-quantile over inits instead of the median (e.g. a
    horizon by which every seed has escaped with high probability).
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
    u0 = effective_u0(s, init_scale=init_scale, depth=depth, width=width, quantile=quantile)
    learnable = u0 > 0
    # modes beyond the width get a placeholder start below their target (result replaced by inf)
    t = deep_mode_time(jnp.where(learnable, u0, 0.5 * fraction * s), fraction * s, s=s, depth=int(depth), tau=tau)
    return jnp.where(learnable, t, jnp.inf)


def rank_staircase(t, s, *, trace_yy, init_scale, depth, width, tau=1.0):
    """Predicted loss curve and rank: (loss(t), rank(t)), each shaped like t.

    Each mode follows the aligned solution from its effective init,
    u_k(t) = deep_mode_strength(t, s_k, u0_eff,k, depth), and
    L(t) = ½ tr Σyy − Σ_k (s_k u_k − ½ u_k²); rank(t) counts modes past half
    learned (u_k > s_k/2). Median-init prediction, as ``transition_times`` (our
    construction from the aligned solutions of Saxe et al. 2014, arXiv 1312.6120, Sec. 4).
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


def transition_time_spread(s, *, init_scale, depth, width, tau=1.0):
    """Spread over inits of each mode's transition time: std of ln t_k, shape (r,) (host numpy).

    Half the distance between the 84.1% and 15.9% quantiles of ln t_k (= the std for a
    normal ln t), from ``transition_times(..., quantile=q)``: depth 2 through the χ²
    law of u0_eff, depth ≥ 3 through the sampled escape process. The standard error
    of the median of n seeds is then ≈ 1.2533 · spread / √n (normal ln t); this sets
    how many seeds a comparison needs, before any training. inf beyond the width.
    """
    kw = dict(init_scale=init_scale, depth=depth, width=width, tau=tau)
    lo, hi = (np.log(np.asarray(transition_times(s, quantile=q, **kw))) for q in (0.158655, 0.841345))
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(hi), 0.5 * (hi - lo), np.inf)


def theory_relative_error(s, *, depth, width):
    """Monte-Carlo standard error of ``transition_times`` relative to itself, shape (r,).

    Depth 2: 0 (closed form). Depth ≥ 3: the standard error of C_k over C_k
    (``theory.deep_escape.escape_statistics``), which t_k inherits to leading order
    (t_k ∝ C_k on the plateau).
    """
    if int(depth) == 2:
        return np.zeros(np.asarray(s).size)
    st = escape_statistics(s, depth=int(depth), width=int(width))
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(st.constant), st.standard_error / st.constant, np.inf)


def transition_times_from_init(weights, u, v, s, *, tau=1.0, fraction=0.5):
    """Per-network transition times (u_k = fraction · s_k) predicted from each network's own init.

    weights: [W_1 (n, h, n_in), …, W_L (n, n_out, h)] with a leading seed axis;
    u (n_out, r), v (n_in, r), s (r,) descending: the teacher's SVD. Returns (n, r)
    (host numpy). Depth 2: u0_k = ¼‖P_k(a_k + b_k)‖², a_k = W_1 v_k, b_k = W_2ᵀ u_k,
    P_k removing the growing directions (a_j + b_j, themselves projected) of the
    modes j < k (module docstring, derived here), then the aligned logistic.
    Depth ≥ 3: the escape time t*_k of the σ → 0 process run from this init
    (``theory.deep_escape.escape_times_from_init``) matched to the aligned solution,
    a0 = (τ/((L−2) s_k t*_k))^{1/(L−2)}, u0 = a0^L, then ``deep_mode_time``.
    The medians of these over inits are ``transition_times``; here the sampling
    spread of the inits is gone, which makes few-seed comparisons sharp.
    """
    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    s = np.asarray(s, dtype=np.float64).ravel()
    depth = len(ws)
    if depth == 2:
        u_, v_ = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
        g = np.einsum("nij,jr->nri", ws[0], v_) + np.einsum("nji,jr->nri", ws[1], u_)  # a_k + b_k
        u0 = np.zeros(g.shape[:2])
        for k in range(min(g.shape[1], g.shape[2])):  # modes beyond the width keep u0 = 0
            for j in range(k):
                q = g[:, j] / np.linalg.norm(g[:, j], axis=-1, keepdims=True)
                g[:, k] -= np.sum(g[:, k] * q, axis=-1, keepdims=True) * q
            u0[:, k] = 0.25 * np.sum(g[:, k] ** 2, axis=-1)
    else:
        t_star = escape_times_from_init(ws, u, v, s, tau=tau)
        with np.errstate(divide="ignore"):
            u0 = (tau / ((depth - 2) * s * t_star)) ** (depth / (depth - 2))
    live = u0 > 0
    t = np.asarray(deep_mode_time(np.where(live, u0, 1.0), fraction * s, s=s, depth=depth, tau=tau))
    return np.where(live, t, np.inf)


def aligned_mode_through_half(dt, *, s, depth, tau=1.0, n_bisect=64):
    """Balanced aligned mode strength U(dt) that is half learned, U(0) = s/2, at dt = 0; any sign of dt.

    The solution of τ du/dt = N u^{2−2/N}(s − u) (Saxe et al. 2014, arXiv 1312.6120,
    Sec. 4) shifted in time (the flow is autonomous): depth 2 in closed form,
    U = s / (1 + e^{−2s dt/τ}) (Eq. 8 with u0 = s/2); depth ≥ 3 forward by
    ``deep_mode_strength`` from s/2, backward (dt < 0) by bisection in ln u of
    ``deep_mode_time(u, s/2) = −dt`` (U → 0 only as dt → −∞). Returns (U, s − U),
    the gap s − U computed without cancellation at depth 2. Broadcasts over dt, s.
    n_bisect = 64 halvings: ln u's bracket (≈ 690 wide) and a ∈ [a0, a∞] both to ≲ 1e-16 relative.
    """
    _check(1.0, depth, 1)
    n_layers = int(depth)
    dt, s = jnp.broadcast_arrays(*(jnp.asarray(a, dtype=jnp.result_type(float)) for a in (dt, s)))
    if n_layers == 2:
        return s * jax.nn.sigmoid(2.0 * s * dt / tau), s * jax.nn.sigmoid(-2.0 * s * dt / tau)
    ahead = deep_mode_strength(jnp.maximum(dt, 0.0), s=s, u0=0.5 * s, depth=n_layers, tau=tau, n_bisect=n_bisect)

    def bisect(_, bounds):  # ln u ∈ [lo, hi]; deep_mode_time(u, s/2) decreases in u
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        longer = deep_mode_time(jnp.exp(mid), 0.5 * s, s=s, depth=n_layers, tau=tau) > -dt
        return jnp.where(longer, mid, lo), jnp.where(longer, hi, mid)

    lo0 = jnp.full_like(s, math.log(1e-300))
    lo, hi = jax.lax.fori_loop(0, n_bisect, bisect, (lo0, jnp.log(0.5 * s)))
    behind = jnp.exp(0.5 * (lo + hi))
    u = jnp.where(dt >= 0, ahead, behind)
    return u, s - u


def off_mode_bound(s, k, *, init_scale, depth, n_io, confidence=0.999):
    """Bound on ½‖W_⊥‖², the loss of the weights off the aligned modes once modes 1..k are learned.

    Once mode α's path (norm s_α^{1/L} per layer, L = depth) is open, the init's
    other output rows of W_L along its hidden direction, g_out (∈ R^{n_io}, i.i.d.
    N(0, σ²)), and the other input columns of W_1, g_in, are carried into W as
    g_out ⊗ (path) + (path) ⊗ g_in of norm ≤ (‖g_out‖ + ‖g_in‖) s_α^{(L−1)/L};
    the flow does not grow them (τ dW_L/dt = (Σyx − W)(W_{L−1}⋯W_1)ᵀ has no source
    off the target's rows; same for W_1) but only damps them, so (our derivation)

        ½‖W_⊥‖² ≤ Σ_{α≤k} (‖g_out‖² + ‖g_in‖²) s_α^{2(L−1)/L} ≤ 2 σ² χ²_{n_io}(confidence) Σ_{α≤k} s_α^{2−2/L},

    the χ² quantile bounding each ‖g‖²/σ² with probability ``confidence`` (before training).
    s: (r,) descending; k = 0..r (0: nothing learned, 0). Host numpy, returns a float.
    """
    _check(init_scale, depth, 1)
    _sorted_s(s)  # non-empty and positive
    if int(n_io) != n_io or n_io < 1:
        raise ValueError(f"n_io={n_io!r} is invalid; allowed: an integer ≥ 1 (input = output dimension)")
    s = np.sort(np.asarray(s, dtype=np.float64).ravel())[::-1]
    if int(k) != k or not 0 <= k <= s.size:
        raise ValueError(f"k={k!r} is invalid; allowed: an integer from 0 to {s.size} (modes learned)")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} is invalid; allowed: a number in (0, 1)")
    q = float(scipy.special.chdtri(int(n_io), 1.0 - confidence))
    return float(2.0 * init_scale**2 * q * np.sum(s[:k] ** (2.0 - 2.0 / depth)))


@functools.partial(jax.jit, static_argnames=("depth",))  # one compilation per depth and shape; k may be traced
def plateau_loss_bias(t, s, times, k, *, depth, time_rtol=0.0, solver_rtol=0.0, tau=1.0):
    """Bounds (excess, deficit) ≥ 0 with −deficit ≤ L(t) − L_k ≤ excess, shape of t.

    With white inputs L = L_min + ½‖W − Σyx‖², so for a network aligned with the
    modes (strengths u_α) the distance to the rank-k plateau L_k (``plateau_losses``) is

        L − L_k = ½ Σ_{α≤k} (s_α − u_α)² − Σ_{α>k} (s_α u_α − ½ u_α²)

    (our derivation from Saxe et al. 2014, arXiv 1312.6120, Sec. 2): the modes
    already learned add their remaining gap, the modes still to come subtract
    their small growth (0 ≤ s u − ½u² ≤ s u for 0 ≤ u ≤ 2s). Each mode follows
    the aligned solution half learned at its time t_α (``aligned_mode_through_half``);
    t_α known to relative ``time_rtol`` (e.g. each seed's
    ``transition_times_from_init``, within the recording grid): the gap is largest
    for the latest time, the growth for the earliest, so

        excess  = ½ Σ_{α≤k} (gap_α(t − t_α(1 + ε)) + N·rtol_ode·s_α)²,
        deficit = Σ_{α>k} s_α U_α(t − t_α(1 − ε)),

    N·rtol_ode·s_α: the ODE solver's relative error control (``solver_rtol`` per
    weight, N = depth factors in u_α = a^N) on a learned mode. t: (m,) times,
    s, times: (r,) descending s and their half-learning times, k = 0..r.
    Cross-talk and off-mode weights of the init are not in here (callers add them:
    ``off_mode_bound`` and the init's own loss offset).
    """
    t = jnp.asarray(t, dtype=jnp.result_type(float))[..., None]
    s = jnp.asarray(s, dtype=t.dtype)
    times = jnp.asarray(times, dtype=t.dtype)
    learned = jnp.arange(s.size) < k
    _, gap = aligned_mode_through_half(t - times * (1.0 + time_rtol), s=s, depth=depth, tau=tau)
    grown, _ = aligned_mode_through_half(t - times * (1.0 - time_rtol), s=s, depth=depth, tau=tau)
    excess = 0.5 * jnp.sum(jnp.where(learned, (gap + depth * solver_rtol * s) ** 2, 0.0), axis=-1)
    deficit = jnp.sum(jnp.where(learned, 0.0, s * grown), axis=-1)
    return excess, deficit
