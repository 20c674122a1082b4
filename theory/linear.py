"""Mode dynamics of deep linear networks (Saxe, McClelland & Ganguli 2014, arXiv 1312.6120).

Setting: loss L = (1/2P) Σ‖y − W_L⋯W_1 x‖², gradient flow τ dW_l/dt = −∂L/∂W_l,
weights balanced and aligned with the modes of Σyx = Σ_α s_α u_α v_αᵀ and
Σxx = Σ_α λ_α v_α v_αᵀ. Each mode strength u_α = u_αᵀ W v_α then evolves alone:

    two layers:  τ du/dt = 2u (s − λ u)                    (Saxe 2014, Eq. 7)
    N layers:    τ du/dt = N u^{2−2/N} (s − u)   (λ = 1)    (Saxe 2014, Sec. 4)

GD with rate η ↔ τ = 1/η and t = step index (docs/design.md).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from theory._domain import positive, require

_HALF_LINE = "u0 > 0 (u0 = 0 is the saddle: the mode never grows)"


def _check_mode(s, u0, tau, lam_x=1.0):
    """Shared domain of the mode solutions (checked on concrete arguments only)."""
    positive("s", s)
    require(_HALF_LINE, lambda u0: u0 > 0, u0=u0)
    positive("tau", tau)
    positive("lam_x", lam_x)


def _check_final(u0, uf, s, lam_x=1.0):
    """uf is reached from u0 only on u0's side of the fixed point s/λ, never at or past it."""
    require("uf > 0", lambda uf: uf > 0, uf=uf)
    require("uf on the same side of the asymptote s/λ as u0, not at or beyond it (u(t) → s/λ only as t → ∞)",
            lambda u0, uf, s, lam_x: (u0 - s / lam_x) * (uf - s / lam_x) > 0, u0=u0, uf=uf, s=s, lam_x=lam_x)


def _check_depth(depth):
    if int(depth) != depth or depth < 2:
        raise ValueError(f"depth={depth!r} is invalid; allowed: an integer ≥ 2 (weight layers)")


def mode_strength(t, *, s, u0, tau=1.0, lam_x=1.0):
    """Two-layer balanced mode strength u(t), the logistic solution of τ du/dt = 2u(s − λu):

        u(t) = (s/λ) / (1 − e^{−2st/τ} + (s/(λ u0)) e^{−2st/τ})

    (Saxe, McClelland & Ganguli 2014, arXiv 1312.6120, Eq. 8 with input
    variance λ = lam_x along the mode). Broadcasts over t, s, u0; s, u0, τ, λ > 0
    (ValueError otherwise; not checked under jit/vmap).
    """
    _check_mode(s, u0, tau, lam_x)
    t, s, u0, tau, lam_x = (jnp.asarray(a) for a in (t, s, u0, tau, lam_x))
    decay = jnp.exp(-2.0 * s * t / tau)
    return (s / lam_x) / (1.0 - decay + s / (lam_x * u0) * decay)


def mode_time(u0, uf, *, s, tau=1.0, lam_x=1.0):
    """Time for a two-layer mode to go from u0 to uf (both between 0 and s/λ):

        t = (τ / 2s) ln[ uf (s − λ u0) / (u0 (s − λ uf)) ]

    (Saxe et al. 2014, arXiv 1312.6120, Eq. 9; from u0 ≪ s to uf = s/2 it is
    ≈ (τ/2s) ln(s/u0), the "learning time ∝ 1/s" law). u0, uf > 0 on the same
    side of s/λ (the mode only approaches s/λ); ValueError otherwise, unless traced.
    """
    _check_mode(s, u0, tau, lam_x)
    _check_final(u0, uf, s, lam_x)
    u0, uf, s, tau, lam_x = (jnp.asarray(a) for a in (u0, uf, s, tau, lam_x))
    return tau / (2.0 * s) * jnp.log(uf * (s - lam_x * u0) / (u0 * (s - lam_x * uf)))


