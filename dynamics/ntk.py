"""Empirical neural tangent kernel and the linearised (lazy) dynamics it predicts.

Works for ANY model given as a params pytree and ``apply(params, x) -> (batch,
out)`` (our functional models, a flax module's ``model.apply``, ...); no
neural-tangents dependency.

Kernel (Jacot, Gabriel & Hongler 2018, arXiv 1806.07572)::

    Θ(x, x')_{ab} = Σ_θ ∂f_a(x)/∂θ · ∂f_b(x')/∂θ          (sum over every leaf entry)

i.e. Θ = J(x) J(x')ᵀ with J the Jacobian of the flattened outputs with respect
to the flattened parameters. ``empirical_ntk`` returns it as (n1, n2, out, out).

Linearised dynamics (Lee et al. 2019, arXiv 1902.06720, Eqs. 8–11, in our
conventions). With the loss L = (1/2P) Σ_μ ‖y_μ − f(x_μ)‖² and the flow
τ dθ/dt = −∂L/∂θ, the network linearised at θ0, f_lin(θ) = f0 + J0 (θ − θ0),
obeys in function space, with Θ = Θ(X_train, X_train) flattened to (P·out, P·out),

    τ df/dt = −(1/P) Θ (f − y)       on the training set, so
    f_train(t) = y + e^{−Θ s} (f0 − y),                          s = t / (P τ)
    f_test(t)  = f0_test − Θ_test,train Θ⁻¹ (I − e^{−Θ s}) (f0 − y).

``linearized_prediction`` evaluates both in the eigenbasis of Θ (``eigh``):
Θ⁻¹(I − e^{−Θ s}) has eigenvalues (1 − e^{−λ s})/λ, which → s on the null
space of Θ (where Θ_test,train vanishes anyway, since both kernels share the
factor J_trainᵀ), so a singular train kernel is handled exactly.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

METHODS = ("jacobian", "vjp_jvp")


def _outputs(apply: Callable, params, x, name: str) -> jax.Array:
    out = jax.eval_shape(apply, params, x)
    if len(out.shape) != 2:
        raise ValueError(f"apply(params, {name}) must return (batch, out); got shape {out.shape}")
    return out


def empirical_ntk(apply: Callable, params, x1, x2=None, *, method: str = "jacobian") -> jax.Array:
    """Empirical NTK Θ(x1_i, x2_j)_{ab} = Σ_θ ∂f_a(x1_i)/∂θ ∂f_b(x2_j)/∂θ, shape (n1, n2, out, out).

    (Jacot et al. 2018, arXiv 1806.07572.) ``apply(params, x) -> (batch, out)``;
    ``params`` any pytree of float arrays; x2 = None means x2 = x1.

    method:
      "jacobian": per-leaf Jacobians with ``jax.jacrev`` (one reverse pass per
        output entry), contracted leaf by leaf: Θ = Σ_leaf J1_leaf J2_leafᵀ.
        Memory ∝ (n1 + n2)·out·#params.
      "vjp_jvp": never forms J; for each basis cotangent e_{jb} of f(x2), a vjp
        gives the tangent ∂f_b(x2_j)/∂θ and a jvp through f(x1) contracts it
        (vmapped over the n2·out basis). Memory ∝ n2·out·#params at most, less
        under ``jax.lax.map``-style chunking; useful as an independent check.
    Pure and jit-able with ``apply`` closed over (``jax.jit(lambda p, a, b:
    empirical_ntk(apply, p, a, b))``).
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; allowed: {', '.join(METHODS)}")
    if x2 is None:
        x2 = x1
    o1 = _outputs(apply, params, x1, "x1")
    o2 = _outputs(apply, params, x2, "x2")
    if o1.shape[1] != o2.shape[1]:
        raise ValueError(f"output widths differ between x1 and x2: {o1.shape} vs {o2.shape}")
    (n1, out), n2 = o1.shape, o2.shape[0]

    if method == "jacobian":
        j1 = jax.jacrev(apply)(params, x1)  # leaves (n1, out, *leaf)
        j2 = j1 if x2 is x1 else jax.jacrev(apply)(params, x2)
        leaves1, leaves2 = jax.tree_util.tree_leaves(j1), jax.tree_util.tree_leaves(j2)
        theta = sum(a.reshape(n1 * out, -1) @ b.reshape(n2 * out, -1).T for a, b in zip(leaves1, leaves2))
        return theta.reshape(n1, out, n2, out).transpose(0, 2, 1, 3)

    f1 = lambda p: apply(p, x1)
    f2, vjp2 = jax.vjp(lambda p: apply(p, x2), params)
    basis = jnp.eye(n2 * out, dtype=f2.dtype).reshape(n2 * out, n2, out)

    def column(cotangent):
        (tangent,) = vjp2(cotangent)
        return jax.jvp(f1, (params,), (tangent,))[1]  # (n1, out)

    cols = jax.vmap(column)(basis)  # (n2·out, n1, out), index [(j, b), i, a]
    return cols.reshape(n2, out, n1, out).transpose(2, 0, 3, 1)


