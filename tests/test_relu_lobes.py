"""theory.relu: lobe_occupancy against an independent basin partition, and the cluster-merge
branch of incremental_escapes against a hand-run of its bookkeeping (issue 17, item 2)."""
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.relu_kinks import target
from theory import relu as theory_relu

pytestmark = pytest.mark.strict_dtypes

X = np.linspace(-1.0, 1.0, 41)


def _ramp(p):
    return np.maximum(X - p, 0.0)


def _segment_tops(v):
    """Independent basins: the interior local minima of v cut the grid into segments; every point
    of a segment flows to the segment's maximum. Returns top index per grid index."""
    cuts = [0] + [i for i in range(1, v.size - 1) if v[i] < v[i - 1] and v[i] <= v[i + 1]] + [v.size - 1]
    top = np.empty(v.size, dtype=int)
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        top[lo:hi + 1] = lo + int(np.argmax(v[lo:hi + 1]))
    return top


def test_lobe_occupancy_matches_an_independent_basin_partition():
    y = np.asarray(target(jnp.asarray(X)[:, None], 4))[:, 0]
    lobes = theory_relu.escape_lobes(X, y)
    grid = theory_relu.breakpoint_grid(X)
    g = theory_relu.unit_rate(X, y, grid)
    rng = np.random.default_rng(0)
    p = rng.uniform(-1.3, 1.3, 400)  # some outside the data: affine units, never counted
    s = rng.choice([-1.0, 1.0], 400)
    want = np.zeros(len(lobes.breakpoints), dtype=int)
    for pi, si in zip(p, s):
        if not -1.0 < pi < 1.0:
            continue
        top = _segment_tops(si * g)[int(np.argmin(np.abs(grid - pi)))]
        hit = np.nonzero((np.abs(lobes.breakpoints - grid[top]) < 1e-12) & (lobes.signs == si))[0]
        want[hit] += 1
    got = theory_relu.lobe_occupancy(X, y, p, s)
    np.testing.assert_array_equal(got, want)
    assert got.sum() > 100 and np.all(got > 0)  # every lobe reached; a sign error would move units elsewhere
    # by hand: one unit sitting on each lobe with the lobe's sign is that lobe's only member;
    # the opposite sign, a breakpoint outside the data or a zero output weight count for none of them
    np.testing.assert_array_equal(theory_relu.lobe_occupancy(X, y, lobes.breakpoints, lobes.signs), np.ones(4))
    none = theory_relu.lobe_occupancy(X, y, [lobes.breakpoints[0], 1.5, -2.0, lobes.breakpoints[2]],
                                      [-lobes.signs[0], 1.0, -1.0, 0.0])
    assert none[0] == 0 and none[2] == 0


def test_incremental_escapes_merges_clusters_that_meet():
    # Stage 0: y = 4 relu(x+½) − 6 relu(x) + 6 relu(x−½) has lobes (+, −, +); the − lobe is the
    # fastest and escapes first. Stage 1: the residual relu(x) has ONE + lobe whose basin is the
    # whole data range (+G₁ rises to its top and falls, checked below), so both + clusters climb
    # to it and merge, keeping the larger accumulated growth A = λ t₁ (the faster one's).
    y0 = 4.0 * _ramp(-0.5) - 6.0 * _ramp(0.0) + 6.0 * _ramp(0.5)
    r1 = _ramp(0.0)
    first = theory_relu.escape_lobes(X, y0)
    assert first.signs.tolist() == [1.0, -1.0, 1.0]
    grid = theory_relu.breakpoint_grid(X)
    g1 = theory_relu.unit_rate(X, r1, grid)
    top = int(np.argmax(g1))
    assert np.all(np.diff(g1[:top + 1]) > 0) and np.all(np.diff(g1[top:]) < 0)  # unimodal: one basin
    lam0 = theory_relu.unit_rate(X, y0, first.breakpoints) * first.signs  # independent rates at the lobes
    lam_d = float(g1[top])
    assert lam0[1] > lam0[0] != lam0[2]
    log_inv = 25.0
    t1 = log_inv / lam0[1]
    grown = max(lam0[0], lam0[2]) * t1  # merge keeps the cluster grown most
    t2 = t1 + (log_inv - grown) / lam_d
    got = theory_relu.incremental_escapes(X, [y0, r1], log_inv_scale=log_inv)
    np.testing.assert_allclose(got.times, [t1, t2], rtol=1e-10)
    np.testing.assert_allclose(got.breakpoints, [first.breakpoints[1], grid[top]])
    assert got.signs.tolist() == [-1.0, 1.0]
    # the merged cluster is gone after it escapes: nothing is left to grow at stage 2
    with pytest.raises(ValueError, match="stage 2: no cluster grows"):
        theory_relu.incremental_escapes(X, [y0, r1, r1], log_inv_scale=log_inv)
