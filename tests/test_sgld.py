"""dynamics.sgld: the localized tempered sampler against closed-form stationary
laws of the discretised dynamics (our derivations in theory.slt), pytrees and flax."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from dynamics import sgld
from theory import slt

H_DIAG = jnp.array([1.0, 4.0])
DUMMY = jnp.zeros((100,))  # n = 100 "samples"; the quadratic loss ignores them


def quadratic(w, batch):
    return 0.5 * jnp.sum(H_DIAG * w["a"] ** 2) + 0.0 * jnp.sum(batch)


def _mean_and_se(trace, burn_in):
    x = np.asarray(trace)[:, burn_in:]
    return float(x.mean()), sgld._batch_means_se(x, 10)


def test_sgld_stationary_mean_loss_is_ula_closed_form():
    # n_beta = 1, gamma = 0: target exp(−½wᵀHw); SGLD at ε has stationary covariance
    # (H(I − εH/4))⁻¹, so E[L] = ½ Σ 1/(1 − εh/4) = 1.151 at ε = 0.2 (1.0 at ε → 0).
    eps = 0.2
    run = sgld.sample(quadratic, {"a": jnp.zeros(2)}, DUMMY, key=jax.random.key(0), step_size=eps,
                      num_chains=64, num_steps=2000, n_beta=1.0, gamma=0.0)
    mean, se = _mean_and_se(run.loss, 200)
    expected = float(slt.ula_quadratic_llc(H_DIAG, n_beta=1.0, gamma=0.0, step_size=eps))
    # tol: 4 Monte-Carlo standard errors (batch means); the ε → 0 value 1.0 is > 10 SE away.
    assert abs(mean - expected) <= 4 * se, (mean, expected, se)
    assert abs(1.0 - expected) > 10 * se
    assert run.final["a"].shape == (64, 2)


def test_sghmc_stationary_mean_loss_is_discrete_lyapunov():
    # BlackJAX's SGHMC step per mode (curvature a): x' = x + h p, p' = (1 − αh)p − h a x + √(2αh) ξ.
    # Its exact stationary covariance solves Σ = FΣFᵀ + GGᵀ (an independent computation).
    h, alpha = 0.1, 2.0
    run = sgld.sample(quadratic, {"a": jnp.zeros(2)}, DUMMY, key=jax.random.key(1), step_size=h,
                      num_chains=64, num_steps=2000, n_beta=1.0, gamma=0.0, sampler="sghmc", friction=alpha)
    expected = 0.0
    for a in np.asarray(H_DIAG):
        f = np.array([[1.0, h], [-h * a, 1.0 - alpha * h]])
        g = np.array([[0.0], [math.sqrt(2 * alpha * h)]])
        expected += 0.5 * a * scipy.linalg.solve_discrete_lyapunov(f, g @ g.T)[0, 0]
    mean, se = _mean_and_se(run.loss, 200)
    assert abs(mean - expected) <= 4 * se, (mean, expected, se)  # 4 MC standard errors


def test_localization_and_minibatch_and_observe():
    # γ localizes around w*: with nβ = 1, γ = 3 the target of the quadratic is N(w*, (H + 3)⁻¹) at ε → 0;
    # observe records w every step; minibatches index the data with the right shape.
    w_star = {"a": jnp.array([1.0, -2.0])}
    seen = []

    def loss(w, batch):
        seen.append(batch.shape)
        return 0.5 * jnp.sum(H_DIAG * w["a"] ** 2) + 0.0 * jnp.sum(batch)

    run = sgld.sample(loss, w_star, DUMMY, key=jax.random.key(2), step_size=0.01, num_chains=32,
                      num_steps=1000, n_beta=1.0, gamma=3.0, batch_size=10, observe=lambda w, data: w["a"])
    assert seen[-1] == (10,)
    draws = np.asarray(run.stats)[:, 300:]  # (chains, T, 2)
    mean = draws.mean(axis=(0, 1))
    # stationary mean of the Gaussian: (H + γ)⁻¹ γ w*; tol: 4 batch-means SE per coordinate
    expected = 3.0 * np.asarray(w_star["a"]) / (np.asarray(H_DIAG) + 3.0)
    for i in range(2):
        assert abs(mean[i] - expected[i]) <= 4 * sgld._batch_means_se(draws[..., i], 10)


def test_bad_input_is_one_line_value_error():
    for kwargs, word in [(dict(step_size=-1.0), "step_size"), (dict(step_size=0.1, sampler="hmc"), "sampler"),
                         (dict(step_size=0.1, batch_size=1000), "batch_size"), (dict(step_size=0.1, gamma=-1.0), "gamma")]:
        with pytest.raises(ValueError, match=word):
            sgld.sample(quadratic, {"a": jnp.zeros(2)}, DUMMY, key=jax.random.key(0), **kwargs)
    with pytest.raises(ValueError, match="leading"):
        sgld.num_samples((jnp.zeros((3, 2)), jnp.zeros((4,))))


def test_float32_params_stay_float32():
    run = sgld.sample(quadratic, {"a": jnp.zeros(2, jnp.float32)}, DUMMY, key=jax.random.key(0), step_size=0.1,
                      num_chains=2, num_steps=10, n_beta=1.0)
    assert run.final["a"].dtype == jnp.float32
