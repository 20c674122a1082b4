"""Shaping: RL-perceptron students learning a compositional task (Lee, Sarao Mannelli
& Saxe, ICML 2024, "Why do animals need shaping?", arXiv 2402.18361; the single-primitive RL
perceptron is Patel et al. 2023, arXiv 2306.10404). Our stored copy of the paper held only its
abstract, so the setting and the equations below are taken from, and checked term by term
against, the authors' code (github.com/jinhl9/saad-solla-composition, files named below); no
section or equation number of the paper is cited from memory.

Setting (``models.rl_perceptron``; the authors' code github.com/jinhl9/saad-solla-composition,
``solver/simple_hrl_solver.py``). K primitive teachers w*_k ∈ R^N (orthogonal, |w*_k|² = N),
a teacher readout v* ∈ R^K. An episode is T binary decisions t = 1..T; at each, primitive k
sees its own input x_{k,t} ~ N(0, I_N), with fields λ_{k,t} = w_k·x_{k,t}/√N (student) and
ν_{k,t} = w*_k·x_{k,t}/√N (teacher); the composite decision is ŷ_t = sign(Σ_k v_k λ_{k,t}),
the right one y_t = sign(Σ_k v*_k ν_{k,t}). Reward comes only if all T decisions are right
(indicator I), and then (policy gradient, learning rates η = ``learning_rate``, η_v = ``v_learning_rate``)

    w_k ← w_k + η v_k/(T√N) Σ_t ŷ_t x_{k,t} · I,      v_k ← v_k + η_v/(T N) Σ_t λ_{k,t} ŷ_t · I,

after which every |w_k|² is reset to N and |v| to 1. A single primitive is K = 1, v = v* = 1,
η_v = 0; primitive pre-training (shaping) trains each w_k alone in that way, on its own
T decisions and its own reward.

Order parameters, all O(1): R_k = w_k·w*_k/N (Q_k = |w_k|²/N = 1 after each renormalisation),
v, and the composite overlap ρ̃ = Σ_k v_k v*_k R_k / (|v||v*|); a decision is right with
probability P(ρ) = 1 − arccos(ρ)/π. Time is α = episodes / N.

ODEs (N → ∞). Our derivation, written for the renormalised student; it agrees term by term
with the authors' per-step solver (``HRLODESolver._step1/_step2``: dR, dQ, dV, then R/√Q, Q = 1)
and with the authors' single-primitive ODE ``RLPerceptronODESolver`` (``solver/ode.py``, negative
learning rate 0) before renormalisation. Gaussian integration by
parts gives E[sign(λ̃) z 1(sign λ̃ = sign ν̃)] = (E[zλ̃]/σ_λ̃ + E[zν̃]/σ_ν̃)/√(2π), and the other
T − 1 decisions contribute P^{T−1}; the noise term of |Δw_k|² gives η² v_k² P^T/T. With Q_k = 1:

    primitive:   dR/dα = η (1 − R²) P(R)^{T−1}/√(2π) − η² R P(R)^T/(2T)
    composite:   dR_k/dα = η v_k v*_k (1 − R_k²) P̃^{T−1}/√(2π) − η² v_k² R_k P̃^T/(2T)
                 dv/dα  = η_v P̃^{T−1}/√(2π) · (v* ∘ R − ρ̃ v)          (|v| = |v*| = 1, P̃ = P(ρ̃))

The primitive's fixed point R* solves √(2/π)(1 − R²)/η = R P(R)/T (the authors' ``func_max_overlap``
in ``training_time.py`` at η = 1); the composite has the same fixed point R_k = R*, v = v*, ρ̃ = R*.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from theory._domain import concrete, require

_SQRT_2PI = float(np.sqrt(2.0 * np.pi))


def _check_rate(T, learning_rate):
    require("T ≥ 1 (decisions per episode)", lambda T: T >= 1, T=T)
    require("learning_rate > 0", lambda learning_rate: learning_rate > 0, learning_rate=learning_rate)


def success_probability(rho):
    """P(ρ) = 1 − arccos(ρ)/π: probability that sign(λ) = sign(ν) for unit-variance Gaussian fields
    with correlation ρ (the authors' ``P_task``/``P_tilde``). Shape of ρ."""
    return 1.0 - jnp.arccos(jnp.clip(rho, -1.0, 1.0)) / jnp.pi


def primitive_rate(r, *, T, learning_rate):
    """dR/dα of one renormalised RL perceptron with T decisions per episode (module docstring;
    our derivation; the authors' ``HRLODESolver._step1`` in continuous time). Shape of r."""
    p = success_probability(r)
    return (learning_rate * (1.0 - r**2) * p ** (T - 1) / _SQRT_2PI
            - learning_rate**2 * r * p**T / (2.0 * T))


def fixed_point(T, learning_rate):
    """R*(T, η): the asymptotic student-teacher overlap of one primitive, the root in (0, 1) of
    √(2/π)(1 − R²)/η = R P(R)/T (module docstring; authors' ``func_max_overlap``).

    The left side falls from √(2/π)/η to 0 and the right rises from 0 to 1/T on [0, 1], so the
    root is unique; 80 bisections reach float64 resolution. T, learning_rate broadcast; returns
    their broadcast shape.
    """
    _check_rate(T, learning_rate)
    T = jnp.asarray(T, dtype=jnp.result_type(float))
    eta = jnp.asarray(learning_rate, dtype=T.dtype)
    lo, hi = jnp.zeros(jnp.broadcast_shapes(T.shape, eta.shape), T.dtype), jnp.ones((), T.dtype)

    def g(r):
        return jnp.sqrt(2.0 / jnp.pi) * (1.0 - r**2) / eta - r * success_probability(r) / T

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        pos = g(mid) > 0
        return jnp.where(pos, mid, lo), jnp.where(pos, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 80, body, (lo, hi + lo))
    return 0.5 * (lo + hi)


def _times(alpha):
    alpha = jnp.asarray(alpha, dtype=jnp.result_type(float))
    if concrete(alpha):
        a = np.asarray(alpha)
        if a.size == 0 or np.any(~np.isfinite(a)) or np.any(a < 0):
            raise ValueError(f"alpha must be a non-empty array of finite times ≥ 0 (episodes/N), got {alpha!r}")
    flat = alpha.reshape(-1)
    order = jnp.argsort(flat)
    return alpha, flat[order], jnp.argsort(order)


def _rk4_step(field, y, h):
    k1 = field(y)
    k2 = field(jax.tree_util.tree_map(lambda a, b: a + 0.5 * h * b, y, k1))
    k3 = field(jax.tree_util.tree_map(lambda a, b: a + 0.5 * h * b, y, k2))
    k4 = field(jax.tree_util.tree_map(lambda a, b: a + h * b, y, k3))
    return jax.tree_util.tree_map(lambda a, b1, b2, b3, b4: a + h / 6.0 * (b1 + 2 * b2 + 2 * b3 + b4), y, k1, k2, k3, k4)


def _solve(field, y0, ts, max_step):
    """Classical RK4 from α = 0 through the sorted times ts, every gap cut into equal steps of at
    most ``max_step`` (global error O(max_step⁴); the fields are smooth for |R| < 1). States at ts."""
    gaps = jnp.diff(ts, prepend=0.0)
    n_sub = int(np.ceil(float(np.max(np.asarray(gaps))) / max_step)) if concrete(ts) else 256
    n_sub = max(n_sub, 1)

    def interval(y, gap):
        h = gap / n_sub
        y = jax.lax.fori_loop(0, n_sub, lambda _, y: _rk4_step(field, y, h), y)
        return y, y

    return jax.lax.scan(interval, y0, gaps)[1]


def overlap(alpha, *, T, learning_rate, r0=0.0, max_step=0.01):
    """R(α) of one primitive (renormalised RL perceptron, T decisions, reward iff all right)
    from R(0) = r0: the primitive ODE of the module docstring, integrated by RK4 with steps
    ≤ ``max_step`` in α (error O(max_step⁴), ~1e-10 at the default).

    alpha: array of times α = episodes/N ≥ 0, any order and shape; returns R with its shape.
    """
    _check_rate(T, learning_rate)
    require("-1 < r0 < 1", lambda r0: np.abs(r0) < 1, r0=r0)
    alpha, ts, back = _times(alpha)
    r0 = jnp.asarray(r0, dtype=ts.dtype)
    rs = _solve(lambda r: primitive_rate(r, T=T, learning_rate=learning_rate), r0, ts, max_step)
    return rs[back].reshape(alpha.shape)


# ------------------------------------------------------------------ composite task

class CompositeState(NamedTuple):
    """Order parameters of the composite student: r = (R_1..R_K) (..., K), v unit readout (..., K)."""
    r: jnp.ndarray
    v: jnp.ndarray


def composite_overlap(r, v, v_teacher):
    """ρ̃ = Σ_k v_k v*_k R_k / (|v||v*|) (Q_k = S_k = 1; the authors' ``HRLODESolver.overlap``). r, v: (..., K)."""
    return jnp.sum(v * v_teacher * r, -1) / (jnp.linalg.norm(v, axis=-1) * jnp.linalg.norm(v_teacher, axis=-1))


def composite_rates(state: CompositeState, *, T, learning_rate, v_learning_rate, v_teacher) -> CompositeState:
    """(dR/dα, dv/dα) of the composite task, |v| = |v*| = 1 (module docstring; our derivation,
    matching the authors' ``HRLODESolver._step2`` with ``V_norm = 0``)."""
    r, v = state
    vt = v_teacher / jnp.linalg.norm(v_teacher)
    rho = composite_overlap(r, v, vt)
    p = success_probability(rho)
    dr = (learning_rate * v * vt * (1.0 - r**2) * p ** (T - 1) / _SQRT_2PI
          - learning_rate**2 * v**2 * r * p**T / (2.0 * T))
    dv = v_learning_rate * p ** (T - 1) / _SQRT_2PI * (vt * r - rho[..., None] * v)
    return CompositeState(dr, dv)


def _unit(v):
    return v / jnp.linalg.norm(v, axis=-1, keepdims=True)


def _check_composite(T, learning_rate, v_learning_rate, v_teacher, r0, v0):
    _check_rate(T, learning_rate)
    require("v_learning_rate ≥ 0", lambda x: x >= 0, x=v_learning_rate)
    if concrete(v_teacher, v0, r0):
        vt, v0_, r0_ = np.asarray(v_teacher, float), np.asarray(v0, float), np.asarray(r0, float)
        if vt.ndim != 1 or v0_.shape != vt.shape or not np.all(np.isfinite(vt)) or np.linalg.norm(vt) == 0:
            raise ValueError(f"v_teacher and v0 must be non-zero (K,) vectors of one shape, got {vt.shape} and {v0_.shape}")
        if np.linalg.norm(v0_) == 0 or np.any(np.abs(r0_) >= 1):
            raise ValueError(f"v0 must be non-zero and every |r0| < 1, got v0={v0_.tolist()}, r0={r0_.tolist()}")


def composite(alpha, *, T, learning_rate, v_learning_rate, v_teacher, r0, v0, max_step=0.01) -> CompositeState:
    """(R(α), v(α)) of the composite task from R(0) = r0 (scalar or (K,)), v(0) = v0/|v0|
    (composite ODEs of the module docstring, RK4 with steps ≤ ``max_step``). r0 = 0: vanilla (no pre-training);
    r0 = R after primitive pre-training: shaped. Returns CompositeState with (*alpha.shape, K) arrays.
    """
    _check_composite(T, learning_rate, v_learning_rate, v_teacher, r0, v0)
    alpha, ts, back = _times(alpha)
    vt = jnp.asarray(v_teacher, dtype=ts.dtype)
    y0 = CompositeState(jnp.broadcast_to(jnp.asarray(r0, ts.dtype), vt.shape), _unit(jnp.asarray(v0, ts.dtype)))
    ys = _solve(lambda y: composite_rates(y, T=T, learning_rate=learning_rate,
                                          v_learning_rate=v_learning_rate, v_teacher=vt), y0, ts, max_step)
    return CompositeState(*(y[back].reshape(alpha.shape + vt.shape) for y in ys))


def _first_crossing(field, y0, level_fn, threshold, horizon, step):
    """First α ≤ horizon where level_fn(y) reaches threshold, else inf; and the state there.

    RK4 steps of ``step`` until the level crosses; the crossing inside the last step is the
    root of the cubic Hermite interpolant of the level (values and slopes ∇level·field at both
    ends), found by bisection: error O(step⁴), as the RK4 states."""
    def level_and_slope(y):
        return jax.jvp(level_fn, (y,), (field(y),))

    def cond(c):
        t, y, prev = c
        return (level_fn(y) < threshold) & (t < horizon)

    def body(c):
        t, y, _ = c
        return t + step, _rk4_step(field, y, step), y

    t, y, prev = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.result_type(float)), y0, y0))
    (l0, d0), (l1, d1) = level_and_slope(prev), level_and_slope(y)
    h = jnp.asarray(step, t.dtype)

    def hermite(s):
        return ((2 * s**3 - 3 * s**2 + 1) * l0 + (s**3 - 2 * s**2 + s) * h * d0
                + (-2 * s**3 + 3 * s**2) * l1 + (s**3 - s**2) * h * d1) - threshold

    def bisect(_, b):
        lo, hi = b
        mid = 0.5 * (lo + hi)
        below = hermite(mid) < 0
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 60, bisect, (jnp.zeros((), t.dtype), jnp.ones((), t.dtype)))
    crossed = level_fn(y) >= threshold
    t_hit = jnp.where(level_fn(y0) >= threshold, 0.0, t - h + 0.5 * (lo + hi) * h)
    return jnp.where(crossed, t_hit, jnp.inf), y


