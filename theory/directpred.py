"""Non-contrastive SSL (BYOL / SimSiam) with linear networks: the decoupled eigen-dynamics.

Tian, Chen & Ganguli, "Understanding self-supervised learning dynamics without
contrastive pairs", ICML 2021 (arXiv 2102.06810). Equation numbers are the paper's.

Model (Sec. 2): online W: (n_out, n_in), linear predictor W_p: (n_out, n_out), target
W_a: (n_out, n_in); views x1, x2 of x ~ N(0, I) with augmentation noise of variance σ²
(Assumption 2: X = I, X' = σ²I); objective J = ½E‖W_p W x1 − StopGrad(W_a x2)‖² (Eq. 1),
gradient flow with weight decay η and predictor rate ratio α_p (Lemma 1, Eqns. 2-4):

    Ẇ_p = α_p(−W_p W(X + X') + W_a X)Wᵀ − η W_p,    Ẇ = W_pᵀ(−W_p W(X + X') + W_a X) − η W,
    Ẇ_a = β(W − W_a)   (EMA; SimSiam: W_a = W).

Names here: ``weight_decay`` = η, ``noise_var`` = σ², ``alpha_p`` = α_p, ``tau`` = τ, the
paper's target/online ratio W_a = τW (Assumption 1; τ = 1 is SimSiam and every fixed point
of BYOL's EMA) — not saddle's flow time constant: every time t here is in units of the
flow above (dθ/dt = −∂L/∂θ; GD: t = step × learning_rate). ``theory`` never imports
``dynamics``; the reduced ODEs are solved here with diffrax.

With a symmetric predictor (Assumption 3) and F := W X Wᵀ = WWᵀ (Eq. 7),

    Ẇ_p = −(α_p/2)(1 + σ²){W_p, F} + α_p τ F − η W_p,   Ḟ = −(1 + σ²){W_p², F} + τ{W_p, F} − 2ηF,

the commutator C = [F, W_p] obeys Ċ = −(CK + KC) (Theorem 3, Eqns. 8-9), with
K = (1 + σ²)(α_p F/2 + W_p²) − τ W_p + (3/2)η I. Once aligned (W_p = U diag(p) Uᵀ,
F = U diag(s) Uᵀ) every mode j decouples (Eqns. 11-12):

    ṗ_j = α_p s_j [τ − (1 + σ²) p_j] − η p_j,      ṡ_j = 2 p_j s_j [τ − (1 + σ²) p_j] − 2η s_j.
"""
from __future__ import annotations

from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from theory._domain import require


def _float(x):
    return jnp.asarray(x, dtype=jnp.result_type(float))


def _check(weight_decay, noise_var, tau, alpha_p) -> None:
    require("weight_decay ≥ 0", lambda weight_decay: weight_decay >= 0, weight_decay=weight_decay)
    require("noise_var ≥ 0", lambda noise_var: noise_var >= 0, noise_var=noise_var)
    require("tau > 0", lambda tau: tau > 0, tau=tau)
    require("alpha_p > 0", lambda alpha_p: alpha_p > 0, alpha_p=alpha_p)


def eigen_flow(p, s, *, weight_decay, noise_var=0.0, tau=1.0, alpha_p=1.0):
    """(ṗ_j, ṡ_j) of the decoupled eigen-dynamics at fixed τ (arXiv 2102.06810, Eqns. 11-12).

        ṗ = α_p s [τ − (1 + σ²) p] − η p,      ṡ = 2 p s [τ − (1 + σ²) p] − 2η s.

    p: predictor eigenvalues, s: eigenvalues of F = WWᵀ (same shape, any). Exact for the full
    matrix flow whenever W_p is symmetric, commutes with F and W_a = τW (the eigenbasis is then
    fixed; our remark). Returns (ṗ, ṡ) shaped like p."""
    p, s = _float(p), _float(s)
    gap = tau - (1.0 + noise_var) * p
    return alpha_p * s * gap - weight_decay * p, 2.0 * p * s * gap - 2.0 * weight_decay * s


