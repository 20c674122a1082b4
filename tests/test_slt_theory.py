"""theory.slt: learning coefficients against hand-worked cases, a second derivation
(r = H is regular on the rank-H manifold) and brute-force quadrature of the
free-energy slope λ(n) = −d log Z(n)/d log n for the smallest singular models."""
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.special

from theory import slt

pytestmark = pytest.mark.strict_dtypes


def test_regular_is_half_the_dimension():
    assert slt.regular_learning_coefficient(10) == (5.0, 1)
    with pytest.raises(ValueError, match="num_params"):
        slt.regular_learning_coefficient(0)


@pytest.mark.parametrize("m,h,n,r,lam,mult", [
    # issue 18's numbers for (M, H, N) = (6, 4, 6), worked by hand from the Main Theorem:
    (6, 4, 6, 1, 12.0, 2),   # case 1, M+H+N+r = 17 odd: (2·5·12 − 0 − 25 + 1)/8
    (6, 4, 6, 2, 13.5, 1),   # case 1 even: (2·6·12 − 36)/8
    (6, 4, 6, 4, 16.0, 1),   # case 1 even: (2·8·12 − 64)/8 = d_eff/2 = (4·12 − 16)/2
    # devinterp's r = 0 cases (tests/slt/rrr_test.py), worked by hand:
    (5, 3, 5, 0, 6.5, 2),    # case 1 odd: (2·3·10 − 0 − 9 + 1)/8
    (5, 4, 5, 0, 8.0, 1),    # case 1 even: (2·4·10 − 16)/8
    (4, 3, 8, 0, 6.0, 1),    # case 2 (M+H = 7 < N+r = 8): HM/2
    (8, 3, 4, 0, 6.0, 1),    # case 3: HN/2
    (3, 8, 4, 0, 6.0, 1),    # case 4 (M+N = 7 < H+r = 8): MN/2
    (1, 1, 1, 0, 0.5, 2),    # K = (ab)²: λ = 1/2 with multiplicity 2 (the quadrature test below)
    (2, 1, 1, 0, 0.5, 1),    # K = b²(a₁² + a₂²): λ = min(1/2, 2/2) = 1/2, m = 1
])
def test_rrr_hand_worked(m, h, n, r, lam, mult):
    assert slt.rrr_learning_coefficient(m, h, n, r) == (lam, mult)


@pytest.mark.parametrize("m,n,h", [(6, 6, 4), (5, 7, 2), (7, 3, 3), (4, 4, 1), (9, 5, 5)])
def test_full_rank_truth_is_regular_on_the_rank_h_manifold(m, n, h):
    # Second derivation: at r = H the product map (A, B) ↦ BA is a submersion onto the
    # rank-H matrices, a manifold of dimension H(M + N) − H², so λ = that/2, m = 1.
    assert slt.rrr_learning_coefficient(m, h, n, h) == ((h * (m + n) - h * h) / 2.0, 1)


def test_symmetric_in_input_output_and_continuous_across_cases():
    for m in range(1, 8):
        for n in range(1, 8):
            for h in range(1, 8):
                for r in range(0, min(m, n, h) + 1):
                    lam, mult = slt.rrr_learning_coefficient(m, h, n, r)
                    assert (lam, mult) == slt.rrr_learning_coefficient(n, h, m, r)  # transpose
                    assert 0 < lam <= (h * (m + n)) / 2.0  # never above the regular value d/2
                    # λ grows with the true rank (a larger truth is never less complex)
                    if r > 0:
                        assert lam >= slt.rrr_learning_coefficient(m, h, n, r - 1).value
    # at the boundary M + H = N + r, case 1's even formula equals case 2's (worked by hand)
    assert slt.rrr_learning_coefficient(3, 3, 5, 1).value == (3 * 3 - 3 * 1 + 5 * 1) / 2.0


def _slope(log_z, n, dlog=1e-3):
    """−d log Z / d log n by a central difference."""
    return -(log_z(n * math.exp(dlog)) - log_z(n * math.exp(-dlog))) / (2 * dlog)


def test_quadrature_free_energy_slope_case_one_odd_multiplicity_two():
    # (M, H, N, r) = (1, 1, 1, 0): K = a²b², uniform prior on [0, 1]². Integrating b exactly,
    # Z(n) = ∫₀¹ √π erf(√n a)/(2√n a) da ~ n^{−λ} (log n)^{m−1}, so the slope is
    # λ(n) = λ − (m − 1)/log n + O(1/log² n). Fit λ and m from n = 1e6 … 1e14.
    def log_z(n):
        f = lambda a: math.sqrt(math.pi) * scipy.special.erf(math.sqrt(n) * a) / (2 * math.sqrt(n) * a)
        val, _ = scipy.integrate.quad(f, 0.0, 1.0, points=[1 / math.sqrt(n)], limit=400, epsabs=0, epsrel=1e-12)
        return math.log(val)

    ns = np.logspace(6, 14, 9)
    slopes = np.array([_slope(log_z, n) for n in ns])
    # model λ(n) = λ − (m − 1)/(log n + c): linear in 1/log n to leading order
    design = np.stack([np.ones_like(ns), -1.0 / np.log(ns), 1.0 / np.log(ns) ** 2], axis=1)
    lam, m_minus_1, _ = np.linalg.lstsq(design, slopes, rcond=None)[0]
    theory = slt.rrr_learning_coefficient(1, 1, 1, 0)
    # tol: the fit's truncation O(1/log³ n) at log n ≈ 14-32 is ~1e-3 relative; 0.02 on λ, 0.1 on m
    assert abs(lam - theory.value) < 0.02, lam
    assert abs(m_minus_1 + 1 - theory.multiplicity) < 0.1, m_minus_1


def test_quadrature_free_energy_slope_multiplicity_one():
    # (M, H, N, r) = (2, 1, 1, 0): K = b²‖a‖², prior uniform on b ∈ [0, 1], a in the unit disk.
    # Integrating a in polar coordinates, Z(n) = ∫₀¹ π(1 − e^{−nb²})/(nb²) db; m = 1 means no
    # 1/log n term: λ(n) = λ + O(n^{−1/2}).
    def log_z(n):
        f = lambda b: math.pi * -math.expm1(-n * b * b) / (n * b * b) if b > 0 else math.pi
        val, _ = scipy.integrate.quad(f, 0.0, 1.0, points=[1 / math.sqrt(n)], limit=400, epsabs=0, epsrel=1e-12)
        return math.log(val)

    theory = slt.rrr_learning_coefficient(2, 1, 1, 0)
    for n in (1e8, 1e12):
        # tol: the O(n^{-1/2}) correction (≤ 1e-4 here) plus the central difference's O(dlog²)
        assert abs(_slope(log_z, n) - theory.value) < 1e-3


def test_ula_quadratic_llc_limits():
    # ε → 0, γ → 0 gives d/2; γ lowers it by ½Σγ/(nβh + γ) (worked by hand for h = 1, nβ = 9, γ = 1).
    h = np.array([1.0, 1.0, 2.0])
    assert float(slt.ula_quadratic_llc(h, n_beta=100.0, gamma=0.0, step_size=0.0)) == pytest.approx(1.5)
    assert float(slt.ula_quadratic_llc(np.ones(1), n_beta=9.0, gamma=1.0, step_size=0.0)) == pytest.approx(0.45)


def test_bad_input():
    with pytest.raises(ValueError, match="rank"):
        slt.rrr_learning_coefficient(3, 2, 3, 3)
    with pytest.raises(ValueError, match="n_hidden"):
        slt.rrr_learning_coefficient(3, 0, 3, 0)