def flatten_kernel(theta: jax.Array) -> jax.Array:
    """(n1, n2, out, out) -> (n1·out, n2·out), row index (i, a), column index (j, b)."""
    n1, n2, o1, o2 = theta.shape
    return theta.transpose(0, 2, 1, 3).reshape(n1 * o1, n2 * o2)


class Linearized(NamedTuple):
    """Linearised-network predictions; leading axes t.shape, then (batch, out)."""

    train: jax.Array
    test: jax.Array


def linearized_prediction(apply: Callable, params0, x_train, y_train, x_test, t, *, tau=1.0) -> Linearized:
    """Predictions of the network linearised at params0 under gradient flow, at times t.

    With L = (1/2P) Σ_μ ‖y_μ − f(x_μ)‖², τ dθ/dt = −∂L/∂θ, Θ = Θ(X_train, X_train)
    flattened to (P·out, P·out), s = t/(Pτ) and r0 = f0 − y (Lee et al. 2019,
    arXiv 1902.06720, Eqs. 9–11 with their η/P → 1/(Pτ)):

        f_train(t) = y + e^{−Θ s} r0
        f_test(t)  = f0_test − Θ_test,train Θ⁻¹ (I − e^{−Θ s}) r0

    evaluated via Θ = V diag(λ) Vᵀ: e^{−Θ s} → e^{−λ s}, Θ⁻¹(I − e^{−Θ s}) →
    −expm1(−λ s)/λ, and → s on eigenvalues below P·out·eps·λ_max (numerical zero),
    so a singular Θ (fewer parameters than P·out, repeated inputs) is fine.

    Args:
      apply, params0: the model and its parameters at t = 0.
      x_train: (P, n_in); y_train: (P, out), the shape of apply(params0, x_train).
      x_test: (n_test, n_in).
      t: times ≥ 0, any shape (vectorised; scalar t gives no leading axis).
      tau: time constant τ > 0 (GD with rate η ↔ τ = 1/η, t = step index).
    Returns:
      Linearized(train: (*t.shape, P, out), test: (*t.shape, n_test, out)).
    """
    if not isinstance(tau, jax.core.Tracer) and not float(tau) > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
    t = jnp.asarray(t, dtype=jnp.result_type(float))
    if not isinstance(t, jax.core.Tracer) and bool(jnp.any(t < 0)):
        raise ValueError(f"t must be ≥ 0, got min {float(jnp.min(t))}")
    f0 = apply(params0, x_train)
    if f0.ndim != 2:
        raise ValueError(f"apply(params0, x_train) must return (batch, out); got shape {f0.shape}")
    y_train = jnp.asarray(y_train)
    if y_train.shape != f0.shape:
        raise ValueError(f"y_train shape {y_train.shape} must equal apply(params0, x_train) shape {f0.shape}")
    f0_test = apply(params0, x_test)
    p, out = f0.shape

    k_train = flatten_kernel(empirical_ntk(apply, params0, x_train))
    k_train = 0.5 * (k_train + k_train.T)
    k_test = flatten_kernel(empirical_ntk(apply, params0, x_test, x_train))
    lam, vecs = jnp.linalg.eigh(k_train)
    cutoff = p * out * jnp.finfo(lam.dtype).eps * jnp.max(jnp.abs(lam))
    lam = jnp.where(lam > cutoff, lam, 0.0)
    coef = vecs.T @ (f0 - y_train).reshape(-1)  # r0 in the eigenbasis, (P·out,)

    s = (t / (p * tau))[..., None]  # (*t.shape, 1)
    safe = jnp.where(lam > 0, lam, 1.0)
    integral = jnp.where(lam > 0, -jnp.expm1(-lam * s) / safe, s)  # eig of Θ⁻¹(I − e^{−Θs})
    train = y_train.reshape(-1) + (jnp.exp(-lam * s) * coef) @ vecs.T
    test = f0_test.reshape(-1) - (integral * coef) @ (k_test @ vecs).T
    return Linearized(train.reshape(t.shape + (p, out)), test.reshape(t.shape + f0_test.shape))


__all__ = ["empirical_ntk", "flatten_kernel", "linearized_prediction", "Linearized", "METHODS"]
