"""Two-layer diagonal linear networks f(x) = ⟨x, β⟩ with β = u ⊙ v.

Pesme & Flammarion 2023, "Saddle-to-saddle dynamics in diagonal linear
networks" (arXiv 2304.00488), Sec. 2: β = u ⊙ v, initialisation u₀ = √2 α 1,
v₀ = 0, so β₀ = 0 and the layer imbalance u⊙u − v⊙v = 2α² 1 is conserved by
gradient flow. Their loss L(β) = (1/2n) Σᵢ (yᵢ − ⟨xᵢ, β⟩)² is ours with n = P.
Under τ dθ/dt = −∂L/∂θ (τ = 1) the predictor then follows the mirror flow

    d/dt [½ arcsinh(β/α²)] = −∇L(β),     ∇L(β) = Σxx β − Σyx,

i.e. the hyperbolic-entropy potential φ_α(β) = ½ Σᵢ [βᵢ arcsinh(βᵢ/α²) −
√(βᵢ² + α⁴)] (their Sec. 2 and Eq. 3).

The "squares" form β = w₊ ⊙ w₊ − w₋ ⊙ w₋ with w₊ = w₋ = α 1 (Woodworth et al.
2020, arXiv 2002.09277) is the same flow after a change of clock and scale:
there d/dt [¼ arcsinh(β/2α²)] = −∇L(β), so

    β_squares(t; α) = β_product(2t; √2 α).

Params are dicts of (d,) arrays: ``{"u", "v"}`` (product form) or
``{"w_plus", "w_minus"}`` (squares form); inputs ``x: (P, d)`` → outputs ``(P,)``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

FORMS = ("product", "squares")


def init(d: int, *, alpha: float, form: str = "product", dtype=None) -> dict:
    """The paper's init: product form u = √2 α 1, v = 0; squares form w₊ = w₋ = α 1.

    Both give β₀ = 0. ``alpha`` may be a traced scalar (e.g. under ``jax.vmap``
    over init scales); a Python number must be > 0.
    """
    if not isinstance(d, int) or isinstance(d, bool) or d < 1:
        raise ValueError(f"d={d!r} is invalid; allowed: an integer ≥ 1")
    if form not in FORMS:
        raise ValueError(f"form={form!r} is invalid; allowed: {', '.join(FORMS)}")
    if isinstance(alpha, (int, float)) and not alpha > 0:
        raise ValueError(f"alpha={alpha!r} is invalid; allowed: a number > 0")
    dtype = dtype or jnp.result_type(float)
    ones = jnp.ones((d,), dtype)
    alpha = jnp.asarray(alpha, dtype)
    if form == "product":
        return {"u": jnp.sqrt(2.0) * alpha * ones, "v": jnp.zeros((d,), dtype)}
    return {"w_plus": alpha * ones, "w_minus": alpha * ones}


def beta(params: dict) -> jax.Array:
    """The predictor β: (d,), u ⊙ v or w₊ ⊙ w₊ − w₋ ⊙ w₋."""
    if "u" in params:
        return params["u"] * params["v"]
    if "w_plus" in params:
        return params["w_plus"] ** 2 - params["w_minus"] ** 2
    raise ValueError(f"params must have keys (u, v) or (w_plus, w_minus), got {sorted(params)}")


def apply(params: dict, x: jax.Array) -> jax.Array:
    """Network output ⟨x_μ, β⟩, x: (P, d) → (P,)."""
    return x @ beta(params)


def conserved(params: dict) -> jax.Array:
    """Per-coordinate quantity conserved by gradient flow: u ⊙ u − v ⊙ v (= 2α²
    at the paper's init) for the product form, w₊ ⊙ w₋ (= α²) for the squares form."""
    if "u" in params:
        return params["u"] ** 2 - params["v"] ** 2
    if "w_plus" in params:
        return params["w_plus"] * params["w_minus"]
    raise ValueError(f"params must have keys (u, v) or (w_plus, w_minus), got {sorted(params)}")
