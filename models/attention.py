"""Multi-head linear self-attention for in-context regression (arXiv 2501.16265).

Paper (Zhang, Singh, Latham & Saxe, ICML 2025; also the README of github.com/yedizhang/linattn-icl), with Z ∈ R^{(D+1)×(N+1)}
the token matrix (``tasks.icl``)::

    merged    ATTN_M(Z) = Z + Σ_i (1/N) W^V_i Z Zᵀ W^KQ_i Z
    separate  ATTN_S(Z) = Z + Σ_i (1/N) W^V_i Z Zᵀ W^K_iᵀ W^Q_i Z

and the prediction is the entry (D+1, N+1): the y slot of the query token (the
residual adds the query's y slot, which is 0). Z Zᵀ sums over all N+1 tokens,
query included; the 1/N follows the paper (the public code omits it, which only
rescales time and init).

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


def init_merged(key: jax.Array, *, dim: int, n_heads: int, scale: float, on_manifold: bool = True, dtype=None) -> dict:
    """Merged key-query params with i.i.d. N(0, scale²) entries.

    dim: D (token width D+1). With ``on_manifold`` (the paper's init) the x-part
    of each value's last row and of each W^KQ's last row are zero; gradient flow
    keeps them zero (the loss is even in them, see module docstring).
    """
    _check_shape(dim, n_heads)
    return _init_merged(key, jnp.asarray(scale, _dtype(dtype)), dim=dim, n_heads=n_heads, on_manifold=on_manifold)


@functools.partial(jax.jit, static_argnames=("dim", "n_heads", "on_manifold"))
def _init_merged(key, scale, *, dim, n_heads, on_manifold):
    k1, k2 = jax.random.split(key)
    shape = (n_heads, dim + 1, dim + 1)
    kq = scale * jax.random.normal(k1, shape, scale.dtype)
    v = scale * jax.random.normal(k2, shape, scale.dtype)
    if on_manifold:
        kq = kq.at[:, dim, :dim].set(0.0)
        v = v.at[:, dim, :dim].set(0.0)
    return {"kq": kq, "v": v}


def init_separate(key: jax.Array, *, dim: int, n_heads: int, rank: int = 1, scale: float,
                  on_manifold: bool = True, dtype=None) -> dict:
    """Separate key and query (rank R per head) with i.i.d. N(0, scale²) entries.

    With ``on_manifold`` (the paper's init) each key's y column and the x-part
    of each value's last row are zero (invariant under gradient flow).
    """
    _check_shape(dim, n_heads, rank)
    return _init_separate(key, jnp.asarray(scale, _dtype(dtype)), dim=dim, n_heads=n_heads, rank=rank,
                          on_manifold=on_manifold)


@functools.partial(jax.jit, static_argnames=("dim", "n_heads", "rank", "on_manifold"))
def _init_separate(key, scale, *, dim, n_heads, rank, on_manifold):
    k1, k2, k3 = jax.random.split(key, 3)
    dtype = scale.dtype
    k = scale * jax.random.normal(k1, (n_heads, rank, dim + 1), dtype)
    q = scale * jax.random.normal(k2, (n_heads, rank, dim + 1), dtype)
    v = scale * jax.random.normal(k3, (n_heads, dim + 1, dim + 1), dtype)
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


def attend(params: dict, tokens: jax.Array) -> jax.Array:
    """The whole attention output ATTN(Z)ᵀ, (batch, N+1, D+1), residual included.

    Token-major form of the paper's Z + Σ_i (1/N) W^V_i Z Zᵀ W^KQ_i Z:
    tokens + (1/N) Σ_i tokens W^KQ_iᵀ S W^V_iᵀ with S = tokensᵀ tokens.
    """
    n = tokens.shape[1] - 1
    kq, v = kq_matrices(params), params["v"]
    s = jnp.einsum("bni,bnj->bij", tokens, tokens)
    return tokens + jnp.einsum("bnj,hij,bik,hlk->bnl", tokens, kq, s, v) / n


def apply(params: dict, tokens: jax.Array) -> jax.Array:
    """Predictions ŷ (batch,): attend(params, tokens)[:, N, D], computed directly.

    ŷ = (1/N) Σ_i W^V_i[D, :] S W^KQ_i z_q with z_q = (x_q, 0) the query token.
    """
    n = tokens.shape[1] - 1
    kq, v = kq_matrices(params), params["v"]
    zq = tokens[:, n]
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


def sample_loss(params: dict, data) -> jax.Array:
    """Empirical ½ mean (y_q − ŷ)² on ``data = (tokens, targets)`` (DESIGN convention)."""
    tokens, targets = data
    return 0.5 * jnp.mean((targets - apply(params, tokens)) ** 2)
