"""Singular learning theory references: learning coefficients in closed form.

The (real log canonical threshold) learning coefficient λ and its multiplicity m
give the free energy F_n = nL_n(w₀) + λ log n − (m − 1) log log n + O_p(1)
(Watanabe 2009, "Algebraic Geometry and Statistical Learning Theory", Thm 6.7).
A regular model with d parameters has λ = d/2, m = 1. Reduced-rank regression
(a two-layer linear network y = B A x, A: H × M, B: N × H) with a true product of
rank r has the λ of Aoyagi & Watanabe 2005 (Neural Networks 18(7):924-933,
"Stochastic complexities of reduced rank regression in Bayesian estimation",
Main Theorem), implemented in ``rrr_learning_coefficient``.

``ula_quadratic_llc`` is our derivation of what unadjusted Langevin (SGLD at step ε,
full batch) estimates for a quadratic loss: the reference that tests the step-size
rule of ``dynamics.sgld.estimate_llc``. ``laplace_influence`` is the Gaussian
(Laplace) approximation of the Bayesian influence −Cov(ℓ_i, ℓ_j) (our derivation).
"""
from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp


class LearningCoefficient(NamedTuple):
    """λ (a rational number, returned as float) and its multiplicity m (an integer ≥ 1)."""
    value: float
    multiplicity: int


def regular_learning_coefficient(num_params: int) -> LearningCoefficient:
    """λ = d/2, m = 1: a regular model (positive definite Fisher information) with d parameters."""
    if int(num_params) != num_params or num_params < 1:
        raise ValueError(f"num_params={num_params!r} is invalid; allowed: an integer ≥ 1")
    return LearningCoefficient(num_params / 2.0, 1)


def rrr_learning_coefficient(n_in: int, n_hidden: int, n_out: int, rank: int) -> LearningCoefficient:
    """Learning coefficient of reduced-rank regression / a two-layer linear network
    (Aoyagi & Watanabe 2005, Main Theorem), with M = n_in, H = n_hidden, N = n_out and
    r = rank of the true product (0 ≤ r ≤ min(M, N, H)); the input distribution has a
    positive definite covariance and the prior is positive near the truth.

    Case 1, N + r ≤ M + H, M + r ≤ N + H and H + r ≤ M + N:
        M + H + N + r even: λ = [2(H + r)(M + N) − (M − N)² − (H + r)²]/8, m = 1;
        M + H + N + r odd:  λ = [2(H + r)(M + N) − (M − N)² − (H + r)² + 1]/8, m = 2.
    Case 2, M + H < N + r: λ = [HM − Hr + Nr]/2, m = 1.
    Case 3, N + H < M + r: λ = [HN − Hr + Mr]/2, m = 1.
    Case 4, M + N < H + r: λ = MN/2, m = 1.

    The four cases are exhaustive and disjoint (two strict inequalities of cases 2-4
    cannot hold together: adding them gives H < r, M < r or N < r). At r = H ≤ min(M, N)
    the model is regular on the manifold of rank-H products: λ = (H(M + N) − H²)/2.
    E.g. (M, H, N) = (6, 4, 6): r = 1 → 12 (m = 2), r = 2 → 13.5, r = 4 → 16.
    """
    sizes = {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out}
    for name, v in sizes.items():
        if int(v) != v or v < 1:
            raise ValueError(f"{name}={v!r} is invalid; allowed: an integer ≥ 1")
    m_, h, n_ = int(n_in), int(n_hidden), int(n_out)
    if int(rank) != rank or not 0 <= rank <= min(m_, h, n_):
        raise ValueError(f"rank={rank!r} is invalid; allowed: an integer in [0, min(n_in, n_hidden, n_out) = {min(m_, h, n_)}]")
    r = int(rank)
    if m_ + h < n_ + r:
        return LearningCoefficient((h * m_ - h * r + n_ * r) / 2.0, 1)
    if n_ + h < m_ + r:
        return LearningCoefficient((h * n_ - h * r + m_ * r) / 2.0, 1)
    if m_ + n_ < h + r:
        return LearningCoefficient(m_ * n_ / 2.0, 1)
    numerator = 2 * (h + r) * (m_ + n_) - (m_ - n_) ** 2 - (h + r) ** 2
    if (m_ + h + n_ + r) % 2 == 0:
        return LearningCoefficient(numerator / 8.0, 1)
    return LearningCoefficient((numerator + 1) / 8.0, 2)


def ula_quadratic_llc(hessian_eigenvalues, *, n_beta, gamma, step_size):
    """What SGLD (full batch) estimates for L = L* + ½ δᵀHδ, δ = w − w*, at step ε.

    Our derivation: the local posterior potential is ½ δᵀAδ with A = nβH + γI; SGLD is
    δ ← Mδ + √ε ξ with M = I − εA/2, whose stationary covariance solves Σ = MΣM + εI,
    Σ = (A(I − εA/4))⁻¹ (stable for ε < 4/a_max). Then
        λ̂(ε) = nβ E[L − L*] = ½ Σ_i nβh_i / ((nβh_i + γ)(1 − εa_i/4)),   a_i = nβh_i + γ.
    At ε → 0 and γ → 0 it is d/2 (the regular value); γ > 0 lowers it by
    ½ Σ_i γ/(nβh_i + γ). hessian_eigenvalues: (d,) eigenvalues h_i of H. Returns a scalar.
    """
    h = jnp.asarray(hessian_eigenvalues)
    a = n_beta * h + gamma
    return 0.5 * jnp.sum(n_beta * h / (a * (1.0 - step_size * a / 4.0)))


def laplace_influence(grads, hessians, precision, mean_shift=None):
    """Gaussian (Laplace) approximation of the Bayesian influence −Cov(ℓ_i, ℓ_j).

    Our derivation: with δ ~ N(μ, Σ) (Σ = precision⁻¹) and the second-order expansion
    ℓ_i(w* + δ) ≈ ℓ_i + g_iᵀδ + ½δᵀH_iδ, Isserlis' theorem gives
        Cov(ℓ_i, ℓ_j) = (g_i + H_iμ)ᵀΣ(g_j + H_jμ) + ½ tr(H_iΣH_jΣ).
    For the tempered local posterior exp(−nβL_n − γ‖δ‖²/2) expanded to second order,
    precision = nβ∇²L_n + γI (positive definite) and μ = −Σ nβ∇L_n (``mean_shift``;
    default 0, w* a stationary point). grads: (n_i, d), hessians: (n_i, d, d)
    per-sample. Returns (n_i, n_i).
    """
    sigma = jnp.linalg.inv(jnp.asarray(precision))
    g, hs = jnp.asarray(grads), jnp.asarray(hessians)
    if mean_shift is not None:
        g = g + jnp.einsum("iab,b->ia", hs, jnp.asarray(mean_shift))
    linear = g @ sigma @ g.T
    hs_sigma = jnp.einsum("iab,bc->iac", hs, sigma)
    quadratic = 0.5 * jnp.einsum("iab,jba->ij", hs_sigma, hs_sigma)
    return -(linear + quadratic)
