import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tasks


def test_teacher_exact_moments_match_population(key):
    lam = np.array([2.0, 1.0, 0.5, 1.0, 1.0])
    pop = tasks.teacher(key, n_in=5, n_out=3, s=(2.0, 1.0), lam_x=lam)
    smp = tasks.teacher(key, n_in=5, n_out=3, s=(2.0, 1.0), lam_x=lam, n_samples=50)
    assert smp.x.shape == (50, 5) and smp.y.shape == (50, 3)
    np.testing.assert_allclose(smp.sigma_xx, pop.sigma_xx, atol=1e-12)
    np.testing.assert_allclose(smp.sigma_yx, pop.sigma_yx, atol=1e-12)
    np.testing.assert_allclose(smp.trace_yy, pop.trace_yy, rtol=1e-12)
    np.testing.assert_allclose(jnp.linalg.svd(pop.sigma_yx, compute_uv=False)[:2], [2.0, 1.0], rtol=1e-12)
    # the modes diagonalise Σxx with the chosen input variances
    np.testing.assert_allclose(jnp.diag(pop.v.T @ pop.sigma_xx @ pop.v), lam[:2], rtol=1e-12)
    np.testing.assert_allclose(pop.u.T @ pop.sigma_yx @ pop.v, np.diag([2.0, 1.0]), atol=1e-12)


def test_teacher_noisy_samples_have_empirical_moments(key):
    t = tasks.teacher(key, n_in=4, n_out=2, s=(1.0,), n_samples=30, noise_std=0.1, exact_moments=False)
    np.testing.assert_allclose(t.sigma_yx, t.y.T @ t.x / 30, rtol=1e-12)
    assert t.s.shape[0] == 2  # noise fills the second singular value


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_in=3, n_out=3, s=(1.0, 2.0)), "non-increasing"),
    (dict(n_in=2, n_out=3, s=(3.0, 2.0, 1.0)), "exceeds"),
    (dict(n_in=3, n_out=3, s=(1.0,), lam_x=(1.0, -1.0, 1.0)), "lam_x"),
    (dict(n_in=3, n_out=3, s=(1.0,), n_samples=2), "n_samples"),
])
def test_teacher_rejects_bad_input(key, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tasks.teacher(key, **kwargs)


def test_hierarchy_shapes_and_statistics(key):
    t = tasks.hierarchy(key, depth=3, flip_prob=0.1, n_features=200)
    assert t.x.shape == (8, 8) and t.y.shape == (8, 200)
    np.testing.assert_allclose(t.sigma_xx, np.eye(8) / 8)
    np.testing.assert_allclose(t.sigma_yx, t.y.T / 8)
    assert set(np.unique(np.asarray(t.y))) <= {-1.0, 1.0}


def test_hierarchy_items_share_more_features_when_closer(key):
    """Leaves 2 levels apart agree on a feature with prob ½(1 + (1 − 2ε)^{2k}),
    k the number of levels up to their common ancestor."""
    eps, depth = 0.1, 3
    y = np.asarray(tasks.tree_features(key, depth=depth, flip_prob=eps, n_features=20000))
    for other, k in [(1, 1), (2, 2), (4, 3)]:
        agree = np.mean(y[0] == y[other])
        expected = 0.5 * (1 + (1 - 2 * eps) ** (2 * k))
        assert abs(agree - expected) < 4 * np.sqrt(expected * (1 - expected) / 20000)


def test_hierarchy_rejects_bad_flip_prob(key):
    with pytest.raises(ValueError, match="flip_prob"):
        tasks.hierarchy(key, depth=2, flip_prob=0.7, n_features=3)


def test_from_data_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="x and y"):
        tasks.from_data(jnp.zeros((4, 2)), jnp.zeros((5, 1)))
