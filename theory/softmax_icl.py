"""Losses of softmax attention and of its reference predictors for in-context linear
regression (He, Pan, Chen & Yang, "In-Context Linear Regression Demystified", ICML 2025,
arXiv 2503.12734; code github.com/XintianPan/ICL_linear).

Task in the paper's units: context xₗ ~ N(0, I_d), ℓ = 1..L, query x_q ~ N(0, I_d),
β ~ N(0, I_d/d), yₗ = βᵀxₗ + εₗ, y_q = βᵀx_q + ε_q, ε ~ N(0, σ²) (``noise_var`` = σ²),
so E y_q² = 1 + σ². (``tasks.icl`` with lam = 1/d and x rescaled by √d draws exactly this.)

Reduced model of H heads (the emergent patterns KQ_h = ω_h I_d, OV_h = μ_h e_{d+1})::

    ŷ = Σ_h μ_h Σₗ yₗ softmax_ℓ(ω_h xₗᵀx_q).

Every loss here follows DESIGN: L = ½ E(y_q − ŷ)² (the paper's loss without the ½).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np


def _check(d, n_context, noise_var):
    if int(d) != d or d < 1:
        raise ValueError(f"d must be an integer ≥ 1, got {d!r}")
    if np.any(np.asarray(n_context) < 2):
        raise ValueError(f"n_context must be ≥ 2 (the debiased predictor needs two examples), got {n_context!r}")
    if noise_var < 0:
        raise ValueError(f"noise_var must be ≥ 0, got {noise_var}")


def _head_matrix(omega, *, d, n_context, noise_var):
    """M(ω) = ωωᵀ + (1+σ²)/L · exp(d ωωᵀ) (entry-wise exp), the paper's quadratic form."""
    omega = np.asarray(omega, dtype=float)
    outer = np.outer(omega, omega)
    return outer + (1.0 + noise_var) / n_context * np.exp(d * outer)


def approx_loss(mu, omega, *, d: int, n_context: int, noise_var: float) -> float:
    """Large-L, large-d loss of the reduced H-head model (arXiv 2503.12734, the loss L̃(μ, ω)
    of the paper's reduced-model analysis; ``TFEst.approx_loss`` in their code), halved:

        L̃ = ½ [1 + σ² − 2 μᵀω + μᵀ (ωωᵀ + (1+σ²)/L · exp(d ωωᵀ)) μ].

    Derivation: for large L the softmax read-out of head h is ω_h βᵀx_q plus a
    fluctuation of variance ∝ 1/L; heads h, h' fluctuate together with covariance
    (1+σ²) exp(ω_h ω_h' ‖x_q‖²)/L, and ‖x_q‖² ≈ d.
    """
    _check(d, n_context, noise_var)
    mu = np.asarray(mu, dtype=float)
    omega = np.asarray(omega, dtype=float)
    if mu.shape != omega.shape or mu.ndim != 1:
        raise ValueError(f"mu and omega must be 1-D of the same length H, got {mu.shape} and {omega.shape}")
    m = _head_matrix(omega, d=d, n_context=n_context, noise_var=noise_var)
    return 0.5 * float(1.0 + noise_var - 2.0 * mu @ omega + mu @ m @ mu)


def finite_d_loss(mu, omega, *, d: int, n_context: int, noise_var: float) -> float:
    """Leading order in 1/L of the reduced H-head loss, exact in d (our refinement of the
    paper's ``approx_loss``, same derivation without ‖x_q‖² ≈ d, arXiv 2503.12734):

        L₁ = ½ [1 + σ² − 2 μᵀω + μᵀ (ωωᵀ + V/L) μ],
        V_hh' = (1+σ²)(1 − 2t)^{−d/2} + t (1 − 2t)^{−d/2−1},   t = ω_h ω_h'  (t < ½).

    Head h reads ω_h βᵀx_q + δ_h; given x_q, β the fluctuations have covariance
    E[(y − ω_h u)(y − ω_h' u) e^{(ω_h+ω_h') xᵀx_q}] / (L e^{(ω_h²+ω_h'²)‖x_q‖²/2})
    = e^{t‖x_q‖²}(‖β‖² + σ² + t u²)/L, u = βᵀx_q; averaging over ‖x_q‖² ~ χ²_d
    (E e^{ts} = (1−2t)^{−d/2}) gives V. As d → ∞ with dω² fixed, V → (1+σ²)e^{d ωωᵀ}.
    """
    _check(d, n_context, noise_var)
    mu, omega = np.asarray(mu, dtype=float), np.asarray(omega, dtype=float)
    if mu.shape != omega.shape or mu.ndim != 1:
        raise ValueError(f"mu and omega must be 1-D of the same length H, got {mu.shape} and {omega.shape}")
    t = np.outer(omega, omega)
    if np.any(t >= 0.5):
        raise ValueError(f"finite_d_loss needs ω_h ω_h' < 1/2 (the χ² moment diverges), got omega={omega}")
    v = (1.0 + noise_var) * (1 - 2 * t) ** (-d / 2) + t * (1 - 2 * t) ** (-d / 2 - 1)
    return 0.5 * float(1.0 + noise_var - 2.0 * mu @ omega + mu @ (t + v / n_context) @ mu)


