"""theory.modularisation (Dorrell, Hsu et al., arXiv 2410.06232, Thms 2.1-2.2) against
independent computations: the ellipse-in-hull form (Thm 2.2) with scipy's Qhull,
a dense scan of the directions w in (2.1) as the authors' ``check_modular`` does,
hand-built supports, and Monte Carlo for the strip family's closed form."""
import itertools

import numpy as np
import pytest
import scipy.spatial

from theory import modularisation as mod

pytestmark = pytest.mark.strict_dtypes


def _grid(n, delta=1.0):
    """n×n grid on [−½, ½]², keeping |s_1 + s_2| ≤ δ."""
    g = np.linspace(-0.5, 0.5, n)
    x, y = np.meshgrid(g, g, indexing="ij")
    s = np.stack([x.ravel(), y.ravel()], 1)
    return s[np.abs(s.sum(1)) <= delta + 1e-9]


def _ellipse_in_hull(pair):
    """Thm 2.2: the hull of the centred pair contains {x: xᵀS⁻¹x ≤ 1} iff every
    facet n·x + b ≤ 0 has √(nᵀSn) ≤ −b (S ⪰ 0 needed for an ellipse)."""
    s = pair - pair.mean(0)
    e = np.minimum(-s.min(0), s.max(0))
    c = np.mean(s[:, 0] * s[:, 1])
    cov = np.array([[e[0] ** 2, -c], [-c, e[1] ** 2]])
    eq = scipy.spatial.ConvexHull(s).equations
    normals, offsets = eq[:, :2], eq[:, 2]
    return bool(np.all(np.sqrt(np.einsum("fi,ij,fj->f", normals, cov, normals)) <= -offsets * (1 + 1e-12))), cov


def _clouds():
    """Point clouds on both sides of the condition, drawn from fixed seeds."""
    rng = np.random.default_rng(2410)
    out = []
    for k in range(12):
        n = 5 + k % 4
        g = _grid(n) + 0.5
        keep = rng.uniform(size=len(g)) > 0.25 * (k % 3)               # drop some grid points
        out.append(g[keep])
    for k in range(12):
        out.append(rng.uniform(size=(8 + 4 * k, 2)))                     # random samples: mostly mixed
    for k in range(8):
        d = rng.uniform(0.3, 1.0)
        out.append(_grid(9, d) * rng.uniform(0.5, 2.0, size=2) + rng.normal(size=2))
    for k in range(12):                                                  # skewed: far extremes on both axes
        out.append(rng.exponential(size=(10 + 3 * k, 2)) * rng.choice([-1.0, 1.0], size=2))
    return out


def test_full_square_margin_is_one_and_independent_samples_can_still_mix():
    assert mod.modularisation_margin(_grid(11)) == pytest.approx(1.0, abs=1e-12)
    assert mod.is_modular(_grid(3))
    # Fig. 1b of the paper: two samples that differ by one point. Dropping the
    # corner where both sources are low leaves a hull that cannot hold the ellipse.
    g = _grid(3)
    assert not mod.is_modular(g[~np.all(g == -0.5, axis=1)])


def test_is_modular_agrees_with_the_ellipse_in_hull_form():
    seen = set()
    for cloud in _clouds():
        margin = mod.modularisation_margin(cloud)
        inside, cov = _ellipse_in_hull(cloud)
        if np.linalg.eigvalsh(cov)[0] < 0 or abs(margin) < 1e-9:
            continue                                                     # no ellipse, or an exact tie
        assert mod.is_modular(cloud) == inside, (margin, len(cloud))
        seen.add(inside)
    assert seen == {True, False}