def critical_weight_decay(*, noise_var=0.0, tau=1.0):
    """η_c = τ²/(4(1 + σ²)): for η > η_c collapse p = s = 0 is the only fixed point (Sec. 3.2, Obs#5).

    It is where the discriminant of p[τ − (1 + σ²)p] = η vanishes (Fig. 4(c))."""
    _check(0.0, noise_var, tau, 1.0)
    return _float(tau) ** 2 / (4.0 * (1.0 + _float(noise_var)))


def predictor_fixed_points(weight_decay, *, noise_var=0.0, tau=1.0, alpha_p=1.0):
    """Non-collapsed fixed points (p₊*, p₋*) of the predictor eigenvalue (Sec. 3.2, below Eq. 16).

        p±* = [τ ± √(τ² − 4η(1 + σ²))] / (2(1 + σ²)),   0 < η ≤ η_c = τ²/(4(1 + σ²)),

    the roots of p[τ − (1 + σ²)p] = η, which is ṡ = 0 at s ≠ 0 in Eq. 12; together with ṗ = 0
    (Eq. 11) they sit on the invariant parabola s = p²/α_p (Eq. 14 with c_j = 0), so α_p does not
    move p±* (it only sets s±* = p±*²/α_p, ``correlation_fixed_points``). p₊* is stable, p₋* a
    saddle whose stable manifold bounds the collapse basin (``fixed_point_eigenvalues``).
    η = 0 gives p₊* = τ/(1 + σ²), p₋* = 0 (the non-collapsed branch, Fig. 3 left). Above η_c
    (``critical_weight_decay``) there is none: both are NaN (traceable, so no error is raised
    there). Broadcasts over its arguments; returns (p_plus, p_minus)."""
    _check(weight_decay, noise_var, tau, alpha_p)
    eta, c, tau = _float(weight_decay), 1.0 + _float(noise_var), _float(tau)
    disc = tau**2 - 4.0 * eta * c
    root = jnp.sqrt(jnp.where(disc >= 0, disc, jnp.nan))
    return (tau + root) / (2.0 * c), (tau - root) / (2.0 * c)


def correlation_fixed_points(weight_decay, *, noise_var=0.0, tau=1.0, alpha_p=1.0):
    """(s₊*, s₋*) = (p₊*², p₋*²)/α_p: the F eigenvalues at the non-collapsed fixed points.

    ṗ = 0 in Eq. 11 with p[τ − (1 + σ²)p] = η gives α_p s η/p = η p, i.e. s = p²/α_p (our one-line
    derivation; it is the invariant parabola of Eq. 14)."""
    p_plus, p_minus = predictor_fixed_points(weight_decay, noise_var=noise_var, tau=tau, alpha_p=alpha_p)
    return p_plus**2 / alpha_p, p_minus**2 / alpha_p


