"""Convolutional teachers y = β* ⊛ x with white inputs, 1-D or 2-D, circular.

``flat_teacher`` builds a real kernel β*: (C_out, C_in, *spatial) whose
transfer matrix (unnormalised DFT, ``models.conv`` convention)

    B̂*(ω) = U(ω) diag(s) V(ω)^H

has the *same* singular values s_1 > s_2 > … at every frequency ω, with random
unitary U(ω), V(ω). It is the conv analogue of the white-input linear teacher
(Saxe et al., arXiv 1312.6120): with full-size kernels every frequency is an
independent two-layer linear net with the same mode strengths, so a wide
student learns mode α at all frequencies in one transition, one kernel per
mode (Zhang, Saxe & Latham, arXiv 2512.20607). ``random_teacher`` is a generic
one: a conv net with random Gaussian kernels, whose s_α(ω) vary with ω.

Realness. β* is real iff B̂*(−ω) = conj B̂*(ω). U and V are the polar factors
of the DFT of real Gaussian arrays, G(ω) → G (G^H G)^{−1/2}; the polar factor
commutes with complex conjugation, so U(−ω) = conj U(ω) and β* is real.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np


class ConvTask(NamedTuple):
    """beta_star: (C_out, C_in, *spatial); trace_yy = E‖y‖² = N ‖β*‖² (white x)."""

    beta_star: jax.Array
    spatial: tuple
    trace_yy: jax.Array


def _polar(g: jax.Array) -> jax.Array:
    """Polar factor G (G^H G)^{−1/2} = P Qh of the thin SVD G = P Σ Qh (batched)."""
    p, _, qh = jnp.linalg.svd(g, full_matrices=False)
    return p @ qh


def _task(beta_star, spatial) -> ConvTask:
    return ConvTask(beta_star, tuple(spatial), int(np.prod(spatial)) * jnp.sum(beta_star**2))


def flat_teacher(key: jax.Array, *, spatial: Sequence[int], in_channels: int, out_channels: int, s: Sequence[float]) -> ConvTask:
    """Teacher whose transfer matrix has singular values ``s`` at every frequency.

    len(s) ≤ min(C_in, C_out); the teacher is a conv net with len(s) full-size kernels.
    """
    spatial = tuple(int(n) for n in spatial)
    s = jnp.asarray(s, dtype=jnp.result_type(float))
    r = s.shape[0]
    positive = isinstance(s, jax.core.Tracer) or bool(jnp.all(s > 0))  # traced when built inside a sweep cell
    if s.ndim != 1 or r < 1 or r > min(in_channels, out_channels) or not positive:
        raise ValueError(f"s={np.asarray(s).tolist()!r} is invalid; allowed: 1..min(C_in, C_out) = "
                         f"{min(in_channels, out_channels)} positive values")
    axes = tuple(range(2, 2 + len(spatial)))
    k_u, k_v = jax.random.split(key)
    dtype = s.dtype

    def unitary(k, rows):
        g = jax.random.normal(k, (rows, r) + spatial, dtype)
        return _polar(jnp.moveaxis(jnp.fft.fftn(g, axes=axes), (0, 1), (-2, -1)))  # (*spatial, rows, r)

    u, v = unitary(k_u, out_channels), unitary(k_v, in_channels)
    b_hat = (u * s) @ jnp.conj(jnp.swapaxes(v, -1, -2))
    beta = jnp.fft.ifftn(jnp.moveaxis(b_hat, (-2, -1), (0, 1)), axes=axes)
    return _task(jnp.real(beta), spatial)


def random_teacher(key: jax.Array, *, spatial: Sequence[int], in_channels: int, out_channels: int,
                   kernels: int, scale: float = 1.0) -> ConvTask:
    """β* = Σ_c a_c ⊛ w_c with full-size kernels of i.i.d. N(0, scale²/N) entries."""
    spatial = tuple(int(n) for n in spatial)
    n = int(np.prod(spatial))
    dtype = jnp.result_type(float)
    k_w, k_a = jax.random.split(key)
    w = scale / np.sqrt(n) * jax.random.normal(k_w, (kernels, in_channels) + spatial, dtype)
    a = scale / np.sqrt(n) * jax.random.normal(k_a, (out_channels, kernels) + spatial, dtype)
    axes = tuple(range(2, 2 + len(spatial)))
    b_hat = jnp.einsum("oc...,ci...->oi...", jnp.fft.fftn(a, axes=axes), jnp.fft.fftn(w, axes=axes))
    return _task(jnp.real(jnp.fft.ifftn(b_hat, axes=axes)), spatial)


def sample(key: jax.Array, task: ConvTask, n_samples: int):
    """(x, y): white Gaussian x: (P, C_in, *spatial), y = β* ⊛ x computed by explicit FFT."""
    c_in = task.beta_star.shape[1]
    x = jax.random.normal(key, (n_samples, c_in) + task.spatial, task.beta_star.dtype)
    axes = tuple(range(2, x.ndim))
    y_hat = jnp.einsum("oi...,bi...->bo...", jnp.fft.fftn(task.beta_star, axes=axes), jnp.fft.fftn(x, axes=axes))
    return x, jnp.real(jnp.fft.ifftn(y_hat, axes=axes))
