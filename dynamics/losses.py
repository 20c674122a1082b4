"""Losses in the DESIGN convention L = (1/2P) Σ_μ ‖y_μ − ŷ(x_μ)‖²."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def mse(pred: jax.Array, y: jax.Array) -> jax.Array:
    """(1/2P) Σ_μ ‖y_μ − ŷ_μ‖²; pred, y: (P, n_out) (or (P,) for scalar outputs)."""
    if pred.shape != y.shape:
        raise ValueError(f"pred and y shapes differ: {pred.shape} vs {y.shape}")
    return 0.5 * jnp.sum((pred - y) ** 2) / y.shape[0]


def model_loss(apply: Callable) -> Callable:
    """loss(params, (x, y)) = mse(apply(params, x), y) for any apply, e.g. a flax module's."""

    def loss(params, batch):
        x, y = batch
        return mse(apply(params, x), y)

    return loss


def linear_loss_from_stats(w: jax.Array, sigma_xx: jax.Array, sigma_yx: jax.Array, trace_yy: jax.Array) -> jax.Array:
    """L(W) = ½ tr Σyy − tr(W Σyxᵀ) + ½ tr(W Σxx Wᵀ) for a linear map W: (n_out, n_in).

    Equals mse(x Wᵀ, y) on the data the statistics came from, at a cost independent of P.
    """
    return 0.5 * trace_yy - jnp.sum(w * sigma_yx) + 0.5 * jnp.sum((w @ sigma_xx) * w)