def fixed_point_eigenvalues(weight_decay, *, noise_var=0.0, tau=1.0, alpha_p=1.0):
    """Eigenvalues of the Jacobian of (ṗ, ṡ) (Eqns. 11-12) at the three fixed points: a dict
    ``{"collapsed", "plus", "minus"}`` → (λ_1, λ_2) (complex dtype; stable iff both real parts < 0).

    Our derivation. At the collapse (0, 0): J = [[−η, α_p τ], [0, −2η]], so λ = −η, −2η: stable
    for η > 0 (Fig. 4(b)), marginal at η = 0. At (p*, p*²/α_p) with p*[τ − (1 + σ²)p*] = η:
    J = [[−(1 + σ²)p*² − η, α_p η/p*], [2p*²(τ − 2(1 + σ²)p*)/α_p, 0]], trace −(1 + σ²)p*² − η,
    determinant −2ηp*(τ − 2(1 + σ²)p*) (α_p drops out). p₊* > τ/(2(1 + σ²)) > p₋*, so the
    determinant is > 0 at p₊* (stable node/focus) and < 0 at p₋* (saddle), for 0 < η < η_c."""
    eta, c, tau_ = _float(weight_decay), 1.0 + _float(noise_var), _float(tau)
    p_plus, p_minus = predictor_fixed_points(weight_decay, noise_var=noise_var, tau=tau, alpha_p=alpha_p)

    def roots(trace, det):
        cplx = jnp.result_type(complex)
        disc, trace = (trace**2 - 4.0 * det).astype(cplx), trace.astype(cplx)
        return jnp.stack([(trace + jnp.sqrt(disc)) / 2.0, (trace - jnp.sqrt(disc)) / 2.0], axis=-1)

    def at(p):
        return roots(-c * p**2 - eta, -2.0 * eta * p * (tau_ - 2.0 * c * p))

    collapsed = jnp.stack(jnp.broadcast_arrays(-eta, -2.0 * eta), axis=-1).astype(jnp.result_type(complex))
    return {"collapsed": collapsed, "plus": at(p_plus), "minus": at(p_minus)}


class EigenTrajectory(NamedTuple):
    """p, s: (T, *shape of p0) eigenvalue trajectories at the requested times."""
    p: jax.Array
    s: jax.Array


def _eigen_field(_, y, args):
    eta, sig, tau, alpha_p = args
    return jnp.stack(eigen_flow(y[0], y[1], weight_decay=eta, noise_var=sig, tau=tau, alpha_p=alpha_p))


def _directpred_field(_, s, args):
    eta, sig, tau, epsilon = args
    return directpred_flow(s, weight_decay=eta, noise_var=sig, tau=tau, epsilon=epsilon)


def _solve(field, y0, times, rtol, args):
    """Module-level fields and parameters passed as ``args`` (arrays), so that diffrax's compiled
    solver is reused across calls with the same shapes instead of recompiled per parameter value."""
    ts = np.asarray(times, dtype=float)
    if ts.ndim != 1 or ts.size == 0 or ts[0] < 0 or np.any(np.diff(ts) < 0):
        raise ValueError(f"times must be a non-empty non-decreasing 1-d array of times ≥ 0, got {times!r}")
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field), diffrax.Tsit5(), t0=0.0, t1=float(ts[-1]), dt0=None, y0=y0,
        args=tuple(_float(a) for a in args),
        saveat=diffrax.SaveAt(ts=jnp.asarray(ts)),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=rtol * 1e-2), max_steps=1_000_000)
    return sol.ys


def eigen_trajectory(times, p0, s0, *, weight_decay, noise_var=0.0, tau=1.0, alpha_p=1.0,
                     rtol: float = 1e-10) -> EigenTrajectory:
    """Solve Eqns. 11-12 (arXiv 2102.06810) from (p0, s0) at fixed τ; diffrax Tsit5 to ``rtol``.

    The reduced dynamics of an aligned symmetric predictor (``eigen_flow``), exact for the full
    matrix flow from an aligned start. times: non-decreasing (T,) ≥ 0 (concrete; flow units,
    GD: step × learning_rate). p0, s0: same shape (one entry per mode), s0 ≥ 0."""
    _check(weight_decay, noise_var, tau, alpha_p)
    require("s0 ≥ 0 (an eigenvalue of WWᵀ)", lambda s0: s0 >= 0, s0=s0)
    params = (weight_decay, noise_var, tau, alpha_p)
    shape = jnp.broadcast_shapes(jnp.shape(p0), jnp.shape(s0), *(jnp.shape(a) for a in params))
    p0, s0 = jnp.broadcast_to(_float(p0), shape), jnp.broadcast_to(_float(s0), shape)
    args = tuple(jnp.broadcast_to(_float(a), shape) for a in params)
    p, s = _solve(_eigen_field, jnp.stack([p0, s0]), times, rtol, args).swapaxes(0, 1)
    return EigenTrajectory(p, s)