def optimal_mu(omega, *, d: int, n_context: int, noise_var: float) -> np.ndarray:
    """μ*(ω) = M(ω)⁻¹ ω, the minimiser of ``approx_loss`` over the output weights
    (the quadratic in μ of arXiv 2503.12734's reduced loss L̃(μ, ω); ∂L̃/∂μ = 0)."""
    _check(d, n_context, noise_var)
    omega = np.asarray(omega, dtype=float)
    return np.linalg.solve(_head_matrix(omega, d=d, n_context=n_context, noise_var=noise_var), omega)


def single_head_optimum(*, d: int, n_context: int, noise_var: float) -> tuple:
    """(ω*, μ*) minimising ``approx_loss`` for H = 1: ω* = 1/√d, μ* = √d / (1 + e d (1+σ²)/L).

    With one head L̃ = ½[1+σ² − ω²/(ω² + c e^{dω²})], c = (1+σ²)/L, is smallest where
    e^{dω²}/ω² is, i.e. dω² = 1 (arXiv 2503.12734, single-head optimum; this route is ours).
    """
    _check(d, n_context, noise_var)
    omega = 1.0 / np.sqrt(d)
    return omega, np.sqrt(d) / (1.0 + np.e * d * (1.0 + noise_var) / n_context)


def single_head_optimal_loss(*, d: int, n_context: int, noise_var: float) -> float:
    """min over (μ, ω) of ``approx_loss`` for one head (arXiv 2503.12734, single-head optimum):

        L*_1 = ½ [1 + σ² − 1 / (1 + e · d(1+σ²)/L)].

    The factor e is the price of the softmax normaliser one head cannot cancel.
    """
    _check(d, n_context, noise_var)
    return 0.5 * (1.0 + noise_var - 1.0 / (1.0 + np.e * d * (1.0 + noise_var) / n_context))


class SingleHeadOptimum(NamedTuple):
    """Exact finite-(d, L) optimum of the one-head reduced model (``single_head_finite_optimum``).

    loss: min over (μ, ω) of ½E(y_q − ŷ)²; omega, mu: where it is reached;
    standard_error: Monte-Carlo standard error of ``loss`` (delta method on A²/B).
    """

    loss: float
    omega: float
    mu: float
    standard_error: float


def _one_head_moments(omega, z, r, *, d, noise_var):
    """Per-sample a = E[y_q ŷ₁ | X, x_q], b = E[ŷ₁² | X, x_q] for ŷ₁ = Σₗ yₗ pₗ (μ = 1).

    z: (n, L) zₗ = xₗᵀx_q/‖x_q‖, r: (n,) ‖x_q‖. With pₗ = softmax(ω r zₗ) and β, ε
    integrated out (E ββᵀ = I/d): a = r Σ pₗzₗ/d, b = [(Σ pₗzₗ)² + (d−1) Σ pₗ²]/d + σ² Σ pₗ²
    (the components of xₗ orthogonal to x_q are independent of p and add (d−1)δₗₗ'/d)."""
    logit = omega * r[:, None] * z
    p = np.exp(logit - logit.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    pz, pp = np.sum(p * z, axis=1), np.sum(p * p, axis=1)
    return r * pz / d, (pz * pz + (d - 1) * pp) / d + noise_var * pp


@functools.lru_cache(maxsize=32)
def _single_head_finite_optimum(d, n_context, noise_var, n_samples, seed):
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_samples, n_context))
    r = np.sqrt(rng.chisquare(d, n_samples))

    def loss(omega):
        a, b = _one_head_moments(omega, z, r, d=d, noise_var=noise_var)
        return 0.5 * (1.0 + noise_var - a.mean() ** 2 / b.mean()), a, b

    # The optimum of the large-d, large-L loss sits at dω² = 1; finite d, L move it by O(1)
    # factors only (dω² ≈ 1.35 at d = 5, L = 40), well inside this bracket.
    res = minimize_scalar(lambda w: loss(w)[0], bounds=(0.05 / np.sqrt(d), 3.0 / np.sqrt(d)),
                          method="bounded", options={"xatol": 1e-4 / np.sqrt(d)})
    value, a, b = loss(res.x)
    big_a, big_b = a.mean(), b.mean()
    grad = np.array([2 * big_a / big_b, -big_a**2 / big_b**2])
    se = 0.5 * float(np.sqrt(grad @ (np.cov(np.stack([a, b])) / n_samples) @ grad))
    return SingleHeadOptimum(float(value), float(res.x), float(big_a / big_b), se)


