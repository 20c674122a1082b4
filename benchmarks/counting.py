"""Counting gradient evaluations inside a jitted solve, for the RHS-evaluation columns."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def counted_identity(on_gradient):
    """The identity on a parameter pytree whose backward pass calls ``on_gradient(s)`` on the host.

    ``s`` is the sum of the first cotangent leaf: under ``vmap`` it is batched,
    so the callback runs once per vmapped member and a solve over seeds counts
    every seed's gradients. Wrap the params inside the loss; each ∇L then costs
    one call (a host callback costs more than a small gradient: never time a
    counted solve).
    """

    @jax.custom_vjp
    def identity(params):
        return params

    def forward(params):
        return params, None

    def backward(_, g):
        jax.debug.callback(on_gradient, jnp.sum(jax.tree_util.tree_leaves(g)[0]))
        return (g,)

    identity.defvjp(forward, backward)
    return identity
