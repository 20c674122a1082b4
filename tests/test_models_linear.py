import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tasks
from models import linear


def test_apply_is_the_product_map(key):
    params = linear.init_gaussian(key, (5, 4, 3, 2), std=0.3)
    assert [w.shape for w in params] == [(4, 5), (3, 4), (2, 3)]
    x = jax.random.normal(key, (7, 5))
    np.testing.assert_allclose(linear.apply(params, x), x @ linear.end_to_end(params).T, rtol=1e-12)


def test_init_gaussian_std(key):
    (w,) = linear.init_gaussian(key, (200, 300), std=0.05)
    assert abs(float(jnp.std(w)) / 0.05 - 1) < 0.01  # 60000 draws: std of the estimate ≈ 0.3%


def test_balanced_init_is_balanced(key):
    params = linear.init_balanced(key, (6, 4, 5, 3), scale=0.7)
    for g in linear.conserved_gram(params):
        assert float(jnp.max(jnp.abs(g))) < 1e-12
    np.testing.assert_allclose(jnp.linalg.svd(params[1], compute_uv=False)[:3], [0.7] * 3, rtol=1e-12)


@pytest.mark.parametrize("lam", [-2.0, 0.0, 2.0])
def test_lambda_balanced_init(key, lam):
    w1, w2 = linear.init_lambda_balanced(key, (5, 3, 4), lam=lam, scale=0.5)
    np.testing.assert_allclose(w2.T @ w2 - w1 @ w1.T, lam * np.eye(3), atol=1e-12)
    np.testing.assert_allclose(jnp.linalg.svd(w2 @ w1, compute_uv=False)[:3], [0.25] * 3, rtol=1e-10)


def test_aligned_init_sets_mode_strengths(key):
    t = tasks.teacher(key, n_in=5, n_out=4, s=(2.0, 1.0, 0.5))
    u0 = jnp.array([1e-3, 2e-3, 3e-3])
    params = linear.init_aligned(key, (5, 3, 6, 4), u=t.u, v=t.v, u0=u0)
    np.testing.assert_allclose(linear.mode_strengths(params, t.u, t.v), u0, rtol=1e-10)
    for g in linear.conserved_gram(params):
        assert float(jnp.max(jnp.abs(g))) < 1e-12


@pytest.mark.parametrize("call, match", [
    (lambda k: linear.init_gaussian(k, (3, -1, 2), std=1.0), "width"),
    (lambda k: linear.init_gaussian(k, (3,), std=1.0), "sizes"),
    (lambda k: linear.init_gaussian(k, (3, 2), std=-1.0), "std"),
    (lambda k: linear.init_lambda_balanced(k, (2, 3, 4), lam=1.0, scale=1.0), "hidden"),
    (lambda k: linear.init_lambda_balanced(k, (2, 2, 2, 2), lam=1.0, scale=1.0), "two-layer"),
])
def test_bad_sizes_raise(key, call, match):
    with pytest.raises(ValueError, match=match):
        call(key)