def single_head_finite_optimum(*, d: int, n_context: int, noise_var: float, n_samples: int = 2**16,
                               seed: int = 0) -> SingleHeadOptimum:
    """min over (μ, ω) of the one-head reduced loss ½E(y_q − μ Σₗ yₗ softmax_ℓ(ω xₗᵀx_q))²,
    exact in d and L (no large-L, large-d expansion; our computation, the model of
    arXiv 2503.12734 whose large-size optimum is ``single_head_optimal_loss``).

    For fixed ω the loss is quadratic in μ: μ*(ω) = A/B and L(ω) = ½[1 + σ² − A²/B] with
    A = E[y_q ŷ₁], B = E[ŷ₁²], ŷ₁ = Σₗ yₗ pₗ. Integrating β and ε analytically and using
    the rotation invariance of x (only zₗ = xₗᵀx_q/‖x_q‖ ~ N(0, 1) i.i.d. and
    ‖x_q‖² ~ χ²_d enter, ``_one_head_moments``) leaves a Monte Carlo over L + 1 scalars
    per sample; ``n_samples`` fixed draws (PRNG ``seed``, common to every ω) and a bounded
    scalar minimisation over ω. At d = 5, L = 40, σ² = 0.1 the 2¹⁶ default samples give a
    standard error ≈ 0.45% (``standard_error``); the large-size formula is ≈ 9% below.
    Deterministic and cached per arguments (about 5 s at L = 40 on one core).
    """
    _check(d, n_context, noise_var)
    if int(n_context) != n_context or int(n_samples) != n_samples or n_samples < 2:
        raise ValueError(f"n_context and n_samples must be integers (n_samples ≥ 2), got {n_context!r}, {n_samples!r}")
    return _single_head_finite_optimum(int(d), int(n_context), float(noise_var), int(n_samples), int(seed))


def multi_head_optimal_loss(*, d: int, n_context: int, noise_var: float) -> float:
    """inf over (μ, ω) of ``approx_loss`` for H ≥ 2 heads (arXiv 2503.12734, multi-head optimum):

        L*_H = ½ [1 + σ² − 1 / (1 + d(1+σ²)/L)],   H ≥ 2.

    exp(d ωωᵀ) = 11ᵀ + d ωωᵀ + Σ_{k≥2} dᵏ/k! ω^{∘k} ω^{∘k}ᵀ ⪰ 11ᵀ + d ωωᵀ, so
    ωᵀM⁻¹ω ≤ 1/(1 + d(1+σ²)/L), with equality approached for Σ_h ω_h = 0 and ω → 0
    (e.g. ω = (ω, −ω), μ = (μ, −μ), μω fixed): the zero-sum pattern, and the
    debiased-GD predictor (``debiased_gd_loss``) in the limit.
    """
    _check(d, n_context, noise_var)
    return 0.5 * (1.0 + noise_var - 1.0 / (1.0 + d * (1.0 + noise_var) / n_context))


def debiased_gd_loss(eta, *, d: int, n_context, noise_var: float):
    """Exact loss of the debiased one-step GD predictor ŷ = η x_qᵀ (1/L) Σₗ yₗ (xₗ − x̄)
    (x̄ the context mean; ``TFEst.DGDEst`` of the paper's code, arXiv 2503.12734):

        L = ½ [1 + σ² − 2η (L−1)/L + η² (L−1)(L + d(1+σ²)) / L²].

    Derivation: W = Σₗ(xₗ − x̄)(xₗ − x̄)ᵀ ~ Wishart_d(L−1, I), E W = (L−1)I,
    E W² = (L−1)(L+d)I; E βᵀWβ = L−1, E βᵀW²β = (L−1)(L+d), and the noise adds σ² E tr W = σ²(L−1)d.
    Works elementwise on arrays of η and L (length generalisation at fixed η).
    """
    _check(d, n_context, noise_var)
    n = np.asarray(n_context, dtype=float)
    eta = np.asarray(eta, dtype=float)
    return 0.5 * (1.0 + noise_var - 2.0 * eta * (n - 1) / n + eta**2 * (n - 1) * (n + d * (1.0 + noise_var)) / n**2)


def debiased_gd_optimal_step(*, d: int, n_context, noise_var: float):
    """η* = L / (L + d(1+σ²)), the minimiser of ``debiased_gd_loss``.

    Our derivation: ``debiased_gd_loss`` is quadratic in η; its vertex (cf. the debiased GD
    predictor of arXiv 2503.12734)."""
    _check(d, n_context, noise_var)
    n = np.asarray(n_context, dtype=float)
    return n / (n + d * (1.0 + noise_var))


