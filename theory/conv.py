"""Narrow-network optima of two-layer linear conv nets, in closed form.

Setting (``models.conv``): full-size circular kernels, white inputs, teacher
y = β* ⊛ x, loss L = ½ Σ_ω ‖Â(ω) Ŵ(ω) − B̂*(ω)‖²_F over the N frequencies ω of
the unnormalised DFT. A net with H kernels constrains only rank B̂(ω) ≤ H, and
frequencies decouple (ω and −ω are complex conjugates of each other), so the
best H-kernel net is Eckart-Young at every frequency (derived here; the
truncated SVD commutes with conjugation, so the optimum has real kernels):

    L*_H = ½ Σ_ω Σ_{α > H} s_α(ω)²,     s_α(ω) the singular values of B̂*(ω).

By Zhang, Saxe & Latham (arXiv 2512.20607) these are the plateau losses of a
wide net trained from small init: the k-kernel optimum, padded with silent
kernels, is a saddle of the wide net, visited after the k-th escape. For a
teacher with the same s_α at every ω (``tasks.conv_teacher.flat_teacher``)
L*_H = (N/2) Σ_{α>H} s_α²: one kernel per escape.

Timescale (derived here, for the plot's time axis only). The DFT of the
gradient of L = (N/2)‖β − β*‖² is N Â^H(B̂ − B̂*), so each frequency is a
two-layer linear net run N times faster: dŴ/dt = −N Â^H(ÂŴ − B̂*). From i.i.d.
N(0, σ²) kernel entries, Ŵ(ω) has entries of variance Nσ², so the mode of
strength s_α escapes near t_α ≈ ln(s_α/(Nσ²)) / (2 N s_α) (Saxe et al.,
arXiv 1312.6120, Eq. 8 with u0 ~ Nσ²). ``escape_time_scale`` returns this
leading-order estimate; it sets horizons, and is not a verified prediction.
"""
from __future__ import annotations

from typing import Optional

import jax.numpy as jnp
import numpy as np


def transfer_singular_values(beta_star) -> jnp.ndarray:
    """s_α(ω) of B̂*(ω) for β*: (C_out, C_in, *spatial): shape (N, min(C_out, C_in)), descending.

    B̂*(ω) = Σ_x β*[:, :, x] e^{−2πi ω·x/n}, the unnormalised DFT over positions: a circular
    convolution is diagonal in frequency (convolution theorem), so the map y = β* ⊛ x acts as
    the C_out × C_in matrix B̂*(ω) at each ω (module docstring; standard, no paper needed).
    """
    beta_star = jnp.asarray(beta_star)
    if beta_star.ndim not in (3, 4):
        raise ValueError(f"beta_star of shape {beta_star.shape} is invalid; allowed: (C_out, C_in, *spatial), 1-D or 2-D")
    axes = tuple(range(2, beta_star.ndim))
    b_hat = jnp.fft.fftn(beta_star, axes=axes)
    b_hat = jnp.moveaxis(b_hat, (0, 1), (-2, -1)).reshape((-1,) + beta_star.shape[:2])
    return jnp.linalg.svd(b_hat, compute_uv=False)


def narrow_optimum_losses(beta_star, max_kernels: Optional[int] = None) -> jnp.ndarray:
    """L*_H = ½ Σ_ω Σ_{α>H} s_α(ω)² for H = 0, 1, …, max_kernels (default min(C_out, C_in)).

    The loss of the best linear conv net with H full-size kernels (white inputs): Eckart-Young
    at every frequency (derived here, module docstring); by Zhang, Saxe & Latham (arXiv
    2512.20607, Sec. 5, the convolutional case) these are the plateau losses of a wide net.
    """
    s = transfer_singular_values(beta_star)
    r = s.shape[1]
    max_kernels = r if max_kernels is None else int(max_kernels)
    if max_kernels < 0:
        raise ValueError(f"max_kernels={max_kernels!r} is invalid; allowed: an integer ≥ 0")
    tail = 0.5 * jnp.sum(s**2, axis=0)[::-1].cumsum()[::-1]  # tail[H] = ½ Σ_ω Σ_{α≥H+1} s_α²
    tail = jnp.concatenate([tail, jnp.zeros(1, tail.dtype)])
    return tail[jnp.minimum(jnp.arange(max_kernels + 1), r)]


def escape_time_scale(s, *, n_positions: int, init_scale: float) -> np.ndarray:
    """Leading-order escape time t_α ≈ ln(s_α/(Nσ²)) / (2 N s_α) of each mode.

    Derived here (module docstring): each frequency is a two-layer net run N times
    faster, and Saxe et al. 2014 (arXiv 1312.6120, Eq. 9) give its escape time from
    u0 ≈ Nσ². A horizon scale, not a verified prediction (the O(1) constant in u0 is
    not derived).
    """
    s = np.asarray(s, dtype=float)
    u0 = n_positions * init_scale**2
    if not (u0 > 0 and np.all(s > u0)):
        raise ValueError(f"need s > N σ² (small init); got s={s.tolist()}, N σ²={u0:g}")
    return np.log(s / u0) / (2 * n_positions * s)