def test_band_matches_a_dense_scan_of_directions():
    """c_lo, c_hi are a sup/inf of G over directions; a grid of K angles can only
    under-shoot the sup (over-shoot the inf), by O(Δθ · max|dG/dθ|) at a kink:
    Δθ = (π/2)/2¹⁵ ≈ 5e-5 and |dG/dθ| ≲ 20 for clouds within |q| ≤ 3, so 1e-3.
    The exact side gets 1e-9: (H² − 1 − t²)/(2t) cancels, losing ε/t ≈ 1e-11 at t ≈ 2e-5."""
    theta = (np.arange(2 ** 15) + 0.5) * (np.pi / 2) / 2 ** 15
    t = np.tan(theta)
    for cloud in _clouds()[::3]:
        s = cloud - cloud.mean(0)
        e = np.minimum(-s.min(0), s.max(0))
        p = s / e
        c, lo, hi = mod.covariance_band(cloud)
        g = {}
        for sx, sy in itertools.product((1, -1), repeat=2):
            w = np.stack([sx * np.ones_like(t), sy * t], 1)              # w = (σx, σy t), |w| irrelevant
            h = -np.min(p @ w.T, axis=0)
            g[(sx, sy)] = np.min((h ** 2 - 1 - t ** 2) / (2 * t))
        scan_lo = -min(g[(1, 1)], g[(-1, -1)])
        scan_hi = min(g[(1, -1)], g[(-1, 1)])
        assert c[0, 1] == pytest.approx(np.mean(p[:, 0] * p[:, 1]), abs=1e-12)
        assert scan_lo <= lo[0, 1] + 1e-9 and scan_lo >= lo[0, 1] - 1e-3
        assert scan_hi >= hi[0, 1] - 1e-9 and scan_hi <= hi[0, 1] + 1e-3


def test_margin_is_invariant_to_shift_scale_sign_and_order():
    cloud = _clouds()[2]
    m = mod.pairwise_margins(cloud)
    moved = cloud[:, ::-1] * np.array([-3.0, 0.2]) + np.array([5.0, -1.0])
    np.testing.assert_allclose(mod.pairwise_margins(moved), m[::-1, ::-1], rtol=1e-9, atol=1e-12)


def test_three_sources_are_judged_pair_by_pair():
    cut = _grid(9, 0.5)                                                  # pair (0, 1) mixes
    z = np.linspace(-0.5, 0.5, 5)
    s = np.array([[a, b, c] for a, b in cut for c in z])
    m = mod.pairwise_margins(s)
    assert m[0, 1] < 0 and m[0, 2] == pytest.approx(1.0) and m[1, 2] == pytest.approx(1.0)
    assert not mod.is_modular(s)
    assert mod.is_modular(np.array([[a, b, c] for a, b in _grid(9) for c in z]))


def test_strip_covariance_matches_monte_carlo():
    """4 standard errors of the mean of s_1 s_2 (seeded rejection sample)."""
    rng = np.random.default_rng(7)
    for delta in (0.3, 0.7, 1.0):
        s = rng.uniform(-0.5, 0.5, size=(400_000, 2))
        s = s[np.abs(s.sum(1)) <= delta]
        prod = s[:, 0] * s[:, 1]
        se = prod.std() / np.sqrt(len(prod))
        assert abs(mod.strip_covariance(delta) - prod.mean()) < 4 * se


def test_strip_margin_and_switch_against_fine_grids():
    """A grid with spacing h = 1/(n − 1) moves the normalised covariance by O(h)
    (its boundary rows carry weight h), so the margin agrees to h; at δ* the
    margin rises with slope dm/dδ = 4c'(δ) + 4δ ≈ 3, so δ* ± 2h lie on either side."""
    n = 201
    h = 1 / (n - 1)
    for delta in (0.4, 0.6, 0.8, 0.95):
        assert mod.modularisation_margin(_grid(n, delta)) == pytest.approx(mod.strip_margin(delta), abs=h)
    star = mod.strip_switch()
    assert mod.strip_margin(star) == pytest.approx(0.0, abs=1e-12)
    assert not mod.is_modular(_grid(n, star - 2 * h)) and mod.is_modular(_grid(n, star + 2 * h))
    assert mod.strip_margin(1.0) == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [np.zeros(5), np.ones((5, 1)), np.array([[0.0, 1.0], [0.0, 2.0]]),
                                 np.array([[np.nan, 1.0], [0.0, 2.0]]), np.ones((1, 3))])
def test_bad_sources_are_refused_in_one_line(bad):
    with pytest.raises(ValueError, match="allowed"):
        mod.is_modular(bad)


def test_bad_delta_is_refused():
    with pytest.raises(ValueError, match="delta"):
        mod.strip_margin(0.0)