def _deep_antiderivative(a, s, depth):
    """F(a) with dF/da = 1 / (a^{N−1} (s − a^N)), N = depth ≥ 2, a > 0.

    Partial fractions: 1/(a^{N−1}(s − a^N)) = (1/s)[a^{1−N} + a/(s − a^N)] and
    a/(s − a^N) = −(1/Ns) Σ_k r_k² / (a − r_k) over the N roots r_k of r^N = s,
    so F(a) = (1/s)[a^{2−N}/(2−N) − (1/Ns) Σ_k Re r_k² log(a − r_k)]
    (a^{2−N}/(2−N) → ln a for N = 2).
    """
    power = jnp.log(a) if depth == 2 else a ** (2 - depth) / (2 - depth)
    cdtype = jnp.complex128 if a.dtype == jnp.float64 else jnp.complex64
    angles = (2 * jnp.pi / depth) * jnp.arange(depth, dtype=a.dtype)
    phases = jax.lax.complex(jnp.cos(angles), jnp.sin(angles))
    roots = (s ** (1.0 / depth))[..., None].astype(cdtype) * phases
    logs = jnp.log(a[..., None].astype(cdtype) - roots)
    return (power - jnp.sum(jnp.real(roots**2 * logs), axis=-1).astype(a.dtype) / (depth * s)) / s


def deep_mode_strength(t, *, s, u0, depth, tau=1.0, n_bisect=200):
    """Balanced depth-N mode strength u(t), exact, from the implicit solution

        t/τ = ∫_{a0}^{a} da' / (a'^{N−1} (s − a'^N)),   u = a^N, a0 = u0^{1/N},

    of τ du/dt = N u^{2−2/N} (s − u) (Saxe et al. 2014, arXiv 1312.6120, Sec. 4;
    white inputs). The integral is in closed form (``_deep_antiderivative``),
    and is inverted by bisection to machine precision. N = depth ≥ 2 weight
    layers; depth = 2 reproduces ``mode_strength``. Broadcasts over t, s, u0 > 0.
    """
    _check_depth(depth)
    _check_mode(s, u0, tau)
    depth = int(depth)
    t, s, u0 = jnp.broadcast_arrays(*(jnp.asarray(a, dtype=jnp.result_type(float)) for a in (t, s, u0)))
    elapsed = t / tau
    a0, a_inf = u0 ** (1.0 / depth), s ** (1.0 / depth)
    f0 = _deep_antiderivative(a0, s, depth)

    def time_at(p):  # increasing in p ∈ [0, 1] whether u0 < s or u0 > s
        return _deep_antiderivative(a0 + p * (a_inf - a0), s, depth) - f0

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        later = time_at(mid) < elapsed
        return jnp.where(later, mid, lo), jnp.where(later, hi, mid)

    lo, hi = jax.lax.fori_loop(0, n_bisect, bisect, (jnp.zeros_like(t), jnp.ones_like(t)))
    a = a0 + 0.5 * (lo + hi) * (a_inf - a0)
    return jnp.where(elapsed <= 0, u0, a**depth)


def deep_mode_time(u0, uf, *, s, depth, tau=1.0):
    """Time for a balanced depth-N mode to go from u0 to uf (closed form, see deep_mode_strength).

    u0, uf > 0 on the same side of the fixed point s; ValueError otherwise, unless traced.
    Integrates τ du/dt = N u^{2−2/N}(s − u) (Saxe, McClelland & Ganguli 2014, arXiv 1312.6120,
    Sec. 4 and its depth-N mode equation; the antiderivative is our derivation).
    """
    _check_depth(depth)
    _check_mode(s, u0, tau)
    _check_final(u0, uf, s)
    u0, uf, s = (jnp.asarray(a, dtype=jnp.result_type(float)) for a in (u0, uf, s))
    return tau * (_deep_antiderivative(uf ** (1.0 / depth), s, depth) - _deep_antiderivative(u0 ** (1.0 / depth), s, depth))


def linear_loss_at_modes(u, *, s, trace_yy, lam_x=1.0):
    """Loss of an aligned network with mode strengths u: ½ tr Σyy − Σ_α (s_α u_α − ½ λ_α u_α²).

    The DESIGN ½-loss written in the SVD modes of Σyx (Saxe et al. 2014, arXiv 1312.6120, Sec. 2:
    aligned weights decouple the loss mode by mode; λ_α = input variance of mode α).

    u, s, lam_x broadcast over the last axis (modes).
    """
    u, s, lam_x = jnp.asarray(u), jnp.asarray(s), jnp.asarray(lam_x)
    return 0.5 * trace_yy - jnp.sum(s * u - 0.5 * lam_x * u**2, axis=-1)

