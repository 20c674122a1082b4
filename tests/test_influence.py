"""dynamics.influence: the SGLD Bayesian influence −Cov(ℓ_i, ℓ_j) against the exact
Gaussian value (theory.slt.laplace_influence is exact for quadratic per-sample losses
under the Gaussian ULA stationary law, our derivation)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynamics import influence, sgld
from theory import slt


def _per_sample(w, x, y):
    return 0.5 * (y - x @ w) ** 2


def test_influence_matches_gaussian_isserlis_value():
    rng = np.random.default_rng(0)
    n, d = 40, 3
    x = rng.standard_normal((n, d))
    y = x @ rng.standard_normal(d) + rng.standard_normal(n)
    # a checkpoint off the minimum (∇L_n ≠ 0): the local posterior's mean is shifted
    w_star = np.linalg.solve(x.T @ x, x.T @ y) + np.array([0.3, -0.2, 0.1])
    n_beta, gamma, eps = 10.0, 1.0, 0.02
    est = influence.bayesian_influence(_per_sample, w_star, (x, y), key=jax.random.key(1),
                                       step_size=eps, num_chains=16, num_steps=4000, n_beta=n_beta, gamma=gamma)
    # ULA at ε samples N(w* + μ, (A(I − εA/4))⁻¹) exactly (a linear recursion: its fixed point is the
    # exact mean μ = −A⁻¹nβ∇L_n(w*)), A = nβ Σxx + γ I
    a = n_beta * x.T @ x / n + gamma * np.eye(d)
    precision = a @ (np.eye(d) - eps * a / 4)
    resid = y - x @ w_star
    grads = -resid[:, None] * x                       # ∇ℓ_i(w*)
    hessians = np.einsum("ia,ib->iab", x, x)          # ∇²ℓ_i
    shift = -np.linalg.solve(a, n_beta * grads.mean(axis=0))
    exact = np.asarray(slt.laplace_influence(grads, hessians, precision, shift))
    assert est.matrix.shape == (n, n) and est.se.shape == (n, n)
    # z-scores of the 820 distinct entries: the SE comes from 16 chains, so z is t-distributed with
    # 15 dof (median |t| = 0.69, P(|t| > 6) ≈ 2e-5, i.e. 0.02 expected exceedances in 820)
    z = np.abs(est.matrix - exact)[np.triu_indices(n)] / est.se[np.triu_indices(n)]
    assert np.max(z) <= 6.0 and np.median(z) <= 1.0, (np.max(z), np.median(z))
    # and the estimate is informative: most entries are > 2 SE from zero
    assert np.mean(np.abs(exact) > 2 * est.se) > 0.5


def test_influence_from_losses_checks_shapes():
    with pytest.raises(ValueError, match="chains"):
        influence.influence_from_losses(np.zeros((1, 10, 3)))
    out = influence.influence_from_losses(np.random.default_rng(0).standard_normal((4, 100, 3)))
    assert np.allclose(out.matrix, out.matrix.T)
