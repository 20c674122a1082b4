"""One-layer multi-head softmax attention for in-context regression (He, Pan, Chen & Yang,
ICML 2025, arXiv 2503.12734; code github.com/XintianPan/ICL_linear).

The query token z_q = (x_q, 0) attends to the N context tokens zₗ = (xₗ, yₗ) only
(keys and values from the context, as in the paper's ``MultiHeadAttention(z_q, z)``)::

    ŷ = Σ_h  OV_h · Σₗ softmax_ℓ(z_qᵀ KQ_h zₗ) zₗ,
    KQ_h = W^Q_hᵀ W^K_h / √(D+1),      OV_h = o_h W^V_h   (a row, (D+1,)),

with one output unit (the paper's ``n_out = 1``), no bias, no residual. The 1/√(D+1)
is the usual 1/√d_head of the paper's code (d_head = D+1).

Params (pytrees of arrays, H heads, token width D+1):
  {"q": (H, D+1, D+1), "k": (H, D+1, D+1), "v": (H, D+1, D+1), "o": (H, D+1)}

Tokens are token-major, ``tokens: (batch, N+1, D+1)`` with the query last and its y slot
0 (``tasks.icl``). Because the softmax is normalised over the context, the same params
apply to any context length N (used for length generalisation).

Emergent patterns (the paper's abstract and main figures): KQ_h[:D, :D] ≈ ω_h I_D ("diagonal, homogeneous"), the
rest of KQ_h ≈ 0; OV_h ≈ μ_h e_{D+1}ᵀ ("last-entry-only") with Σ_h μ_h ≈ 0 ("zero-sum").
``pattern_scores`` measures each as a number in [0, 1] (1 = the pattern exactly).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def init(key: jax.Array, *, dim: int, n_heads: int, scale: float = 1.0, dtype=None) -> dict:
    """Random init: entries N(0, scale²/fan_in), fan_in = D+1 for q, k, v and H(D+1) for o.

    scale = 1/√3 matches PyTorch's default ``nn.Linear`` variance (the paper's init).
    """
    if dim < 1 or n_heads < 1:
        raise ValueError(f"dim and n_heads must be ≥ 1, got dim={dim}, n_heads={n_heads}")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    dtype = dtype or jnp.result_type(float)
    return _init(key, jnp.asarray(scale, dtype), dim=dim, n_heads=n_heads)


@functools.partial(jax.jit, static_argnames=("dim", "n_heads"))
def _init(key, scale, *, dim, n_heads):
    kq, kk, kv, ko = jax.random.split(key, 4)
    d1, dtype = dim + 1, scale.dtype
    std = scale / jnp.sqrt(jnp.asarray(d1, dtype))
    return {
        "q": std * jax.random.normal(kq, (n_heads, d1, d1), dtype),
        "k": std * jax.random.normal(kk, (n_heads, d1, d1), dtype),
        "v": std * jax.random.normal(kv, (n_heads, d1, d1), dtype),
        "o": scale / jnp.sqrt(jnp.asarray(n_heads * d1, dtype)) * jax.random.normal(ko, (n_heads, d1), dtype),
    }


def kq_matrices(params: dict) -> jax.Array:
    """KQ_h = W^Q_hᵀ W^K_h / √(D+1), (H, D+1, D+1): logit of token ℓ is z_qᵀ KQ_h zₗ."""
    d1 = params["q"].shape[-1]
    return jnp.einsum("hri,hrj->hij", params["q"], params["k"]) / jnp.sqrt(jnp.asarray(d1, params["q"].dtype))


def ov_vectors(params: dict) -> jax.Array:
    """OV_h = o_h W^V_h, (H, D+1): what head h writes to the output per unit attention."""
    return jnp.einsum("hr,hri->hi", params["o"], params["v"])


def attention_weights(params: dict, tokens: jax.Array) -> jax.Array:
    """softmax over the context of z_qᵀ KQ_h zₗ, (batch, H, N)."""
    n = tokens.shape[1] - 1
    logits = jnp.einsum("bi,hij,blj->bhl", tokens[:, n], kq_matrices(params), tokens[:, :n])
    return jax.nn.softmax(logits, axis=-1)


def apply(params: dict, tokens: jax.Array) -> jax.Array:
    """Predictions ŷ (batch,) = Σ_h OV_h · Σₗ softmax_ℓ(z_qᵀ KQ_h zₗ) zₗ."""
    n = tokens.shape[1] - 1
    read = jnp.einsum("bhl,bli->bhi", attention_weights(params, tokens), tokens[:, :n])
    return jnp.einsum("bhi,hi->b", read, ov_vectors(params))


def sample_loss(params: dict, data) -> jax.Array:
    """Empirical ½ mean (y_q − ŷ)² on ``data = (tokens, targets)`` (DESIGN convention)."""
    tokens, targets = data
    return 0.5 * jnp.mean((targets - apply(params, tokens)) ** 2)


def reduced_params(params: dict) -> tuple:
    """(ω, μ), each (H,): ω_h = mean diagonal of KQ_h[:D, :D], μ_h = OV_h[D].

    The paper's reduced model ŷ = Σ_h μ_h Σₗ yₗ softmax_ℓ(ω_h xₗᵀx_q) (``theory.softmax_icl``).
    """
    d = params["q"].shape[-1] - 1
    kq = kq_matrices(params)
    return jnp.mean(jnp.diagonal(kq[:, :d, :d], axis1=1, axis2=2), axis=-1), ov_vectors(params)[:, d]


def pattern_scores(params: dict) -> dict:
    """Scores in [0, 1] of the four emergent patterns (1 = exact pattern), each a scalar.

    The KQ scores average heads with weights μ_h² / Σ μ² (μ_h = OV_h[D], the head's output
    strength), so a head that has died out (μ_h ≈ 0) and whose KQ no longer matters does
    not count; the OV scores sum over heads.
    kq_diagonal: ‖diag KQ_h[:D, :D]‖² / ‖KQ_h[:D, :]‖²_F (mass on the x-x diagonal; the last
        row meets the query's zero y slot, never acts and is left out). Random: ≈ 1/(D+1).
    kq_homogeneous: D·(mean diag_h)² / ‖diag_h‖² (1 iff the diagonal is constant). Random: ≈ 1/D.
    ov_last_entry: Σ_h μ_h² / Σ_h ‖OV_h‖² (mass on the y entry). Random: ≈ 1/(D+1).
    ov_zero_sum: 1 − (Σ_h μ_h)² / (Σ_h |μ_h|)² (1 iff Σ μ_h = 0, 0 iff all μ_h share a
        sign, so identically 0 for one head). Random: ≈ 0.4 for H = 2, → 1 − π/(2H).
    """
    d = params["q"].shape[-1] - 1
    kq, ov = kq_matrices(params), ov_vectors(params)
    diag = jnp.diagonal(kq[:, :d, :d], axis1=1, axis2=2)
    mu = ov[:, d]
    tiny = jnp.finfo(kq.dtype).tiny
    weight = mu**2 / (jnp.sum(mu**2) + tiny)
    per_head_diagonal = jnp.sum(diag**2, axis=-1) / (jnp.sum(kq[:, :d, :] ** 2, axis=(1, 2)) + tiny)
    per_head_homogeneous = d * jnp.mean(diag, axis=-1) ** 2 / (jnp.sum(diag**2, axis=-1) + tiny)
    return {
        "kq_diagonal": jnp.sum(weight * per_head_diagonal),
        "kq_homogeneous": jnp.sum(weight * per_head_homogeneous),
        "ov_last_entry": jnp.sum(mu**2) / (jnp.sum(ov**2) + tiny),
        "ov_zero_sum": 1.0 - jnp.sum(mu) ** 2 / (jnp.sum(jnp.abs(mu)) ** 2 + tiny),
    }
