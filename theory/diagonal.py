"""Saddle-to-saddle dynamics of diagonal linear networks (Pesme & Flammarion 2023, arXiv 2304.00488).

Setting (their Sec. 2, in our conventions): β = u ⊙ v, u₀ = √2 α 1, v₀ = 0,
loss L(β) = (1/2P) ‖y − Xβ‖² (the paper's 1/(2n) with n = P), gradient flow
τ dθ/dt = −∂L/∂θ with τ = 1. With G = Σxx = XᵀX/P and b = Xᵀy/P, ∇L(β) = Gβ − b,
and the predictor follows the mirror flow

    d/dt [½ arcsinh(β(t)/α²)] = −∇L(β(t)),   β(0) = 0.               (mirror)

Rescaled time t̃ = t / ln(1/α) (their "accelerated" β̃_α(t̃) = β_α(t̃ ln(1/α))):
integrating (mirror), s_α(t̃) := arcsinh(β̃/α²)/(2 ln(1/α)) = −∫₀^t̃ ∇L(β̃).
Since ½ arcsinh(β/α²)/ln(1/α) → sign(β) for β ≠ 0 and → 0 for |β| ≲ α², the
limit α → 0 (their Thm. 2) is the piecewise-constant path β̃°(t̃) with

    s(t̃) = −∫₀^t̃ ∇L(β̃°(t̃')) dt' ∈ ∂‖β̃°(t̃)‖₁,                        (limit)

i.e. |sᵢ| ≤ 1, and βᵢ ≠ 0 only where sᵢ = sign βᵢ = ±1. Algorithm 1 computes
its jump times and saddles (see ``incremental_learning``).

Other loss normalisations: a loss c·L (e.g. the paper's 1/n-free ½‖y − Xβ‖²
is c = P) makes every jump time t̃_k → t̃_k / c. The squares form
β = w₊² − w₋² with w₊ = w₋ = α runs the same path in half the time:
t̃_k(squares) = t̃_k / 2 in units of t/ln(1/α) (see ``models.diagonal``).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from theory._domain import positive, require


class SaddlePath(NamedTuple):
    """The α → 0 limit path. times: (K+1,) rescaled jump times t̃_k = t/ln(1/α),
    times[0] = 0, +inf after the last jump; saddles: (K+1, d), saddles[0] = 0,
    saddles[k] the value of β̃°(t̃) on [t̃_k, t̃_{k+1}), repeated after the last jump."""

    times: jax.Array
    saddles: jax.Array


def _check_data(x, y):
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim != 2:
        raise ValueError(f"x.shape={x.shape} is invalid; allowed: (P, d)")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y.shape={y.shape} is invalid; allowed: ({x.shape[0]},) = (P,) to match x")
    dtype = jnp.result_type(x.dtype, y.dtype, float)
    return x.astype(dtype), y.astype(dtype)


def _statistics(x, y):
    """G = XᵀX/P, b = Xᵀy/P, ‖y‖²/P."""
    x, y = _check_data(x, y)
    p = x.shape[0]
    return x.T @ x / p, x.T @ y / p, jnp.sum(y * y) / p


def _masked_solve(h, c, mask):
    """z with z_M = H_MM⁻¹ c_M on the mask M and z = 0 off it."""
    m = mask.astype(h.dtype)
    a = h * m[:, None] * m[None, :] + jnp.diag(1.0 - m)
    return jnp.linalg.solve(a, c * m)


def _nnls(h, c, allow, tol, max_iter):
    """argmin_{γ ≥ 0, γ = 0 off ``allow``} ½ γᵀHγ − cᵀγ (Lawson & Hanson 1974, Ch. 23).

    Active-set method: add the free coordinate of largest negative gradient,
    solve on the passive set, and step back to the feasible boundary whenever
    a passive coordinate would turn negative. Runs in ``lax.while_loop``s.
    """
    d = c.shape[0]

    def grad_free(x, passive):
        w = c - h @ x
        return allow & ~passive & (w > tol), w

    def outer_cond(state):
        x, passive, it = state
        return jnp.any(grad_free(x, passive)[0]) & (it < max_iter)

    def outer_body(state):
        x, passive, it = state
        cand, w = grad_free(x, passive)
        passive = passive.at[jnp.argmax(jnp.where(cand, w, -jnp.inf))].set(True)

        def inner_cond(s):
            x, passive, z, k = s
            return jnp.any(passive & (z <= 0.0)) & (k < max_iter)

        def inner_body(s):
            x, passive, z, k = s
            bad = passive & (z <= 0.0)
            ratio = jnp.where(bad, x / jnp.maximum(x - z, jnp.finfo(x.dtype).tiny), jnp.inf)
            i = jnp.argmin(ratio)
            x = x + ratio[i] * (z - x)
            # the coordinate that hit zero leaves, and any that rounding left at ~eps·max(x)
            passive = passive & (x > 8 * jnp.finfo(x.dtype).eps * jnp.max(x)) & (jnp.arange(d) != i)
            x = jnp.where(passive, x, 0.0)
            return x, passive, _masked_solve(h, c, passive), k + 1

        z0 = _masked_solve(h, c, passive)
        x, passive, z, k = jax.lax.while_loop(inner_cond, inner_body, (x, passive, z0, it))
        return jnp.where(passive, z, 0.0), passive, k + 1

    x0 = jnp.zeros_like(c)
    x, _, _ = jax.lax.while_loop(outer_cond, outer_body, (x0, jnp.zeros((d,), bool), 0))
    return x


def incremental_learning(x, y, *, max_jumps=None, tol=1e-9) -> SaddlePath:
    """Jump times and saddles of the α → 0 limit of a diagonal linear network
    (Pesme & Flammarion 2023, arXiv 2304.00488, Algorithm 1 and Thm. 2).

    With ∇L(β) = Gβ − b (G = XᵀX/P, b = Xᵀy/P), start from t̃ = 0, β = 0, s = 0
    and repeat while ∇L(β) ≠ 0:

        Δ  = inf{δ > 0 : ∃ i, ∇L(β)ᵢ ≠ 0 and sᵢ − δ ∇L(β)ᵢ ∈ {−1, +1}}
        t̃ ← t̃ + Δ,   s ← s − Δ ∇L(β)
        β ← argmin { L(β) : βᵢ = 0 if |sᵢ| < 1,  sᵢ βᵢ ≥ 0 if |sᵢ| = 1 }

    so that s(t̃) = −∫₀^t̃ ∇L(β̃°) ∈ ∂‖β̃°(t̃)‖₁ (the dual variable is piecewise
    linear and β̃° piecewise constant). Each β_k is a saddle of L(u ⊙ v): the
    minimiser of L over a signed face, a non-negative least-squares problem in
    γ = s ⊙ β ≥ 0 solved exactly by Lawson-Hanson. Coordinates switch on when
    their |sᵢ| reaches 1 and may switch off again; the last saddle is a global
    minimiser of L (the minimum-ℓ1 interpolator when P < d, their Thm. 1).
    Index k ↔ coordinate i at the first jump: t̃₁ = 1/maxᵢ|bᵢ|.

    Time is t̃ = t / ln(1/α) for the paper's init u₀ = √2α, v₀ = 0 and τ = 1
    (the squares form β = w₊² − w₋², w₊ = w₋ = α: t/ln(1/α) = t̃/2).

    Args:
      x: (P, d) inputs; y: (P,) targets (noiseless or not).
      max_jumps: K, the number of jumps computed (static; default 2d). The path
        ended within K jumps iff times[-1] is +inf.
      tol: gradient entries below tol · max|b| count as zero.

    Returns:
      SaddlePath(times (K+1,), saddles (K+1, d)); jit- and vmap-able.
    """
    x, y = _check_data(x, y)
    max_jumps = 2 * x.shape[1] if max_jumps is None else max_jumps
    if not isinstance(max_jumps, int) or isinstance(max_jumps, bool) or max_jumps < 1:
        raise ValueError(f"max_jumps={max_jumps!r} is invalid; allowed: an integer ≥ 1")
    if isinstance(tol, (int, float)) and not 0 < tol < 1:
        raise ValueError(f"tol={tol!r} is invalid; allowed: a number in (0, 1)")
    return _algorithm_1(x, y, tol, max_jumps)


@functools.partial(jax.jit, static_argnames="max_jumps")
def _algorithm_1(x, y, tol, max_jumps):
    g_mat, b, _ = _statistics(x, y)
    d = b.shape[0]
    gtol = tol * jnp.maximum(jnp.max(jnp.abs(b)), jnp.finfo(b.dtype).tiny)
    max_iter = 3 * d + 10

    def step(state, _):
        t, s, beta, done = state
        grad = g_mat @ beta - b
        moving = jnp.abs(grad) > gtol
        target = -jnp.sign(grad)  # the face sᵢ moves towards
        delta = jnp.where(moving, (1.0 - target * s) / jnp.where(moving, jnp.abs(grad), 1.0), jnp.inf)
        delta = jnp.where(delta > 0.0, delta, jnp.inf)
        big_delta = jnp.min(delta)
        done = done | ~jnp.isfinite(big_delta)
        hit = moving & (delta <= big_delta * (1.0 + 1e-12))
        s_new = jnp.where(moving, s - big_delta * grad, s)
        s_new = jnp.clip(jnp.where(hit, target, s_new), -1.0, 1.0)
        active = jnp.abs(s_new) >= 1.0
        gamma = _nnls(g_mat * jnp.outer(s_new, s_new), b * s_new, active, gtol, max_iter)
        # entries at rounding level (a face minimiser that is exactly 0 there) are 0
        beta_new = s_new * jnp.where(gamma > 64 * jnp.finfo(gamma.dtype).eps * jnp.max(gamma), gamma, 0.0)
        t_new = t + big_delta
        out_t = jnp.where(done, jnp.inf, t_new)
        state = (jnp.where(done, t, t_new), jnp.where(done, s, s_new), jnp.where(done, beta, beta_new), done)
        return state, (out_t, state[2])

    zero = jnp.zeros_like(b)
    init = (jnp.zeros((), b.dtype), zero, zero, jnp.asarray(False))
    _, (times, saddles) = jax.lax.scan(step, init, None, length=max_jumps)
    return SaddlePath(jnp.concatenate([jnp.zeros((1,), b.dtype), times]),
                      jnp.concatenate([zero[None], saddles]))


def n_jumps(times) -> jax.Array:
    """Number of jumps of a SaddlePath: finite entries of ``times`` after times[0] = 0
    (the jump times of Pesme & Flammarion 2023, arXiv 2304.00488, Algorithm 1)."""
    return jnp.sum(jnp.isfinite(jnp.asarray(times))) - 1


@jax.jit
def saddle_path(t, times, saddles):
    """β̃°(t̃): the saddle occupied at rescaled time t̃ (piecewise constant,
    right-continuous); t: (T,) or scalar → (T, d) or (d,). The limit process of
    Pesme & Flammarion 2023 (arXiv 2304.00488, Thm. 2: β_α(t̃ ln(1/α)) → β̃°(t̃) as α → 0)."""
    idx = jnp.searchsorted(jnp.asarray(times), jnp.asarray(t), side="right") - 1
    return jnp.asarray(saddles)[jnp.clip(idx, 0, len(times) - 1)]


@jax.jit
def dual_path(t, times, saddles, x, y):
    """The dual variable s(t̃) = −∫₀^t̃ ∇L(β̃°(t̃')) dt' (piecewise linear), t: (T,) → (T, d).

    (limit) says |s| ≤ 1 with sᵢ = sign βᵢ on the support of β̃°(t̃)
    (Pesme & Flammarion 2023, arXiv 2304.00488, Thm. 2).
    """
    g_mat, b, _ = _statistics(x, y)
    times, saddles = jnp.asarray(times), jnp.asarray(saddles)
    t = jnp.atleast_1d(jnp.asarray(t))
    grads = saddles @ g_mat.T - b  # (K+1, d)
    start = times
    end = jnp.concatenate([times[1:], jnp.full((1,), jnp.inf, times.dtype)])
    finite = jnp.isfinite(start)
    dur = jnp.clip(jnp.minimum(t[:, None], end[None, :]) - jnp.where(finite, start, 0.0)[None, :], 0.0, None)
    dur = jnp.where(finite[None, :], dur, 0.0)
    return -dur @ grads


@jax.jit
def saddle_losses(saddles, x, y):
    """L(β_k) = (1/2P)‖y − Xβ_k‖² for each saddle; saddles: (K+1, d) → (K+1,).

    The plateau losses of the saddle-to-saddle path (Pesme & Flammarion 2023, arXiv 2304.00488,
    Algorithm 1's saddles β_k), in the DESIGN ½-loss."""
    x, y = jnp.asarray(x), jnp.asarray(y)
    res = y[None, :] - jnp.asarray(saddles) @ x.T
    return 0.5 * jnp.mean(res * res, axis=-1)


def _orthogonal_roots(beta_star, alpha):
    a, b = jnp.abs(beta_star), alpha**2
    r = jnp.sqrt(a * a + b * b)
    return a, b, r, (a + r) / b, -b / (a + r)  # w₋ = (a − r)/b without cancellation


def orthogonal_trajectory(t, *, beta_star, alpha):
    """Exact β(t) at finite α for whitened inputs (G = XᵀX/P = I, y = Xβ*).

    Then the coordinates decouple and θ = arcsinh(β/α²) obeys
    dθ/dt = 2(β* − α² sinh θ), θ(0) = 0 (from (mirror)). With W = e^θ the
    integral is a partial fraction in W; for β* ≥ 0, a = β*, r = √(a² + α⁴),
    w± = (a ± r)/α² (w₊ = e^{θ(∞)}, w₋ < 0):

        e^{2rt} = (W − w₋)(w₊ − 1) / ((w₊ − W)(1 − w₋)),
        W(t) = (w₊ + w₋/K) / (1 + 1/K),  1/K = e^{−2rt}(w₊ − 1)/(1 − w₋),
        β(t) = sign(β*) α² (W − 1/W)/2.

    Derived here from (mirror) (Pesme & Flammarion 2023, arXiv 2304.00488,
    Sec. 2, setting). The time for |β| to reach β*/2 is
    t = [2 ln(1/α) + ln(2|β*|)]/(2|β*|) − α²/(2β*²) + O(α⁴), so t/ln(1/α) → 1/|β*|
    with a correction ln(2|β*|)/(2|β*| ln(1/α)).
    Broadcasts over t, beta_star, alpha; alpha > 0 (ValueError otherwise, unless traced).
    """
    positive("alpha", alpha)
    t, beta_star, alpha = (jnp.asarray(v, dtype=jnp.result_type(v, float)) for v in (t, beta_star, alpha))
    a, b, r, w_plus, w_minus = _orthogonal_roots(beta_star, alpha)
    inv_k = jnp.exp(-2.0 * r * t) * (w_plus - 1.0) / (1.0 - w_minus)
    w = (w_plus + w_minus * inv_k) / (1.0 + inv_k)
    return jnp.sign(beta_star) * b * (w - 1.0 / w) / 2.0


def orthogonal_time(beta, *, beta_star, alpha):
    """Exact time at which |β(t)| reaches |beta| (0 ≤ |beta| < |β*|) for whitened
    inputs, the inverse of ``orthogonal_trajectory``:

        t = (1/2r) ln[(W − w₋)(w₊ − 1) / ((w₊ − W)(1 − w₋))],  W = (|β| + √(β² + α⁴))/α².

    Our derivation: invert ``orthogonal_trajectory`` (separable Riccati ODE per coordinate of the
    diagonal net u∘v with u(0) = α, v(0) = 0 for whitened inputs; cf. Pesme & Flammarion 2023,
    arXiv 2304.00488, and Woodworth et al. 2020, arXiv 2002.09277, for the whitened case).

    |β| ≥ |β*| is never reached (β(t) → β* only as t → ∞) and alpha ≤ 0 has no
    flow: ValueError for either, unless traced.
    """
    positive("alpha", alpha)
    require("|beta| < |beta_star| (β(t) approaches β* only as t → ∞)", lambda beta, beta_star: abs(beta) < abs(beta_star),
            beta=beta, beta_star=beta_star)
    beta, beta_star, alpha = (jnp.asarray(v, dtype=jnp.result_type(v, float)) for v in (beta, beta_star, alpha))
    a, b, r, w_plus, w_minus = _orthogonal_roots(beta_star, alpha)
    w = (jnp.abs(beta) + jnp.sqrt(beta * beta + b * b)) / b
    return jnp.log((w - w_minus) * (w_plus - 1.0) / ((w_plus - w) * (1.0 - w_minus))) / (2.0 * r)


def predict(x, y, *, alpha, form: str = "product", tau=None, learning_rate=None, max_jumps=None):
    """The α → 0 staircase of a diagonal linear net on data (x, y), as a ``Staircase``.

    Plateaus are the saddles β_k of ``incremental_learning`` (Pesme & Flammarion
    2023, arXiv 2304.00488, Algorithm 1): plateau_losses = L(β_k) =
    (1/2P)‖y − Xβ_k‖², ranks = support size of β_k, and the jumps at
    t_k = τ t̃_k ln(1/α) (product form u₀ = √2α, v₀ = 0) or τ t̃_k ln(1/α)/2
    (squares form w₊ = w₋ = α, ``models.diagonal``). Leading order in α: the
    simulated loss crosses the midpoint of each drop (level = 0.5) at t_k up
    to relative corrections O(1/ln(1/α)) (their Thm. 2). Time: ``tau`` (flow)
    or ``learning_rate`` η (GD, τ = 1/η, times in steps).
    Args: x: (P, d); y: (P,); alpha: init scale in (0, 1).
    """
    import numpy as np

    from theory.staircase import staircase, time_constant

    tau = time_constant(tau, learning_rate)
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1) (small init), got {alpha}")
    if form not in ("product", "squares"):
        raise ValueError(f"form={form!r} is invalid; allowed: product, squares")
    path = incremental_learning(x, y, max_jumps=max_jumps)
    times, saddles = np.asarray(path.times), np.asarray(path.saddles)
    keep = np.isfinite(times)
    times, saddles = times[keep], saddles[keep]
    clock = tau * np.log(1.0 / float(alpha)) * (0.5 if form == "squares" else 1.0)
    losses = np.asarray(saddle_losses(saddles, x, y))
    ranks = np.sum(saddles != 0.0, axis=-1)
    return staircase(losses, times[1:] * clock, ranks, 0.5)
