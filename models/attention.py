"""Multi-head linear self-attention for in-context regression (arXiv 2501.16265).

Paper (Zhang, Singh, Latham & Saxe, ICML 2025; also the README of github.com/yedizhang/linattn-icl), with Z ∈ R^{(D+1)×(N+1)}
the token matrix (``tasks.icl``)::

    merged    ATTN_M(Z) = Z + Σ_i (1/N) W^V_i Z Zᵀ W^KQ_i Z
    separate  ATTN_S(Z) = Z + Σ_i (1/N) W^V_i Z Zᵀ W^K_iᵀ W^Q_i Z

and the prediction is the entry (D+1, N+1): the y slot of the query token (the
residual adds the query's y slot, which is 0). Z Zᵀ sums over all N+1 tokens,
query included; the 1/N follows the paper (the public code omits it, which only
rescales time and init: ``divide_by_n=False`` drops it; see
``experiments.linear_attention_plateaus`` for the conversion table).

Params (pytrees of arrays, H heads, token width D+1):
  merged:   {"kq": (H, D+1, D+1), "v": (H, D+1, D+1)}            W^KQ_i, W^V_i
  separate: {"k": (H, R, D+1), "q": (H, R, D+1), "v": (H, D+1, D+1)}  W^KQ_i = W^K_iᵀ W^Q_i

Tokens are token-major, ``tokens: (batch, N+1, D+1)`` (= Zᵀ per sequence).

Reduction used everywhere below: ŷ = ⟨Γ, φ⟩ with features φ_abc = S_ab x_{q,c}/N,
S = ZZᵀ, and the interaction tensor Γ_abc = Σ_i W^V_i[D, a] W^KQ_i[b, c]
(a, b ≤ D, c < D). The population loss is therefore an exact quadratic in Γ
(``population_loss``). On the invariant manifold where the value's last row
has zero x-part and W^KQ's last row has zero x-part (the paper's init), only
Γ[D, :D, :D] = Σ_i v_i K_i is non-zero (v_i = W^V_i[D, D], K_i = W^KQ_i[:D, :D])
and ŷ = Σ_i v_i ⟨K_i, z⟩ with the cubic feature z = (1/N) Σₙ yₙ xₙ x_qᵀ: a
two-layer linear network (first layer rows vec K_i, second layer v_i).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _dtype(dtype):
    return dtype or jnp.result_type(float)


def _check_shape(dim, n_heads, rank=1):
    if dim < 1 or n_heads < 1 or rank < 1:
        raise ValueError(f"dim, n_heads and rank must be ≥ 1, got dim={dim}, n_heads={n_heads}, rank={rank}")


def init_merged(key: jax.Array, *, dim: int, n_heads: int, scale, on_manifold: bool = True, dtype=None) -> dict:
    """Merged key-query params with i.i.d. N(0, std²) entries.

    scale: one std, or per-layer stds ``{"kq": σ_KQ, "v": σ_V}``.
    dim: D (token width D+1). With ``on_manifold`` (the paper's init) the x-part
    of each value's last row and of each W^KQ's last row are zero; gradient flow
    keeps them zero (the loss is even in them, see module docstring).
    """
    _check_shape(dim, n_heads)
    return _init_merged(key, _layer_scales(scale, ("kq", "v"), _dtype(dtype)), dim=dim, n_heads=n_heads,
                        on_manifold=on_manifold)


@functools.partial(jax.jit, static_argnames=("dim", "n_heads", "on_manifold"))
def _init_merged(key, scales, *, dim, n_heads, on_manifold):
    k1, k2 = jax.random.split(key)
    shape = (n_heads, dim + 1, dim + 1)
    kq = scales["kq"] * jax.random.normal(k1, shape, scales["kq"].dtype)
    v = scales["v"] * jax.random.normal(k2, shape, scales["v"].dtype)
    if on_manifold:
        kq = kq.at[:, dim, :dim].set(0.0)
        v = v.at[:, dim, :dim].set(0.0)
    return {"kq": kq, "v": v}


def init_separate(key: jax.Array, *, dim: int, n_heads: int, rank: int = 1, scale,
                  on_manifold: bool = True, dtype=None) -> dict:
    """Separate key and query (rank R per head) with i.i.d. N(0, std²) entries.

    scale: one std for every entry, or per-layer stds ``{"k": σ_K, "q": σ_Q, "v": σ_V}``
    (e.g. ``code_init_scales``, linattn-icl's std/√numel scheme).
    With ``on_manifold`` (the paper's init) each key's y column and the x-part
    of each value's last row are zero (invariant under gradient flow).
    """
    _check_shape(dim, n_heads, rank)
    return _init_separate(key, _layer_scales(scale, ("k", "q", "v"), _dtype(dtype)), dim=dim, n_heads=n_heads,
                          rank=rank, on_manifold=on_manifold)


def _layer_scales(scale, names, dtype) -> dict:
    if isinstance(scale, dict):
        if set(scale) != set(names):
            raise ValueError(f"per-layer scale needs exactly the keys {sorted(names)}, got {sorted(scale)}")
        return {k: jnp.asarray(scale[k], dtype) for k in names}
    return {k: jnp.asarray(scale, dtype) for k in names}


def code_init_scales(init: float, *, dim: int, n_heads: int, rank: int = 1, merged: bool = False) -> dict:
    """Per-layer init stds of linattn-icl's ``net.py`` for its ``--init`` value.

    Separate KQ (``Attention_Separate._init_weights``): every torch ``nn.Linear``
    weight gets std init/√numel, numel = H·R·(D+1) for the key and the query and
    H·(D+1)² for the value. Merged KQ (``Attention_Merge``): std = init for both.
    Returns ``{"k", "q", "v"}`` (separate) or ``{"kq", "v"}`` (merged) for the
    ``scale`` argument of ``init_separate`` / ``init_merged``.
    """
    _check_shape(dim, n_heads, rank)
    if merged:
        return {"kq": float(init), "v": float(init)}
    d1 = dim + 1
    kq = float(init) / (n_heads * rank * d1) ** 0.5
    return {"k": kq, "q": kq, "v": float(init) / (n_heads * d1 * d1) ** 0.5}


@functools.partial(jax.jit, static_argnames=("dim", "n_heads", "rank", "on_manifold"))
def _init_separate(key, scales, *, dim, n_heads, rank, on_manifold):
    k1, k2, k3 = jax.random.split(key, 3)
    dtype = scales["k"].dtype
    k = scales["k"] * jax.random.normal(k1, (n_heads, rank, dim + 1), dtype)
    q = scales["q"] * jax.random.normal(k2, (n_heads, rank, dim + 1), dtype)
    v = scales["v"] * jax.random.normal(k3, (n_heads, dim + 1, dim + 1), dtype)
    if on_manifold:
        k = k.at[:, :, dim].set(0.0)
        v = v.at[:, dim, :dim].set(0.0)
    return {"k": k, "q": q, "v": v}


def init_merged_aligned(*, dim: int, n_heads: int, u0: float, direction: jax.Array, dtype=None) -> dict:
    """Balanced, rank-one, task-aligned merged init with initial mode strength u0.

    v_i = W^V_i[D, D] = √u0 eᵢ and K_i = W^KQ_i[:D, :D] = √u0 eᵢ B̂ with
    e = (1, …, 1)/√H and B̂ = direction/‖direction‖_F (D, D); all else 0. Then
    Γ[D, :D, :D] = Σ_i v_i K_i = u0 B̂ and the equivalent two-layer net is
    balanced (v vᵀ = W₁W₁ᵀ), Saxe et al.'s setting. With B̂ ∝ Λ² this is the init
    of ``theory.attention_icl.merged_kq_loss``.
    """
    _check_shape(dim, n_heads)
    dtype = _dtype(dtype)
    b = jnp.asarray(direction, dtype)
    if b.shape != (dim, dim):
        raise ValueError(f"direction must be (D, D) = ({dim}, {dim}), got {b.shape}")
    if u0 < 0:
        raise ValueError(f"u0 must be ≥ 0, got {u0}")
    b = b / jnp.linalg.norm(b)
    e = jnp.full((n_heads,), 1.0 / jnp.sqrt(n_heads), dtype)
    root = jnp.sqrt(jnp.asarray(u0, dtype))
    kq = jnp.zeros((n_heads, dim + 1, dim + 1), dtype).at[:, :dim, :dim].set(root * e[:, None, None] * b)
    v = jnp.zeros((n_heads, dim + 1, dim + 1), dtype).at[:, dim, dim].set(root * e)
    return {"kq": kq, "v": v}


def kq_matrices(params: dict) -> jax.Array:
    """W^KQ_i for every head, (H, D+1, D+1): params["kq"], or W^K_iᵀ W^Q_i."""
    if "kq" in params:
        return params["kq"]
    return jnp.einsum("hri,hrj->hij", params["k"], params["q"])


def attend(params: dict, tokens: jax.Array, *, divide_by_n: bool = True) -> jax.Array:
    """The whole attention output ATTN(Z)ᵀ, (batch, N+1, D+1), residual included.

    Token-major form of the paper's Z + Σ_i (1/N) W^V_i Z Zᵀ W^KQ_i Z:
    tokens + (1/N) Σ_i tokens W^KQ_iᵀ S W^V_iᵀ with S = tokensᵀ tokens
    (no 1/N with ``divide_by_n=False``, as in linattn-icl's code).
    """
    n = tokens.shape[1] - 1 if divide_by_n else 1
    kq, v = kq_matrices(params), params["v"]
    s = jnp.einsum("bni,bnj->bij", tokens, tokens)
    return tokens + jnp.einsum("bnj,hij,bik,hlk->bnl", tokens, kq, s, v) / n


def apply(params: dict, tokens: jax.Array, *, divide_by_n: bool = True) -> jax.Array:
    """Predictions ŷ (batch,): attend(params, tokens)[:, N, D], computed directly.

    ŷ = (1/N) Σ_i W^V_i[D, :] S W^KQ_i z_q with z_q = (x_q, 0) the query token
    (no 1/N with ``divide_by_n=False``).
    """
    n = tokens.shape[1] - 1
    kq, v = kq_matrices(params), params["v"]
    zq = tokens[:, n]
    n = n if divide_by_n else 1
    s = jnp.einsum("bni,bnj->bij", tokens, tokens)
    return jnp.einsum("hi,nij,hjk,nk->n", v[:, -1, :], s, kq, zq) / n


def interaction_tensor(params: dict) -> jax.Array:
    """Γ_abc = Σ_i W^V_i[D, a] W^KQ_i[b, c], (D+1, D+1, D): ŷ = ⟨Γ, S ⊗ x_q⟩ / N."""
    kq, v = kq_matrices(params), params["v"]
    return jnp.einsum("ha,hbc->abc", v[:, -1, :], kq[:, :, :-1])


def population_loss(params: dict, moments) -> jax.Array:
    """Exact population loss ½ E[(y_q − ŷ)²] (DESIGN convention, with the ½).

    ``moments`` from ``tasks.icl.population_moments``; valid for any params (on
    or off the invariant manifold), any H, R. The paper's loss E[(y_q − ŷ)²] is
    twice this. Usable as ``loss_fn(params, moments)`` in ``dynamics``.
    """
    g = interaction_tensor(params)
    quad = jnp.einsum("abc,abcABC,ABC->", g, moments.phi_phi, g)
    return 0.5 * moments.yy - jnp.sum(g * moments.phi_y) + 0.5 * quad


def sample_loss(params: dict, data, *, divide_by_n: bool = True) -> jax.Array:
    """Empirical ½ mean (y_q − ŷ)² on ``data = (tokens, targets)`` (DESIGN convention)."""
    tokens, targets = data
    return 0.5 * jnp.mean((targets - apply(params, tokens, divide_by_n=divide_by_n)) ** 2)
