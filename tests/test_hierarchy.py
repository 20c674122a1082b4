"""Semantic hierarchy (Saxe, McClelland & Ganguli 2019, arXiv 1810.10531): the
tree spectrum against brute force and samples, the aligned-net dynamics against
a float64 gradient flow of the network, and the experiment's smoke run."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics
import tasks
from experiments import semantic_hierarchy
from experiments.common import run_experiment
from models import linear
from theory import hierarchy
from theory.linear import mode_strength

pytestmark = pytest.mark.strict_dtypes

EPS_2Q_EQ_1 = (1 - 1 / np.sqrt(2)) / 2  # 2(1 − 2ε)² = 1: the geometric sums' closed form would divide by 0


def _brute_correlation(depth, eps):
    """C_ij = (1 − 2ε)^{2k}, k found by walking both leaves up the tree."""
    p = 2**depth
    c = np.empty((p, p))
    for i, j in itertools.product(range(p), range(p)):
        k = 0
        while (i >> k) != (j >> k):
            k += 1
        c[i, j] = (1 - 2 * eps) ** (2 * k)
    return c


def _enumerate_tree(depth, eps):
    """Every configuration of the branching diffusion: leaf values (2^(n_edges+1), P) and probabilities."""
    n_edges = 2 ** (depth + 1) - 2
    bits = ((np.arange(2 ** (n_edges + 1))[:, None] >> np.arange(n_edges + 1)) & 1).astype(float)
    root, flips = 1 - 2 * bits[:, :1], bits[:, 1:]
    prob = 0.5 * np.prod(np.where(flips == 1, eps, 1 - eps), axis=1)
    values, start = root, 0
    for level in range(1, depth + 1):
        n = 2**level
        values = np.repeat(values, 2, axis=1) * (1 - 2 * flips[:, start:start + n])
        start += n
    return values, prob


@pytest.mark.parametrize("depth, eps", [(1, 0.2), (4, 0.3), (3, EPS_2Q_EQ_1), (2, 0.0), (3, 0.5)])
def test_eigenvalues_match_numerical_diagonalisation(depth, eps):
    c = _brute_correlation(depth, eps)
    np.testing.assert_allclose(hierarchy.item_correlation(depth=depth, flip_prob=eps), c, rtol=1e-14)
    spec = hierarchy.singular_values(depth=depth, flip_prob=eps, n_features=1)
    assert int(jnp.sum(spec.multiplicities)) == 2**depth
    lam = hierarchy.correlation_eigenvalues(depth=depth, flip_prob=eps)
    # eigvalsh of a symmetric matrix with entries ≤ 1, P ≤ 16: backward error ~ P·1e-16.
    np.testing.assert_allclose(np.repeat(lam, spec.multiplicities), np.linalg.eigvalsh(c)[::-1], atol=1e-12)
    np.testing.assert_allclose(spec.values, np.sqrt(lam) / 2**depth, rtol=1e-14)  # N = 1
    assert np.all(np.diff(np.asarray(lam)) <= 1e-15)  # broad levels are the strongest


def test_tree_modes_are_the_eigenvectors():
    depth, eps = 4, 0.15
    b = hierarchy.tree_modes(depth)
    c = hierarchy.item_correlation(depth=depth, flip_prob=eps)
    lam = hierarchy.correlation_eigenvalues(depth=depth, flip_prob=eps)
    np.testing.assert_allclose(b.T @ b, np.eye(16), atol=1e-14)
    np.testing.assert_allclose(b.T @ c @ b, np.diag(lam[hierarchy.tree_levels(depth)]), atol=1e-13)
    proj = hierarchy.level_projectors(depth)
    np.testing.assert_allclose(proj.sum(0), np.eye(16), atol=1e-14)
    np.testing.assert_allclose(np.trace(proj, axis1=1, axis2=2), [1, 1, 2, 4, 8], atol=1e-13)


@pytest.fixture(scope="module")
def big_sample():
    """(8, 200000) features of a depth-3, ε = 0.1 tree: i.i.d. columns, so slices
    of it are independent tasks."""
    return np.asarray(tasks.tree_features(jax.random.key(11), depth=3, flip_prob=0.1, n_features=200_000))


def test_item_correlation_is_what_the_sampler_draws(big_sample):
    """Ĉ = YYᵀ/N entries are means of N i.i.d. ±1 products with variance 1 − C²."""
    y, n = big_sample, big_sample.shape[1]
    c = np.asarray(hierarchy.item_correlation(depth=3, flip_prob=0.1))
    sigma = np.sqrt((1 - c**2) / n)
    off = ~np.eye(8, dtype=bool)
    assert np.max(np.abs(y @ y.T / n - c)[off] / sigma[off]) < 5  # 56 entries, P(>5σ) ~ 6e-7 each


def test_exact_enumeration_matches_correlation_and_std():
    """Enumerate all 2^15 flip configurations of a depth-3 tree: C and the four-point
    sums E[(yᵀΠ_ℓy)²] behind singular_value_std are exact to rounding."""
    depth, eps, n = 3, 0.13, 500
    y, prob = _enumerate_tree(depth, eps)
    assert abs(prob.sum() - 1) < 1e-12
    c = np.einsum("c,ci,cj->ij", prob, y, y)
    np.testing.assert_allclose(hierarchy.item_correlation(depth=depth, flip_prob=eps), c, atol=1e-13)
    proj = np.asarray(hierarchy.level_projectors(depth))
    q = np.einsum("ci,lij,cj->cl", y, proj, y)  # yᵀΠ_ℓy per configuration
    var_q = prob @ q**2 - (prob @ q) ** 2
    spec = hierarchy.singular_values(depth=depth, flip_prob=eps, n_features=n)
    lam = np.asarray(hierarchy.correlation_eigenvalues(depth=depth, flip_prob=eps))
    mult = np.asarray(spec.multiplicities)
    std = np.asarray(spec.values) * np.sqrt(var_q / (mult**2 * n)) / (2 * lam)
    np.testing.assert_allclose(hierarchy.singular_value_std(depth=depth, flip_prob=eps, n_features=n), std, rtol=1e-10)


def test_sampled_singular_values_concentrate(big_sample):
    """The Σyx = Yᵀ/P of a task (from_data's SVD) against the population levels."""
    depth, eps, n = 3, 0.1, 20000
    task = tasks.from_data(jnp.eye(8), jnp.asarray(big_sample[:, :n]))  # x one-hot (P, P), y (P, N)
    spec = hierarchy.singular_values(depth=depth, flip_prob=eps, n_features=n)
    std = hierarchy.singular_value_std(depth=depth, flip_prob=eps, n_features=n)
    mult = np.asarray(spec.multiplicities)
    rms = np.sqrt([np.mean(g**2) for g in np.split(np.asarray(task.s), np.cumsum(mult)[:-1])])
    assert np.all(np.abs(rms - spec.values) < 4 * std), (rms, spec.values, std)
    assert np.all(std / spec.values < 2 / np.sqrt(n))  # the 1/√N concentration itself


def test_singular_value_std_matches_monte_carlo(big_sample):
    """400 tasks of N = 500 features: the spread of each level's RMS singular value
    is the first-order std. The std of a 400-sample std estimate is ≈ 1/√800 = 3.5%;
    second-order terms add O(1/√N) ≈ 4%: tol 20%. The mean is within 5 standard
    errors plus a 5%-of-std allowance for the O(1/N) second-order bias."""
    depth, eps, n, reps = 3, 0.1, 500, 400
    y = big_sample.reshape(8, reps, n).transpose(1, 0, 2)  # (reps, P, N)
    spec = hierarchy.singular_values(depth=depth, flip_prob=eps, n_features=n)
    mult = np.asarray(spec.multiplicities)
    ev = np.linalg.eigvalsh(np.einsum("rif,rjf->rij", y, y))[:, ::-1] / 8**2  # s² of Σyx = Yᵀ/P
    rms = np.sqrt(np.stack([g.mean(axis=1) for g in np.split(ev, np.cumsum(mult)[:-1], axis=1)], axis=1))
    std = np.asarray(hierarchy.singular_value_std(depth=depth, flip_prob=eps, n_features=n))
    np.testing.assert_allclose(rms.std(axis=0, ddof=1), std, rtol=0.2)
    assert np.all(np.abs(rms.mean(axis=0) - spec.values) < 5 * std / np.sqrt(reps) + 0.05 * std)


def test_similarity_and_predictions_match_network_flow(big_sample):
    """A balanced aligned two-layer net under f64 gradient flow (rtol 1e-10):
    HHᵀ = W1ᵀW1 and ŷ = (W2W1)ᵀ follow the closed forms to solver precision."""
    task, u0 = tasks.from_data(jnp.eye(8), jnp.asarray(big_sample[:, :200])), 1e-3
    params = linear.init_aligned(jax.random.key(4), (8, 8, 200), u=task.u, v=task.v, u0=u0)
    times = np.linspace(0.0, 5.0, 26)
    flow = dynamics.gradient_flow(
        dynamics.model_loss(linear.apply), params, (task.x, task.y), times=times, rtol=1e-10, atol=1e-12,
        observe=lambda p: {"sim": p[0].T @ p[0], "pred": linear.end_to_end(p).T})
    sim = hierarchy.hidden_similarity(times, s=task.s, modes=task.v, u0=u0)
    pred = hierarchy.predictions(times, s=task.s, modes=task.v, y=task.y, u0=u0)
    assert np.max(np.abs(flow.stats["sim"] - sim)) / np.max(np.abs(sim[-1])) < 1e-6
    assert np.max(np.abs(flow.stats["pred"] - pred)) < 1e-6  # |ŷ| ≲ 1
    assert np.max(np.abs(pred[-1] - task.y)) > 0.1  # some modes still being learned: a real test of the dynamics
    np.testing.assert_allclose(pred[0], 0.0, atol=1e-2)  # small init: ŷ ≈ 0
    late = hierarchy.predictions(40.0, s=task.s, modes=task.v, y=task.y, u0=u0)
    np.testing.assert_allclose(late, task.y, atol=1e-10)  # learned: ŷ → Y


def test_population_similarity_differentiates_level_by_level():
    """Population modes: H Hᵀ = Σ_ℓ u_ℓ(t) Π_ℓ. Between level ℓ's and level ℓ+1's
    learning, leaves are (almost) equally similar within each level-ℓ node."""
    depth, eps, n, u0 = 3, 0.1, 1000, 1e-6
    spec = hierarchy.singular_values(depth=depth, flip_prob=eps, n_features=n)
    s = spec.values[hierarchy.tree_levels(depth)]
    t_half = np.asarray(hierarchy.level_learning_times(depth=depth, flip_prob=eps, n_features=n, u0=u0))
    np.testing.assert_allclose(mode_strength(t_half, s=spec.values, u0=u0, lam_x=1 / 8), 8 * spec.values / 2, rtol=1e-10)
    assert np.all(np.diff(t_half) > 0)  # broad distinctions first
    k = np.asarray(hierarchy.common_ancestor_distance(depth))
    for level in range(depth):
        t = np.sqrt(t_half[level] * t_half[level + 1])
        sim = np.asarray(hierarchy.hidden_similarity(t, s=s, modes=hierarchy.tree_modes(depth), u0=u0))
        same = sim[k <= depth - level]  # pairs inside one node of level `level`
        other = sim[k > depth - level]
        assert np.ptp(same) < 0.2 * np.max(sim) and (other.size == 0 or np.max(other) < np.min(same))


def test_illusory_correlation_is_non_monotone(big_sample):
    task = tasks.from_data(jnp.eye(8), jnp.asarray(big_sample[:, -300:]))
    t = np.linspace(0.0, 10.0, 1001)
    ill = hierarchy.illusory_correlations(t, s=task.s, modes=task.v, y=task.y, u0=1e-3)
    i, f = np.unravel_index(int(np.argmax(ill.excursion)), ill.excursion.shape)
    pred = np.asarray(hierarchy.predictions(t, s=task.s, modes=task.v, y=task.y[:, f:f + 1], u0=1e-3))[:, i, 0]
    true = float(task.y[i, f])
    k = int(ill.peak_index[i, f])
    assert float(ill.excursion[i, f]) > 0.3 and np.isclose(-true * pred[k], ill.excursion[i, f])
    assert 0 < k < len(t) - 1 and abs(pred[-1] - true) < 1e-3  # wrong way first, then the true value
    # The broad category (the other items under the root split) mostly has the opposite value.
    half = (np.arange(8) >> 2) == (i >> 2)
    assert np.mean(np.asarray(task.y[half, f]) == -true) > 0.5


@pytest.mark.parametrize("kwargs, name", [
    (dict(depth=0, flip_prob=0.1, n_features=10), "depth"),
    (dict(depth=2.5, flip_prob=0.1, n_features=10), "depth"),
    (dict(depth=3, flip_prob=0.7, n_features=10), "flip_prob"),
    (dict(depth=3, flip_prob=-0.1, n_features=10), "flip_prob"),
    (dict(depth=3, flip_prob=0.1, n_features=0), "n_features"),
])
def test_bad_input_raises(kwargs, name):
    with pytest.raises(ValueError, match=name):
        hierarchy.singular_values(**kwargs)
    with pytest.raises(ValueError, match=name):
        hierarchy.singular_value_std(**kwargs)


def test_theory_is_jittable_and_vmappable():
    f = jax.jit(lambda eps, n: hierarchy.singular_values(depth=3, flip_prob=eps, n_features=n).values)
    eps = jnp.array([0.05, 0.1, 0.2])
    out = jax.vmap(f, in_axes=(0, None))(eps, 100.0)
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out[1], hierarchy.singular_values(depth=3, flip_prob=0.1, n_features=100).values)
    std = jax.vmap(lambda e: hierarchy.singular_value_std(depth=2, flip_prob=e, n_features=50.0))(eps)
    np.testing.assert_allclose(std[2], hierarchy.singular_value_std(depth=2, flip_prob=0.2, n_features=50), rtol=1e-12)


def test_experiment_config_rejects_bad_values():
    with pytest.raises(ValueError, match="hidden"):
        semantic_hierarchy.Config(hidden=4)
    with pytest.raises(ValueError, match="learning_rate"):
        semantic_hierarchy.Config(learning_rate=0.05)
    with pytest.raises(ValueError, match="flip_prob"):
        semantic_hierarchy.Config(flip_prob=0.5)
    with pytest.raises(ValueError, match="depth"):
        semantic_hierarchy.Config(depth=1)


def test_smoke_run_passes_and_writes_figures(tmp_path):
    result = run_experiment(semantic_hierarchy, semantic_hierarchy.smoke(), tmp_path / "run")
    failed = [r for r in result.rows if not r["passed"]]
    assert len(result.rows) == 2 * 4 + 3 and not failed, failed
    for name in ("semantic_hierarchy.png", "similarity.png", "results.npz", "verify.json", "meta.json"):
        assert (tmp_path / "run" / name).exists()
