"""Two-layer linear convolutional networks with circular padding, 1-D and 2-D.

Architecture (H hidden channels = H *kernels*; D = 1 or 2 spatial dimensions
of shape ``spatial`` = (n,) or (n1, n2), N = ∏ spatial positions)::

    h_c = Σ_i w_{c,i} ⊛ x_i                 c = 1..H   (layer 1: C_in → H)
    f(x)_o = Σ_c a_{o,c} ⊛ h_c             o = 1..C_out (layer 2: H → C_out)

with circular convolution (u ⊛ x)[p] = Σ_j u[j] x[(p − j) mod spatial]. Kernels
have support ``kernel_size`` ≤ spatial (offsets 0..k−1 per axis; the default,
k = spatial, is a full-size kernel). Params::

    {"w": (H, C_in, *kernel_size), "a": (C_out, H, *kernel_size)}

x: (batch, C_in, *spatial) → f(x): (batch, C_out, *spatial). Unit c is the pair
of kernels (w_{c,:}, a_{:,c}).

The net is linear and translation-equivariant: f(x) = β ⊛ x with the
end-to-end kernel β_{o,i} = Σ_c a_{o,c} ⊛ w_{c,i} (``end_to_end``). Circular
convolution is diagonal in the Fourier basis (unnormalised DFT
û(ω) = Σ_j u[j] e^{−2πi ω·j/spatial}), so ``transfer`` gives, at every
frequency ω, the C_out × C_in matrix

    B̂(ω) = Â(ω) Ŵ(ω),    Â(ω): C_out × H,   Ŵ(ω): H × C_in,

a product through H hidden dimensions: rank B̂(ω) ≤ H at every ω. With
full-size kernels this is the only constraint, so a net with H kernels can
express exactly the β with max_ω rank B̂(ω) ≤ H (``kernels_needed``).

Loss with white inputs x ~ N(0, I) and a teacher y = β* ⊛ x (docs/design.md
convention L = ½ E‖y − f(x)‖², the norm over all channels and positions):

    L = ½ ‖B − B*‖²_F = (N/2) ‖β − β*‖² = ½ Σ_ω ‖B̂(ω) − B̂*(ω)‖²_F,

B the dense (C_out N × C_in N) block-circulant matrix of f (each kernel entry
appears N times; the last form is Parseval). ``population_loss``.

Saddles of narrower networks (Zhang, Saxe & Latham, arXiv 2512.20607): a unit
with w_{c,:} = a_{:,c} = 0 is silent and gets zero gradient, so a k-kernel net
padded with silent kernels (``embed_narrow``) keeps every critical point; from
small init gradient flow visits these embedded narrow optima, switching
kernels on one at a time.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np


def _shape(name: str, value, allowed_ndim=(1, 2)) -> Tuple[int, ...]:
    value = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(value) not in allowed_ndim or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in value):
        raise ValueError(f"{name}={value!r} is invalid; allowed: 1 or 2 integers ≥ 1 (1-D or 2-D)")
    return tuple(int(v) for v in value)


def init(
    key: jax.Array,
    *,
    spatial: Sequence[int],
    in_channels: int,
    out_channels: int,
    kernels: int,
    scale: float,
    kernel_size: Optional[Sequence[int]] = None,
    dtype=None,
) -> dict:
    """Every kernel entry of w and a i.i.d. N(0, scale²) (no fan-in scaling).

    kernels = 0 is allowed: the zero function (the narrowest net, L*_0).
    spatial: (n,) or (n1, n2); kernel_size: same length, each ≤ spatial
    (default: full size). Returns {"w": (H, C_in, *k), "a": (C_out, H, *k)}.
    """
    spatial = _shape("spatial", spatial)
    ksize = spatial if kernel_size is None else _shape("kernel_size", kernel_size)
    if len(ksize) != len(spatial) or any(k > n for k, n in zip(ksize, spatial)):
        raise ValueError(f"kernel_size={ksize!r} is invalid; allowed: {len(spatial)} integers ≤ spatial {spatial}")
    for name, value, least in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1), ("kernels", kernels, 0)):
        if not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name}={value!r} is invalid; allowed: an integer ≥ {least}")
    if not scale >= 0:
        raise ValueError(f"scale={scale!r} is invalid; allowed: a number ≥ 0")
    dtype = dtype or jnp.result_type(float)
    k_w, k_a = jax.random.split(key)
    return {
        "w": scale * jax.random.normal(k_w, (kernels, in_channels) + ksize, dtype),
        "a": scale * jax.random.normal(k_a, (out_channels, kernels) + ksize, dtype),
    }


def _axes(kernel: jax.Array) -> Tuple[int, ...]:
    return tuple(range(2, kernel.ndim))


def kernel_fft(kernel: jax.Array, spatial: Sequence[int]) -> jax.Array:
    """Unnormalised DFT of a kernel (…, …, *k) zero-padded to ``spatial``:
    returns (*spatial, rows, cols), the channel matrix at every frequency."""
    spatial = _shape("spatial", spatial)
    if kernel.ndim != 2 + len(spatial):
        raise ValueError(f"kernel of shape {kernel.shape} does not match {len(spatial)}-D spatial {spatial}")
    k_hat = jnp.fft.fftn(kernel, s=spatial, axes=_axes(kernel))
    return jnp.moveaxis(k_hat, (0, 1), (-2, -1))


def transfer(params: dict, spatial: Sequence[int]) -> jax.Array:
    """B̂(ω) = Â(ω) Ŵ(ω) at every frequency: (*spatial, C_out, C_in) complex."""
    return kernel_fft(params["a"], spatial) @ kernel_fft(params["w"], spatial)


def end_to_end(params: dict, spatial: Sequence[int]) -> jax.Array:
    """β_{o,i} = Σ_c a_{o,c} ⊛ w_{c,i}: (C_out, C_in, *spatial) real kernel with f(x) = β ⊛ x."""
    spatial = _shape("spatial", spatial)
    b_hat = jnp.moveaxis(transfer(params, spatial), (-2, -1), (0, 1))
    return jnp.real(jnp.fft.ifftn(b_hat, axes=tuple(range(2, 2 + len(spatial)))))


def conv(kernel: jax.Array, x: jax.Array) -> jax.Array:
    """Multi-channel circular convolution y_o = Σ_i kernel_{o,i} ⊛ x_i (via FFT).

    kernel: (C_out, C_in, *k) with k ≤ spatial; x: (batch, C_in, *spatial) →
    (batch, C_out, *spatial)."""
    spatial = x.shape[2:]
    if x.ndim != kernel.ndim or x.shape[1] != kernel.shape[1]:
        raise ValueError(f"x of shape {x.shape} does not fit kernel of shape {kernel.shape}: "
                         f"allowed (batch, {kernel.shape[1]}, *spatial) with {kernel.ndim - 2} spatial axes")
    axes = tuple(range(2, x.ndim))
    k_hat = jnp.fft.fftn(kernel, s=spatial, axes=axes)
    x_hat = jnp.fft.fftn(x, axes=axes)
    y_hat = jnp.einsum("oi...,bi...->bo...", k_hat, x_hat)
    return jnp.real(jnp.fft.ifftn(y_hat, axes=axes)).astype(x.dtype)


def apply(params: dict, x: jax.Array) -> jax.Array:
    """f(x) = a ⊛ (w ⊛ x); x: (batch, C_in, *spatial) → (batch, C_out, *spatial)."""
    return conv(params["a"], conv(params["w"], x))


def population_loss(params: dict, beta_star: jax.Array) -> jax.Array:
    """L = ½ E_x‖β* ⊛ x − f(x)‖² = (N/2)‖β − β*‖² for white x ~ N(0, I).

    beta_star: (C_out, C_in, *spatial) teacher kernel (full size)."""
    spatial = beta_star.shape[2:]
    diff = end_to_end(params, spatial) - beta_star
    return 0.5 * int(np.prod(spatial)) * jnp.sum(diff**2)


def transfer_singular_values(beta: jax.Array) -> jax.Array:
    """Singular values of B̂(ω) for a kernel (C_out, C_in, *spatial): (*spatial, min(C_out, C_in)), descending."""
    return jnp.linalg.svd(kernel_fft(beta, beta.shape[2:]), compute_uv=False)


def kernels_needed(beta: jax.Array, threshold: float) -> jax.Array:
    """max_ω #{α: s_α(ω) > threshold}: the fewest full-size kernels that express β
    up to singular values ≤ threshold (rank B̂(ω) ≤ H at every ω)."""
    return jnp.max(jnp.sum(transfer_singular_values(beta) > threshold, axis=-1))


def width(params: dict) -> int:
    """Number of kernels H (hidden channels)."""
    return int(params["w"].shape[0])


def embed_narrow(params_narrow: dict, kernels: int) -> dict:
    """Pad a k-kernel net with silent kernels (w_{c,:} = a_{:,c} = 0) up to ``kernels``:
    same function; a critical point of the narrow net is one of the wide net."""
    k = width(params_narrow)
    if not isinstance(kernels, (int, np.integer)) or kernels < k:
        raise ValueError(f"kernels={kernels!r} is invalid; allowed: an integer ≥ the narrow width {k}")
    w, a = params_narrow["w"], params_narrow["a"]
    pad = kernels - k
    return {
        "w": jnp.concatenate([w, jnp.zeros((pad,) + w.shape[1:], w.dtype)], axis=0),
        "a": jnp.concatenate([a, jnp.zeros((a.shape[0], pad) + a.shape[2:], a.dtype)], axis=1),
    }
