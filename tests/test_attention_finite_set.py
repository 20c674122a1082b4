"""Theory of separate-KQ linear attention on a FINITE training set (linattn-icl trains on a fixed set;
arXiv 2501.16265): the set's own fixed points and its head escapes (theory.attention_icl /
theory.attention_heads), each against an independent computation."""
import jax
import numpy as np
import pytest

from models import attention as att
from tasks import icl
from theory import attention_heads as heads
from theory import attention_icl as th

pytestmark = pytest.mark.strict_dtypes

LAM = np.arange(1, 5) / 10.0


def _moments(mom):
    return float(mom.yy), np.asarray(mom.phi_y), np.asarray(mom.phi_phi)


def test_set_fixed_points_of_the_population_are_the_paper_plateaus():
    # Population moments: b = diag λ², R diagonal, so M_m is the paper's (arXiv 2501.16265), printed
    # 1, 0.6406, 0.3774, 0.2098, 0.1360; Γ = diag(s/ρ) on the learned directions. The ALS iteration starts
    # at the diagonal fit, so this checks the loss bookkeeping and that ALS stays there (rounding).
    for divide_by_n in (True, False):
        yy, py, pp = _moments(icl.population_moments(LAM, n_context=31, divide_by_n=divide_by_n))
        levels, gammas = th.set_plateau_fixed_points(yy, py, pp, order=th.separate_kq_drop_order(LAM))
        np.testing.assert_allclose(levels, th.separate_kq_plateau_losses(LAM, n_context=31), rtol=1e-12)
        s, rho = th.mode_moments(LAM, n_context=31)
        scale = 1.0 if divide_by_n else 31.0  # Γ_code = Γ_paper / N without the 1/N
        np.testing.assert_allclose(np.diagonal(gammas[-1]), s / rho / scale, rtol=1e-10)
    with pytest.raises(ValueError, match="permutation"):
        th.set_plateau_fixed_points(yy, py, pp, order=[0, 0, 1, 2])


def test_set_fixed_points_are_rank_m_stationary_points_and_the_last_is_least_squares():
    # A small set (P = 200, N = 7): off-diagonal moments O(1/√P). Independent checks: (i) the stationarity
    # conditions of m rank-one heads, G q = 0 and Gᵀ k = 0 on Γ's singular vectors (G = RΓ − b); (ii) random
    # rank-m perturbations never go lower (a minimum over rank-m Γ); (iii) M_D is ordinary least squares of
    # y_q on the D² cubic features of the sequences themselves (np.linalg.lstsq on the data).
    tokens, targets = icl.training_set(jax.random.key(4), lam=LAM, n_context=7, size=200)
    yy, py, pp = _moments(icl.empirical_moments(tokens, targets))
    levels, gammas = th.set_plateau_fixed_points(yy, py, pp, order=th.separate_kq_drop_order(LAM))
    b, r = py[4, :4], pp[4, :4, :, 4, :4]
    loss = lambda g: yy - 2 * np.sum(g * b) + np.einsum("ab,abcd,cd->", g, r, g)
    rng = np.random.default_rng(0)
    for m in range(1, 5):
        g = gammas[m]
        u, sv, wt = np.linalg.svd(g)
        grad = np.einsum("abcd,cd->ab", r, g) - b
        assert np.abs(grad @ wt[:m].T).max() < 1e-8 and np.abs(u[:, :m].T @ grad).max() < 1e-8
        assert loss(g) == pytest.approx(levels[m], rel=1e-12)
        for _ in range(20):
            du, dw = 1e-3 * rng.normal(size=(2, 4, m))
            gp = (u[:, :m] * sv[:m] + du) @ (wt[:m] + dw.T)
            assert loss(gp) >= levels[m] - 1e-13
    z = np.asarray(icl.cubic_features(tokens)).reshape(200, -1)
    coef = np.linalg.lstsq(z, np.asarray(targets), rcond=None)[0]
    assert levels[-1] == pytest.approx(np.mean((np.asarray(targets) - z @ coef) ** 2), rel=1e-9)
    assert np.all(np.diff(levels) < 0)


def test_set_head_escapes_on_population_moments_are_the_closed_form_escapes():
    # With the population's residual correlations (B_m = diag s on the unlearned directions, 0 elsewhere,
    # the key's y row 0) the ODE of separate_kq_set_head_escapes integrates what separate_kq_head_escapes
    # solves in closed form (T-reduction): same heads, directions, times (both at rtol 1e-9; 1e-6 for the
    # event location of two different integrations).
    n, d = 31, 4
    p = att.init_separate(jax.random.key(2), dim=d, n_heads=5, rank=1, scale=1e-3)
    v0, k0, q0 = np.asarray(p["v"][:, d, d]), np.asarray(p["k"][:, 0]), np.asarray(p["q"][:, 0, :d])
    ref = heads.separate_kq_head_escapes(LAM, n_context=n, v0=v0, k0=k0[:, :d], q0=q0)
    s, _ = th.mode_moments(LAM, n_context=n)
    corrs = np.zeros((d, d + 1, d))
    for m in range(d):
        corrs[m, np.arange(d), np.arange(d)] = np.where(np.isin(np.arange(d), ref.directions[:m]), 0.0, s)
    pp = np.asarray(icl.population_moments(LAM, n_context=n).phi_phi)
    got = heads.separate_kq_set_head_escapes(corrs, pp[d, :, :, d], v0=v0, k0=k0, q0=q0)
    np.testing.assert_array_equal(got.heads, ref.heads)
    np.testing.assert_array_equal(got.directions, ref.directions)
    np.testing.assert_allclose(got.times, ref.times, rtol=1e-6)
    with pytest.raises(ValueError, match="corrs"):
        heads.separate_kq_set_head_escapes(corrs[:, :d], pp[d, :, :, d], v0=v0, k0=k0, q0=q0)
