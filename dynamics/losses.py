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


def affine_residual(x: jax.Array, r: jax.Array) -> jax.Array:
    """P⊥ r: the part of r (P, n_out) orthogonal to every affine function of x (P, n_in).

    P⊥ = I − Q Qᵀ with Q an orthonormal basis of the columns of [x, 1]; so
    (1/2P)‖P⊥ r‖² = min_{v, c} (1/2P) Σ_μ ‖r_μ − v x_μ − c‖² (least squares)."""
    x1 = jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)
    q, _ = jnp.linalg.qr(x1)
    return r - q @ (q.T @ r)


def affine_free_loss(apply: Callable) -> Callable:
    """loss(params, (x, y)) = min_{v, c} (1/2P) Σ_μ ‖y_μ − f(x_μ) − v x_μ − c‖², f = apply(params, ·).

    The loss of f plus a linear skip path v·x + c whose (v, c) is fitted
    exactly, i.e. (1/2P)‖P⊥(y − f)‖² (``affine_residual``). By the envelope
    theorem its gradient in ``params`` is the skip net's gradient at the
    optimal (v, c), so gradient descent on it is gradient descent on the skip
    net with (v, c) refitted after every step (variable projection; Golub &
    Pereyra 1973). Used for 1-D ReLU nets (``experiments.relu_kinks``): with
    the affine part free, every unit is one kink (a unit whose breakpoint lies
    outside the data is affine there and does nothing), and a left- and a
    right-facing unit at one breakpoint are the same kink.
    """

    def loss(params, batch):
        x, y = batch
        pred = apply(params, x)
        if pred.shape != y.shape:
            raise ValueError(f"pred and y shapes differ: {pred.shape} vs {y.shape}")
        r = affine_residual(x, y - pred)
        return 0.5 * jnp.sum(r**2) / y.shape[0]

    return loss


def linear_loss_from_stats(w: jax.Array, sigma_xx: jax.Array, sigma_yx: jax.Array, trace_yy: jax.Array) -> jax.Array:
    """L(W) = ½ tr Σyy − tr(W Σyxᵀ) + ½ tr(W Σxx Wᵀ) for a linear map W: (n_out, n_in).

    Equals mse(x Wᵀ, y) on the data the statistics came from, at a cost independent of P.
    """
    return 0.5 * trace_yy - jnp.sum(w * sigma_yx) + 0.5 * jnp.sum((w @ sigma_xx) * w)