def primitive_learning_time(T, *, learning_rate, r0=0.0, margin=0.01, horizon=1e4, step=0.01):
    """α (episodes/N) for one primitive to reach R = R*(T, η) − margin from R(0) = r0 (primitive ODE,
    RK4 steps of ``step``, crossing by cubic Hermite interpolation: error O(step⁴)); inf when not
    reached by ``horizon``. Scalar T; jit/vmap-able."""
    _check_rate(T, learning_rate)
    threshold = fixed_point(T, learning_rate) - margin
    t, _ = _first_crossing(lambda r: primitive_rate(r, T=T, learning_rate=learning_rate),
                           jnp.asarray(r0, jnp.result_type(float)), lambda r: r, threshold, horizon, step)
    return t


class LearningTime(NamedTuple):
    """α to reach the threshold of the composite overlap: pretrain (primitive phase, 0 when vanilla),
    composite (composite phase) and total = pretrain + composite; inf if not reached by the horizon."""
    pretrain: jnp.ndarray
    composite: jnp.ndarray
    total: jnp.ndarray


def learning_time(T, *, learning_rate, v_learning_rate, v_teacher, v0, shaped, r0=0.0, margin=0.01,
                  horizon=1e4, step=0.01) -> LearningTime:
    """α (episodes/N) until the composite overlap ρ̃ reaches R*(T, η) − margin (the authors'
    threshold in ``experiments/hrl/training_time.py``), vanilla or shaped (arXiv 2402.18361: shaping
    by primitive pre-training; the authors sweep T = 1..10 in ``launch_hrl_training_time.sh``).

    Vanilla: the composite ODE from R_k = r0, v = v0. Shaped (primitive pre-training): every
    primitive first learns alone (primitive ODE, all K in parallel, one episode each per unit of
    α) until R_k = R* − margin; then the composite ODE from there. Both phases use the same T and η.
    RK4 steps of ``step`` in α (error O(step⁴)); inf when the threshold is not reached by ``horizon``.
    Scalars in, scalars out; jit/vmap-able in T, learning rates and r0.
    """
    _check_composite(T, learning_rate, v_learning_rate, v_teacher, r0, v0)
    dtype = jnp.result_type(float)
    threshold = fixed_point(T, learning_rate) - margin
    vt = jnp.asarray(v_teacher, dtype)
    r_start = jnp.asarray(r0, dtype)
    t_pre = jnp.zeros((), dtype)
    if shaped:
        t_pre = primitive_learning_time(T, learning_rate=learning_rate, r0=r_start, margin=margin,
                                        horizon=horizon, step=step)
        r_start = jnp.maximum(r_start, threshold)  # the primitive phase ends exactly at the threshold
    y0 = CompositeState(jnp.broadcast_to(r_start, vt.shape), _unit(jnp.asarray(v0, dtype)))
    field = lambda y: composite_rates(y, T=T, learning_rate=learning_rate,  # noqa: E731
                                      v_learning_rate=v_learning_rate, v_teacher=vt)
    t_comp, _ = _first_crossing(field, y0, lambda y: composite_overlap(y.r, y.v, vt), threshold, horizon, step)
    return LearningTime(t_pre, t_comp, t_pre + t_comp)