def debiased_gd_optimal_loss(*, d: int, n_context, noise_var: float):
    """min_η ``debiased_gd_loss`` = ½ [1 + σ² − (L−1) / (L + d(1+σ²))] (exact, any d, L ≥ 2).

    To leading order in 1/L and 1/d this is ``multi_head_optimal_loss``: the paper's
    statement that multi-head softmax attention implements debiased GD.
    """
    _check(d, n_context, noise_var)
    n = np.asarray(n_context, dtype=float)
    return 0.5 * (1.0 + noise_var - (n - 1) / (n + d * (1.0 + noise_var)))


class MonteCarloValue(NamedTuple):
    """A Monte Carlo expectation: value and its standard error (std of the draws / √n)."""

    value: float
    standard_error: float


@functools.lru_cache(maxsize=32)
def _bayes_ridge_finite(d, n_context, noise_var, n_samples, seed):
    rng = np.random.default_rng(seed)
    # The nonzero eigenvalues of XᵀX (X: L × d) are those of Wishart_m(k, I), m = min(d, L), k = max(d, L),
    # drawn as A Aᵀ (Bartlett: A lower triangular, A_ii = √χ²_{k−i}, A_ij ~ N(0, 1)); the other d − m are 0.
    m, k = min(d, n_context), max(d, n_context)
    a = np.tril(rng.standard_normal((n_samples, m, m)), -1)
    idx = np.arange(m)
    a[:, idx, idx] = np.sqrt(rng.chisquare(k - idx, (n_samples, m)))
    eig = np.linalg.eigvalsh(a @ np.swapaxes(a, 1, 2))
    lam = noise_var * d
    risk = 0.5 * noise_var * (1.0 + np.sum(1.0 / (eig + lam), axis=1) + (d - m) / lam)
    return MonteCarloValue(float(risk.mean()), float(risk.std(ddof=1) / np.sqrt(n_samples)))


def bayes_ridge_finite_loss(*, d: int, n_context: int, noise_var: float, n_samples: int = 2**16,
                            seed: int = 0) -> MonteCarloValue:
    """Bayes-optimal (ridge, λ = σ²d) loss at finite d and L (our computation, no proportional limit):

        L_Bayes = ½ [σ² + σ² E tr((XᵀX + σ²d I)⁻¹)],   XᵀX ~ Wishart_d(L, I),

    the posterior covariance σ²(XᵀX + σ²dI)⁻¹ of β ~ N(0, I_d/d) seen by a query x ~ N(0, I_d),
    plus the query's noise (``bayes_ridge_loss`` is its d, L → ∞ limit). The expectation over X
    is a Monte Carlo over ``n_samples`` Wishart draws (Bartlett decomposition, PRNG ``seed``:
    min(d, L)² numbers per draw, whatever max(d, L)), returned with its standard error. σ² = 0 is exact:
    ½ max(0, 1 − L/d) (the posterior mean projects β on the span of the L inputs), error 0.
    """
    _check(d, n_context, noise_var)
    if int(n_context) != n_context or int(n_samples) != n_samples or n_samples < 2:
        raise ValueError(f"n_context and n_samples must be integers (n_samples ≥ 2), got {n_context!r}, {n_samples!r}")
    if noise_var == 0:
        return MonteCarloValue(0.5 * max(0.0, 1.0 - n_context / d), 0.0)
    return _bayes_ridge_finite(int(d), int(n_context), float(noise_var), int(n_samples), int(seed))


def bayes_ridge_loss(*, d: int, n_context, noise_var: float):
    """Bayes-optimal (ridge, λ = σ²d) loss in the proportional limit d, L → ∞, ξ = d/L
    (arXiv 2503.12734, its Bayes-risk reference; ``ridge_loss`` in their code):

        L_Bayes = ¼ [σ² + (ξ−1)/ξ + √(4σ² + (σ² + (1−ξ)/ξ)²)].

    Derivation: the posterior mean is ridge with λ = σ²d; its risk is
    σ² + σ² tr((XᵀX + σ²d I)⁻¹) = σ² + σ² ξ m(−σ²ξ) with m the Marchenko-Pastur
    Stieltjes transform (ratio ξ), the root of ξλm² + (1 − ξ + λ)m − 1 = 0.
    Needs σ² > 0 (for σ² = 0 the limit is max(0, 1 − 1/ξ)/2).
    """
    _check(d, n_context, noise_var)
    if noise_var == 0:
        xi = d / np.asarray(n_context, dtype=float)
        return 0.5 * np.maximum(0.0, 1.0 - 1.0 / xi)
    xi = d / np.asarray(n_context, dtype=float)
    s2 = noise_var
    return 0.25 * (s2 + (xi - 1) / xi + np.sqrt(4 * s2 + (s2 + (1 - xi) / xi) ** 2))
