"""Deep linear networks f(x) = W_L ⋯ W_2 W_1 x.

Params are a list ``[W1 (h1, n_in), W2 (h2, h1), ..., WL (n_out, h_{L-1})]``;
``sizes = (n_in, h1, ..., h_{L-1}, n_out)`` so depth L = len(sizes) − 1 weight
layers. Inits follow Saxe et al. 2014 (arXiv 1312.6120; balanced, aligned) and
Braun et al. 2022 / Dominé et al. 2025 (arXiv 2409.14623; λ-balanced).
"""
from __future__ import annotations

from typing import Sequence, Union

import jax
import jax.numpy as jnp

Params = list


def _check_sizes(sizes: Sequence[int]) -> tuple:
    sizes = tuple(int(n) for n in sizes)
    if len(sizes) < 2:
        raise ValueError(f"sizes must list n_in, hidden widths and n_out (≥ 2 entries), got {sizes}")
    if any(n < 1 for n in sizes):
        raise ValueError(f"every width in sizes must be ≥ 1, got {sizes}")
    return sizes


def _check_layers(params: Params) -> tuple:
    """(n_in, n_out) of a layer list whose shapes chain; shapes are static, so this
    also runs under jit/vmap."""
    if len(params) == 0:
        raise ValueError("params must be a non-empty list of weight matrices [W1 (h1, n_in), ..., WL (n_out, h)]")
    for l, w in enumerate(params):
        if jnp.ndim(w) != 2:
            raise ValueError(f"layer {l + 1} has shape {jnp.shape(w)}; allowed: a matrix (fan_out, fan_in)")
        if l > 0 and w.shape[1] != params[l - 1].shape[0]:
            raise ValueError(f"layer {l + 1} has shape {w.shape} but layer {l} outputs {params[l - 1].shape[0]} units; "
                             f"allowed: ({w.shape[0]}, {params[l - 1].shape[0]})")
    return params[0].shape[1], params[-1].shape[0]


def apply(params: Params, x: jax.Array) -> jax.Array:
    """Network output, x: (batch, n_in) → (batch, n_out)."""
    n_in, _ = _check_layers(params)
    if jnp.ndim(x) != 2 or jnp.shape(x)[1] != n_in:
        raise ValueError(f"x.shape={jnp.shape(x)} is invalid; allowed: (batch, n_in) = (batch, {n_in}) for these params")
    for w in params:
        x = x @ w.T
    return x


def end_to_end(params: Params) -> jax.Array:
    """The product W = W_L ⋯ W_1, shape (n_out, n_in)."""
    _check_layers(params)
    w = params[0]
    for layer in params[1:]:
        w = layer @ w
    return w


def mode_strengths(params: Params, u: jax.Array, v: jax.Array) -> jax.Array:
    """u_α = u_αᵀ W v_α for each mode α; u: (n_out, r), v: (n_in, r) → (r,)."""
    n_in, n_out = _check_layers(params)
    ok = jnp.ndim(u) == 2 and jnp.ndim(v) == 2 and u.shape[0] == n_out and v.shape[0] == n_in
    if not ok or u.shape[1] != v.shape[1]:
        raise ValueError(f"u.shape={jnp.shape(u)}, v.shape={jnp.shape(v)} are invalid; allowed: u (n_out, r) = ({n_out}, r), "
                         f"v (n_in, r) = ({n_in}, r), the same number of modes r")
    return jnp.einsum("oa,oi,ia->a", u, end_to_end(params), v)


def init_gaussian(key: jax.Array, sizes: Sequence[int], *, std: float, dtype=None) -> Params:
    """I.i.d. N(0, std²) entries in every layer (no fan-in scaling)."""
    sizes = _check_sizes(sizes)
    if std < 0:
        raise ValueError(f"std must be ≥ 0, got {std}")
    dtype = dtype or jnp.result_type(float)
    keys = jax.random.split(key, len(sizes) - 1)
    return [std * jax.random.normal(k, (n_out, n_in), dtype) for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])]


def _haar(key: jax.Array, n: int, dtype) -> jax.Array:
    q, r = jnp.linalg.qr(jax.random.normal(key, (n, n), dtype))
    return q * jnp.sign(jnp.diag(r))[None, :]


