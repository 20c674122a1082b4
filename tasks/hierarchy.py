"""Semantic-hierarchy task of Saxe, McClelland & Ganguli 2019 (PNAS 116:11537,
"A mathematical theory of semantic development in deep neural networks").

Items are the 2^D leaves of a binary tree of depth D. Each feature is generated
by a branching diffusion: the root takes ±1 with equal probability and every
child copies its parent's value, flipped with probability ε (``flip_prob``).
Inputs are one-hot item codes, so Σxx = I/P and Σyx = Yᵀ/P with P = 2^D.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from tasks.linear_teacher import LinearTask, from_data


def tree_features(key: jax.Array, *, depth: int, flip_prob: float, n_features: int, dtype=None) -> jax.Array:
    """(2^depth, n_features) ±1 feature values at the leaves of the diffusion tree.

    Level ℓ of the tree has 2^ℓ nodes; node j at level ℓ+1 is a child of node
    j // 2 at level ℓ and disagrees with it with probability ``flip_prob``.
    """
    if depth < 1:
        raise ValueError(f"depth must be ≥ 1, got {depth}")
    if not isinstance(flip_prob, jax.core.Tracer) and not 0.0 <= flip_prob <= 0.5:  # traced in sweeps
        raise ValueError(f"flip_prob must be in [0, 0.5], got {flip_prob}")
    if n_features < 1:
        raise ValueError(f"n_features must be ≥ 1, got {n_features}")
    dtype = dtype or jnp.result_type(float)
    keys = jax.random.split(key, depth + 1)
    values = jnp.where(jax.random.bernoulli(keys[0], 0.5, (1, n_features)), 1.0, -1.0).astype(dtype)
    for level in range(1, depth + 1):
        parents = jnp.repeat(values, 2, axis=0)
        flips = jax.random.bernoulli(keys[level], flip_prob, parents.shape)
        values = jnp.where(flips, -parents, parents)
    return values


def hierarchy(key: jax.Array, *, depth: int, flip_prob: float, n_features: int, dtype=None) -> LinearTask:
    """The hierarchy task as data: x = one-hot items (P, P), y = features (P, n_features).

    Returns the LinearTask with Σxx = I/P, Σyx = Yᵀ/P (n_features, P) and its SVD:
    the singular modes are the tree's levels (broad distinctions have the
    largest singular values), learned in that order by a deep linear network.
    """
    y = tree_features(key, depth=depth, flip_prob=flip_prob, n_features=n_features, dtype=dtype)
    x = jnp.eye(y.shape[0], dtype=y.dtype)
    return from_data(x, y)
