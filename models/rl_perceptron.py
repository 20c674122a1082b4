"""RL-perceptron students of a compositional task (Lee, Sarao Mannelli & Saxe, ICML 2024,
arXiv 2402.18361; Patel et al. 2023, arXiv 2306.10404, for one primitive).

K primitives: student w (K, N), teacher w* (K, N) with orthogonal rows, |w*_k|² = N; readouts
v, v* (K,), unit norm. An episode is T binary decisions; at decision t primitive k sees its
own input x_{k,t} ~ N(0, I_N) (inputs: (K, T, N)). Fields λ_{k,t} = w_k·x_{k,t}/√N, composite
decision ŷ_t = sign(Σ_k v_k λ_{k,t}); the teacher's y_t likewise from w*, v*. Reward I = 1 only
if all T decisions are right; the policy-gradient update (``composite_episode``) and the
per-primitive pre-training update (``primitive_episode``) are in ``theory.shaping``'s docstring,
as in the authors' simulator (github.com/jinhl9/saad-solla-composition,
``solver/simple_hrl_solver.py``): after each rewarded episode |w_k|² is reset to N, |v| to 1.
Every function is pure and works under ``jax.jit``/``jax.vmap``.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Teacher(NamedTuple):
    w: jnp.ndarray  # (K, N), orthogonal rows of squared norm N
    v: jnp.ndarray  # (K,), unit norm


class Student(NamedTuple):
    w: jnp.ndarray  # (K, N), rows of squared norm N
    v: jnp.ndarray  # (K,), unit norm


def _unit(v):
    return v / jnp.linalg.norm(v)


def _renorm_rows(w):
    n = w.shape[-1]
    return w * jnp.sqrt(n) / jnp.linalg.norm(w, axis=-1, keepdims=True)


def init_teacher(key, n: int, v) -> Teacher:
    """K = len(v) orthogonal primitive teachers in R^n (|w*_k|² = n) and readout v/|v|."""
    v = jnp.asarray(v, dtype=jnp.result_type(float))
    if v.ndim != 1 or n < v.shape[0]:
        raise ValueError(f"v must be a (K,) vector with K ≤ n, got shape {v.shape} and n={n}")
    q, _ = jnp.linalg.qr(jax.random.normal(key, (n, v.shape[0]), v.dtype))
    return Teacher(q.T * jnp.sqrt(n), _unit(v))


def init_student(key, teacher: Teacher, *, r0, v0) -> Student:
    """Student with overlaps R_k = w_k·w*_k/N = r0 exactly (scalar or (K,), |r0| < 1), |w_k|² = N,
    and readout v0/|v0|: w_k = r0 w*_k + √(1 − r0²) u_k with u_k ⟂ every teacher, |u_k|² = N."""
    k, n = teacher.w.shape
    g = jax.random.normal(key, (k, n), teacher.w.dtype)
    g = g - (g @ teacher.w.T) @ teacher.w / n  # remove the teacher directions
    r0 = jnp.broadcast_to(jnp.asarray(r0, teacher.w.dtype), (k,))[:, None]
    return Student(r0 * teacher.w + jnp.sqrt(1.0 - r0**2) * _renorm_rows(g), _unit(jnp.asarray(v0, teacher.w.dtype)))


def overlaps(student: Student, teacher: Teacher) -> jnp.ndarray:
    """R_k = w_k·w*_k/N, (K,)."""
    return jnp.sum(student.w * teacher.w, -1) / student.w.shape[-1]


def composite_overlap(student: Student, teacher: Teacher) -> jnp.ndarray:
    """ρ̃ = Σ_k v_k v*_k R_k / (|v||v*|√(Σ v_k² Q_k)): correlation of the composite fields (scalar);
    cross-overlaps w_k·w*_j (j ≠ k) do not enter because primitive inputs are independent."""
    n = student.w.shape[-1]
    q = jnp.sum(student.w**2, -1) / n
    r = overlaps(student, teacher)
    return jnp.sum(student.v * teacher.v * r) / jnp.sqrt(jnp.sum(student.v**2 * q) * jnp.sum(teacher.v**2))


def _inputs(key, shape, dtype):
    """x ~ N(0, I): drawn in float32 (about 4× faster than float64 on CPU, and a Gaussian sample
    needs no more bits), then cast to the weights' dtype so every update is computed in it."""
    return jax.random.normal(key, shape, jnp.float32).astype(dtype)


def _fields(w, x):
    """λ_{k,t} = w_k·x_{k,t}/√N: w (K, N), x (K, T, N) → (K, T)."""
    return jnp.einsum("kn,ktn->kt", w, x) / jnp.sqrt(w.shape[-1])


def _mask(T, max_T, dtype):
    """Decisions t < T count; T may be traced (one program for every T ≤ max_T)."""
    return (jnp.arange(max_T) < T).astype(dtype)


def composite_episode(student: Student, teacher: Teacher, key, *, T, learning_rate, v_learning_rate,
                      max_T: int = None) -> Student:
    """One episode of the composite task: T decisions, reward only if all are right, then
    w_k += η v_k/(T√N) Σ_t ŷ_t x_{k,t}, v_k += η_v/(TN) Σ_t λ_{k,t} ŷ_t, renormalise (rewarded only).
    ``max_T`` (static, default T): inputs are drawn for max_T decisions and those t ≥ T ignored,
    so T may be a traced value (a sweep over T compiles once)."""
    k, n = student.w.shape
    max_T = T if max_T is None else max_T
    m = _mask(T, max_T, student.w.dtype)
    x = _inputs(key, (k, max_T, n), student.w.dtype)
    lam = _fields(student.w, x)
    y_hat = jnp.sign(student.v @ lam)  # (max_T,)
    y = jnp.sign(teacher.v @ _fields(teacher.w, x))
    reward = jnp.all((y_hat == y) | (m == 0)).astype(student.w.dtype)
    dw = jnp.einsum("t,ktn->kn", m * y_hat, x) * student.v[:, None] / (T * jnp.sqrt(n))
    dv = lam @ (m * y_hat) / (T * n)
    w = student.w + reward * learning_rate * dw
    v = student.v + reward * v_learning_rate * dv
    return Student(_renorm_rows(w), _unit(v))


def primitive_episode(student: Student, teacher: Teacher, key, *, T, learning_rate, max_T: int = None) -> Student:
    """One pre-training episode for every primitive at once (shaping): primitive k makes its own T
    decisions sign(λ_{k,t}), is rewarded only if all match sign(ν_{k,t}), and then
    w_k += η/(T√N) Σ_t sign(λ_{k,t}) x_{k,t}, renormalised; v is untouched. ``max_T`` as in
    ``composite_episode``."""
    k, n = student.w.shape
    max_T = T if max_T is None else max_T
    m = _mask(T, max_T, student.w.dtype)
    x = _inputs(key, (k, max_T, n), student.w.dtype)
    y_hat = jnp.sign(_fields(student.w, x))  # (K, max_T)
    right = (y_hat == jnp.sign(_fields(teacher.w, x))) | (m == 0)
    reward = jnp.all(right, axis=-1).astype(student.w.dtype)  # (K,)
    dw = jnp.einsum("kt,ktn->kn", m * y_hat, x) / (T * jnp.sqrt(n))
    return Student(_renorm_rows(student.w + (reward * learning_rate)[:, None] * dw), student.v)
