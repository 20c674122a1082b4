"""Two-layer network on (x + y) mod p with one-hot inputs (He, Wang, Chen & Yang, arXiv 2602.16849).

    f(x, y)_j = Σ_m ξ[m, j] σ(θ[m, x] + θ[m, y]),    σ(u) = u² ("quad") or max(u, 0) ("relu"),

i.e. W_in = θ: (M, p) acting on e_x + e_y and W_out = ξᵀ: (p, M); no biases. Trained
with the mean cross-entropy over a set of pairs (``cross_entropy``), all p² of them
for the paper's main setting, a random fraction for grokking (``split_pairs``).
The theory of its per-frequency dynamics is ``theory.modular_addition``.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Params(NamedTuple):
    """theta: (M, p) input weights (θ[m, x] for token x); xi: (M, p) output weights (ξ[m, j] to logit j)."""

    theta: jax.Array
    xi: jax.Array


ACTIVATIONS = ("quad", "relu")


def _sigma(activation: str):
    if activation == "quad":
        return jnp.square
    if activation == "relu":
        return jax.nn.relu
    raise ValueError(f"activation={activation!r} is invalid; allowed: {', '.join(map(repr, ACTIVATIONS))}")


def init(key: jax.Array, *, p: int, hidden: int, init_scale: float) -> Params:
    """θ, ξ with i.i.d. N(0, init_scale²) entries (the paper's random init, its scale as init_scale)."""
    k1, k2 = jax.random.split(key)
    return Params(init_scale * jax.random.normal(k1, (hidden, p)), init_scale * jax.random.normal(k2, (hidden, p)))


def init_single_frequency(*, p: int, k: int, a0, b0, phi0, psi0) -> Params:
    """One neuron per entry of the (broadcast) arrays a0, b0, phi0, psi0 at frequency ω = 2πk/p:
    θ[m, j] = a0 cos(ωj + φ0), ξ[m, j] = b0 cos(ωj + ψ0). Returns (M, p) arrays."""
    a0, b0, phi0, psi0 = (jnp.atleast_1d(jnp.asarray(v, dtype=float)) for v in (a0, b0, phi0, psi0))
    a0, b0, phi0, psi0 = jnp.broadcast_arrays(a0, b0, phi0, psi0)
    wj = 2 * jnp.pi * k * jnp.arange(p, dtype=a0.dtype) / p
    return Params(a0[:, None] * jnp.cos(wj + phi0[:, None]), b0[:, None] * jnp.cos(wj + psi0[:, None]))


def all_pairs(p: int):
    """(pairs, labels): pairs (p², 2) int of every (x, y), labels (p²,) = (x + y) mod p."""
    x, y = jnp.meshgrid(jnp.arange(p), jnp.arange(p), indexing="ij")
    pairs = jnp.stack([x.ravel(), y.ravel()], axis=1)
    return pairs, (pairs[:, 0] + pairs[:, 1]) % p


def split_pairs(key: jax.Array, p: int, train_fraction: float):
    """((train_pairs, train_labels), (test_pairs, test_labels)): a uniformly random
    round(train_fraction p²) of the p² pairs for training, the rest for testing."""
    pairs, labels = all_pairs(p)
    order = jax.random.permutation(key, p * p)
    n_train = int(round(train_fraction * p * p))
    tr, te = order[:n_train], order[n_train:]
    return (pairs[tr], labels[tr]), (pairs[te], labels[te])


def apply(params: Params, pairs: jax.Array, activation: str = "quad") -> jax.Array:
    """Logits (P, p) for pairs (P, 2) of tokens."""
    pre = params.theta[:, pairs[:, 0]] + params.theta[:, pairs[:, 1]]  # (M, P)
    return _sigma(activation)(pre).T @ params.xi


def cross_entropy(params: Params, batch, activation: str = "quad") -> jax.Array:
    """Mean cross-entropy (1/P) Σ −log softmax(f(x, y))_label over batch = (pairs, labels)."""
    pairs, labels = batch
    logits = apply(params, pairs, activation)
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0])


def accuracy(params: Params, batch, activation: str = "quad") -> jax.Array:
    """Fraction of pairs whose largest logit is the label."""
    pairs, labels = batch
    return jnp.mean((jnp.argmax(apply(params, pairs, activation), axis=1) == labels).astype(params.theta.dtype))


def frequency_power(w: jax.Array) -> jax.Array:
    """Squared magnitude m_k² of w (..., p) at ω_k = 2πk/p, k = 1 … (p−1)/2, from the FFT:
    w_j = Σ_k m_k cos(ω_k j + φ_k) + const ⇒ m_k = (2/p)|ŵ_k|."""
    p = w.shape[-1]
    c = jnp.fft.rfft(w, axis=-1)[..., 1:(p - 1) // 2 + 1]
    return (2.0 / p * jnp.abs(c)) ** 2


def frequency_phase(w: jax.Array) -> jax.Array:
    """Phase φ_k of w (..., p) at ω_k (see ``frequency_power``): arg ŵ_k with ŵ_k = Σ_j w_j e^{−iω_k j}."""
    p = w.shape[-1]
    return jnp.angle(jnp.fft.rfft(w, axis=-1)[..., 1:(p - 1) // 2 + 1])


def balance(params: Params) -> jax.Array:
    """‖θ_m‖² − 2‖ξ_m‖² per neuron (M,): conserved by gradient flow on any loss for σ = quad,
    as f is unchanged by θ_m → cθ_m, ξ_m → ξ_m/c²."""
    return jnp.sum(params.theta**2, axis=1) - 2 * jnp.sum(params.xi**2, axis=1)
