"""Linear teacher task with chosen singular values of Σyx and input spectrum.

The teacher is aligned with the input covariance, as in Saxe, McClelland &
Ganguli 2014 (arXiv 1312.6120, Sec. 2): Σxx = V diag(λ) Vᵀ and
Σyx = U diag(s) Vᵀ, so the teacher map is W* = U diag(s/λ) Vᵀ and each mode α
is an independent scalar problem with input variance λ_α and strength s_α.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np


class LinearTask(NamedTuple):
    """Data (or none, for population statistics) and the second moments.

    x: (n_samples, n_in) or None; y: (n_samples, n_out) or None.
    sigma_xx: (n_in, n_in) = XᵀX/P.  sigma_yx: (n_out, n_in) = YᵀX/P.
    trace_yy: tr Σyy = ‖Y‖²/P, the loss of the zero network is trace_yy/2.
    s: (r,) singular values of Σyx, descending; u: (n_out, r), v: (n_in, r)
    its left/right singular vectors (the "modes" of Saxe et al.).
    """

    x: Optional[jax.Array]
    y: Optional[jax.Array]
    sigma_xx: jax.Array
    sigma_yx: jax.Array
    trace_yy: jax.Array
    s: jax.Array
    u: jax.Array
    v: jax.Array


def _orthonormal(key: jax.Array, n: int, k: int, dtype) -> jax.Array:
    """(n, k) matrix with orthonormal columns, Haar-distributed."""
    q, r = jnp.linalg.qr(jax.random.normal(key, (n, n), dtype))
    q = q * jnp.sign(jnp.diag(r))[None, :]
    return q[:, :k]


def _whitened_gaussian(key: jax.Array, n_samples: int, n_in: int, dtype) -> jax.Array:
    """(n_samples, n_in) Gaussian sample whose empirical XᵀX/P is exactly I."""
    z = jax.random.normal(key, (n_samples, n_in), dtype)
    q, r = jnp.linalg.qr(z)  # z = q r with qᵀq = I
    return q * jnp.sign(jnp.diag(r))[None, :] * jnp.sqrt(jnp.asarray(n_samples, dtype))


def teacher(
    key: jax.Array,
    *,
    n_in: int,
    n_out: int,
    s: Sequence[float],
    lam_x: Optional[Sequence[float]] = None,
    n_samples: Optional[int] = None,
    noise_std: float = 0.0,
    exact_moments: bool = True,
    aligned_basis: bool = False,
    dtype=None,
) -> LinearTask:
    """A linear teacher task y = W* x (+ noise) with Σyx = U diag(s) Vᵀ.

    Args:
      key: PRNG key for the singular vectors and the samples.
      n_in, n_out: input and output dimension.
      s: singular values of Σyx, r = len(s) ≤ min(n_in, n_out) of them.
      lam_x: eigenvalues of Σxx, length n_in; the first r belong to the modes of
        s (λ_α is the input variance along mode α). Default: white, all ones.
      n_samples: P. None gives population statistics only (x = y = None).
      noise_std: std of additive Gaussian output noise (finite P only).
      exact_moments: with finite P, make XᵀX/P equal Σxx exactly (inputs are a
        whitened Gaussian sample, Saxe et al.'s orthogonal-input setting), so
        the sample statistics equal the population ones when noise_std = 0.
      aligned_basis: use the standard basis for U and V instead of random ones.

    Returns:
      LinearTask, with s sorted descending as given.
    """
    s_arr = np.asarray(s, dtype=float)
    if s_arr.ndim != 1 or s_arr.size == 0:
        raise ValueError(f"s must be a non-empty 1-D sequence of singular values, got {s!r}")
    r = s_arr.size
    if n_in < 1 or n_out < 1:
        raise ValueError(f"n_in and n_out must be ≥ 1, got n_in={n_in}, n_out={n_out}")
    if r > min(n_in, n_out):
        raise ValueError(f"len(s)={r} exceeds min(n_in, n_out)={min(n_in, n_out)}")
    if np.any(s_arr <= 0) or np.any(np.diff(s_arr) > 0):
        raise ValueError(f"s must be positive and non-increasing, got {list(s_arr)}")
    lam = np.ones(n_in) if lam_x is None else np.asarray(lam_x, dtype=float)
    if lam.shape != (n_in,) or np.any(lam <= 0):
        raise ValueError(f"lam_x must be {n_in} positive eigenvalues, got {lam_x!r}")
    if n_samples is not None and exact_moments and n_samples < n_in:
        raise ValueError(f"exact_moments needs n_samples ≥ n_in={n_in}, got {n_samples}")

    dtype = dtype or jnp.result_type(float)
    k_u, k_v, k_x, k_n = jax.random.split(key, 4)
    if aligned_basis:
        u_full, v_full = jnp.eye(n_out, dtype=dtype), jnp.eye(n_in, dtype=dtype)
    else:
        u_full, v_full = _orthonormal(k_u, n_out, n_out, dtype), _orthonormal(k_v, n_in, n_in, dtype)
    s_j, lam_j = jnp.asarray(s_arr, dtype), jnp.asarray(lam, dtype)
    u, v = u_full[:, :r], v_full[:, :r]
    sigma_xx = (v_full * lam_j[None, :]) @ v_full.T
    w_star = (u * (s_j / lam_j[:r])[None, :]) @ v.T  # (n_out, n_in)

    if n_samples is None:
        trace_yy = jnp.sum(s_j**2 / lam_j[:r])
        return LinearTask(None, None, sigma_xx, (u * s_j[None, :]) @ v.T, trace_yy, s_j, u, v)

    if exact_moments:
        z = _whitened_gaussian(k_x, n_samples, n_in, dtype)
    else:
        z = jax.random.normal(k_x, (n_samples, n_in), dtype)
    x = (z @ v_full) * jnp.sqrt(lam_j)[None, :] @ v_full.T
    y = x @ w_star.T + noise_std * jax.random.normal(k_n, (n_samples, n_out), dtype)
    if noise_std == 0.0 and exact_moments:
        # The sample statistics equal the population ones: keep the chosen
        # singular vectors (an SVD returns them only up to sign, and mixes
        # degenerate ones) and stay traceable, e.g. under vmap over seeds.
        p = jnp.asarray(n_samples, dtype)
        return LinearTask(x, y, x.T @ x / p, y.T @ x / p, jnp.sum(y * y) / p, s_j, u, v)
    return from_data(x, y)


def from_data(x: jax.Array, y: jax.Array) -> LinearTask:
    """Statistics of a data set: Σxx = XᵀX/P, Σyx = YᵀX/P, and the SVD of Σyx.

    x: (P, n_in), y: (P, n_out). Singular vectors with singular value below
    1e-12·s₁ are dropped.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must be (P, n_in) and (P, n_out), got {x.shape} and {y.shape}")
    p = x.shape[0]
    sigma_xx = x.T @ x / p
    sigma_yx = y.T @ x / p
    u, s, vt = np.linalg.svd(np.asarray(sigma_yx), full_matrices=False)
    keep = s > 1e-12 * max(s[0], 1e-300)
    return LinearTask(
        x, y, sigma_xx, sigma_yx, jnp.sum(y * y) / p,
        jnp.asarray(s[keep]), jnp.asarray(u[:, keep]), jnp.asarray(vt[keep].T),
    )