def init_balanced(key: jax.Array, sizes: Sequence[int], *, scale: float, dtype=None) -> Params:
    """Balanced init: W_{l+1}ᵀ W_{l+1} = W_l W_lᵀ for every hidden layer.

    W_l = R_l[:, :r] · scale · R_{l−1}[:, :r]ᵀ with Haar-random orthogonal R_l and
    r = min(sizes): every layer has r singular values equal to ``scale``.
    """
    sizes = _check_sizes(sizes)
    dtype = dtype or jnp.result_type(float)
    r = min(sizes)
    rots = [_haar(k, n, dtype)[:, :r] for k, n in zip(jax.random.split(key, len(sizes)), sizes)]
    return [scale * rots[l + 1] @ rots[l].T for l in range(len(sizes) - 1)]


def lambda_balanced_singular_values(scale: float, lam: float) -> tuple:
    """(a, b) with b² − a² = λ and a·b = scale²: W1's and W2's singular values."""
    a2 = 0.5 * (jnp.sqrt(lam**2 + 4.0 * scale**4) - lam)
    return jnp.sqrt(a2), jnp.sqrt(a2 + lam)


def init_lambda_balanced(key: jax.Array, sizes: Sequence[int], *, lam: float, scale: float, dtype=None) -> Params:
    """Two-layer λ-balanced init: W2ᵀW2 − W1W1ᵀ = λ I_hidden.

    W1 = R diag(a) B1ᵀ, W2 = B2 diag(b) Rᵀ with b² − a² = λ and a·b = scale², so
    the network map W2W1 has all singular values scale² whatever λ is, and λ
    alone moves the init between rich (λ≈0) and lazy (|λ| large); Braun et al.
    2022, Dominé et al. 2025 (arXiv 2409.14623, Eq. 3). Needs hidden ≤ min(n_in, n_out).
    """
    sizes = _check_sizes(sizes)
    if len(sizes) != 3:
        raise ValueError(f"λ-balanced init is for two-layer nets, sizes=(n_in, hidden, n_out), got {sizes}")
    n_in, hidden, n_out = sizes
    if hidden > min(n_in, n_out):
        raise ValueError(f"λ-balanced init needs hidden ≤ min(n_in, n_out) = {min(n_in, n_out)}, got hidden={hidden}")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    dtype = dtype or jnp.result_type(float)
    k_r, k_1, k_2 = jax.random.split(key, 3)
    a, b = lambda_balanced_singular_values(scale, lam)
    rot = _haar(k_r, hidden, dtype)
    w1 = a * rot @ _haar(k_1, n_in, dtype)[:, :hidden].T
    w2 = b * _haar(k_2, n_out, dtype)[:, :hidden] @ rot.T
    return [w1.astype(dtype), w2.astype(dtype)]


def init_aligned(
    key: jax.Array,
    sizes: Sequence[int],
    *,
    u: jax.Array,
    v: jax.Array,
    u0: Union[float, jax.Array],
    dtype=None,
) -> Params:
    """Balanced weights aligned with the task's modes, initial mode strength u0.

    W1 = R1[:, :r] diag(u0^{1/L}) vᵀ, W_l = R_l[:, :r] diag(u0^{1/L}) R_{l−1}[:, :r]ᵀ,
    W_L = u diag(u0^{1/L}) R_{L−1}[:, :r]ᵀ, so uᵀ W_L⋯W_1 v = diag(u0) and every
    mode evolves independently (Saxe et al. 2014, arXiv 1312.6120, Eq. 6).
    u: (n_out, r), v: (n_in, r), u0 > 0 scalar or (r,); needs r ≤ every hidden width.
    """
    sizes = _check_sizes(sizes)
    r = u.shape[1]
    if u.shape != (sizes[-1], r) or v.shape != (sizes[0], r):
        raise ValueError(f"u, v must be (n_out, r), (n_in, r) = ({sizes[-1]}, r), ({sizes[0]}, r); got {u.shape}, {v.shape}")
    if r > min(sizes[1:-1], default=r):
        raise ValueError(f"{r} modes do not fit through hidden widths {sizes[1:-1]}")
    dtype = dtype or u.dtype
    depth = len(sizes) - 1
    per_layer = jnp.broadcast_to(jnp.asarray(u0, dtype), (r,)) ** (1.0 / depth)
    bases = [v] + [_haar(k, n, dtype)[:, :r] for k, n in zip(jax.random.split(key, depth - 1), sizes[1:-1])] + [u]
    return [(bases[l + 1] * per_layer[None, :]) @ bases[l].T for l in range(depth)]


def conserved_gram(params: Params) -> list:
    """W_{l+1}ᵀW_{l+1} − W_l W_lᵀ for each hidden layer: constant under gradient flow."""
    return [params[l + 1].T @ params[l + 1] - params[l] @ params[l].T for l in range(len(params) - 1)]