def directpred_flow(s, *, weight_decay, noise_var=0.0, tau=1.0, epsilon=0.0):
    """ṡ_j when the predictor is set by DirectPred, p_j = √s_j + ε max_k s_k (Eq. 18), in Eq. 12:

        ṡ_j = 2 p_j s_j [τ − (1 + σ²) p_j] − 2η s_j.

    Our derivation (the paper motivates Eq. 18 by Eq. 14 but writes no ODE for it). With ε = 0
    each mode is on the α_p = 1 parabola s = p² for all t, and q = √s obeys exactly Eq. 16,
    q̇ = q²[τ − (1 + σ²)q] − ηq: same fixed points p±*, and a mode collapses iff √s_j(0) < p₋*.
    s: (..., d) eigenvalues of F (the last axis holds the modes that ε couples)."""
    s = _float(s)
    p = jnp.sqrt(jnp.maximum(s, 0.0)) + epsilon * jnp.max(s, axis=-1, keepdims=True)
    return 2.0 * p * s * (tau - (1.0 + noise_var) * p) - 2.0 * weight_decay * s


def directpred_trajectory(times, s0, *, weight_decay, noise_var=0.0, tau=1.0, epsilon=0.0, rtol: float = 1e-10):
    """s_j(t) under DirectPred (``directpred_flow``) from s0: (d,) ≥ 0; returns (T, d). Our derivation."""
    _check(weight_decay, noise_var, tau, 1.0)
    require("s0 ≥ 0 (an eigenvalue of WWᵀ)", lambda s0: s0 >= 0, s0=s0)

    return _solve(_directpred_field, _float(s0), times, rtol, (weight_decay, noise_var, tau, epsilon))


def collapses(p0, s0, *, weight_decay, noise_var=0.0, tau=1.0, alpha_p=1.0, horizon=None):
    """Whether a mode started at (p0, s0) ends in the collapse basin of (0, 0) (Sec. 3.2, Fig. 4).

    On the invariant parabola (s0 = p0²/α_p) the paper's criterion is p0 < p₋*; above η_c every
    mode collapses. Off the parabola the basin boundary is the saddle's stable manifold, which we
    locate by solving Eqns. 11-12 to ``horizon`` (default 40/min η, many e-folds of the slowest
    linear rate η at the collapse) and asking which attractor the end point is nearer — our
    construction. Needs weight_decay > 0 (at η = 0 there is no collapse attractor). Returns a
    bool array of the broadcast shape of p0, s0 and the parameters."""
    require("weight_decay > 0 (η = 0 has no collapse attractor)", lambda weight_decay: weight_decay > 0,
            weight_decay=weight_decay)
    horizon = 40.0 / float(np.min(weight_decay)) if horizon is None else horizon
    end = eigen_trajectory([0.0, horizon], p0, s0, weight_decay=weight_decay, noise_var=noise_var, tau=tau,
                           alpha_p=alpha_p, rtol=1e-8)
    return nearer_collapse(end.p[-1], end.s[-1], weight_decay=weight_decay, noise_var=noise_var, tau=tau, alpha_p=alpha_p)


def nearer_collapse(p, s, *, weight_decay, noise_var=0.0, tau=1.0, alpha_p=1.0):
    """Whether the state (p, s) is nearer the collapse (0, 0) than the stable (p₊*, s₊*) (True above
    η_c, where p₊* does not exist): how ``collapses`` reads the end of a long reduced trajectory of
    Eqns. 11-12 (the two attractors of Sec. 3.2 / Fig. 4(b); our construction). Broadcasts."""
    p_plus, _ = predictor_fixed_points(weight_decay, noise_var=noise_var, tau=tau, alpha_p=alpha_p)
    s_plus = p_plus**2 / alpha_p
    nearer = (p**2 + s**2) < ((p - p_plus) ** 2 + (s - s_plus) ** 2)
    return jnp.where(jnp.isfinite(p_plus), nearer, True)
