"""Softmax attention for ICL regression (arXiv 2503.12734): model, pattern scores, theory.

Theory functions are checked against float64 Monte Carlo of the predictors they
describe, or against a second derivation (numerical minimisation of the paper's loss).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import softmax_attention as sa
from tasks import icl
from theory import softmax_icl as th


def _paper_task(key, *, d, n_context, batch, noise_var):
    """x ~ N(0, I_d), β ~ N(0, I_d/d) in f64, numpy arrays (x, y, x_q, y_q)."""
    kx, kq, kb, ke, kf = jax.random.split(key, 5)
    x = jax.random.normal(kx, (batch, n_context, d))
    xq = jax.random.normal(kq, (batch, d))
    beta = jax.random.normal(kb, (batch, d)) / np.sqrt(d)
    s = np.sqrt(noise_var)
    y = jnp.einsum("bld,bd->bl", x, beta) + s * jax.random.normal(ke, (batch, n_context))
    yq = jnp.einsum("bd,bd->b", xq, beta) + s * jax.random.normal(kf, (batch,))
    return x, y, xq, yq


def _reduced_softmax(mu, omega, x, y, xq):
    """ŷ = Σ_h μ_h Σₗ yₗ softmax_ℓ(ω_h xₗᵀx_q), the paper's reduced model."""
    logits = jnp.einsum("h,bld,bd->bhl", jnp.asarray(omega), x, xq)
    return jnp.einsum("h,bhl,bl->b", jnp.asarray(mu), jax.nn.softmax(logits, axis=-1), y)


def _pattern_params(omega, mu, dim):
    """Params with KQ_h = ω_h I_D on the x block (0 elsewhere) and OV_h = μ_h e_{D+1}."""
    h, d1 = len(omega), dim + 1
    root = np.sqrt(np.abs(omega) * np.sqrt(d1))
    mask = np.r_[np.ones(dim), 0.0]
    q = np.stack([np.diag(r * mask) for r in root])
    k = np.stack([np.diag(np.sign(w) * r * mask) for w, r in zip(omega, root)])
    v = np.zeros((h, d1, d1))
    v[:, dim, dim] = 1.0
    o = np.zeros((h, d1))
    o[:, dim] = mu
    return {name: jnp.asarray(a) for name, a in dict(q=q, k=k, v=v, o=o).items()}


# ------------------------------------------------------------------- model

def test_apply_matches_explicit_loop(key):
    k1, k2 = jax.random.split(key)
    d, n, h = 3, 7, 2
    params = sa.init(k1, dim=d, n_heads=h, scale=1.5)
    tokens, _ = icl.sample(k2, lam=np.ones(d), n_context=n, batch=4, noise_std=0.1)
    p = {name: np.asarray(a) for name, a in params.items()}
    t = np.asarray(tokens)
    expected = np.zeros(4)
    for b in range(4):
        for i in range(h):
            q, keys, vals = p["q"][i] @ t[b, n], t[b, :n] @ p["k"][i].T, t[b, :n] @ p["v"][i].T
            logits = keys @ q / np.sqrt(d + 1)
            att = np.exp(logits - logits.max())
            expected[b] += p["o"][i] @ (att / att.sum() @ vals)
    # f64 round-off only
    np.testing.assert_allclose(np.asarray(sa.apply(params, tokens)), expected, rtol=1e-12, atol=1e-12)


def test_pattern_params_are_the_reduced_model_and_score_one(key):
    d, n = 4, 9
    omega, mu = np.array([0.3, -0.25]), np.array([2.0, -2.0])
    params = _pattern_params(omega, mu, d)
    x, y, xq, _ = _paper_task(key, d=d, n_context=n, batch=6, noise_var=0.1)
    tokens = jnp.concatenate([jnp.concatenate([x, y[..., None]], -1),
                              jnp.concatenate([xq, jnp.zeros((6, 1))], -1)[:, None]], axis=1)
    np.testing.assert_allclose(sa.apply(params, tokens), _reduced_softmax(mu, omega, x, y, xq), rtol=1e-12, atol=1e-12)
    w, m = sa.reduced_params(params)
    np.testing.assert_allclose(w, omega, rtol=1e-12)
    np.testing.assert_allclose(m, mu, rtol=1e-12)
    scores = sa.pattern_scores(params)
    for name, value in scores.items():
        assert abs(float(value) - 1.0) < 1e-12, name
    # one head cannot be zero-sum; all μ of one sign score 0
    assert abs(float(sa.pattern_scores(_pattern_params(omega, np.array([1.0, 3.0]), d))["ov_zero_sum"])) < 1e-12


def test_random_init_scores_are_at_their_chance_levels():
    d, h, seeds = 5, 4, 50
    scores = jax.vmap(lambda k: sa.pattern_scores(sa.init(k, dim=d, n_heads=h)))(jax.random.split(jax.random.key(3), seeds))
    means = {name: float(jnp.mean(v)) for name, v in scores.items()}
    # chance levels (docstring): KQ diagonal 1/(D+1) = 0.17, homogeneous ≈ 1/D = 0.2 (a product
    # W_Qᵀ W_K has correlated diagonal entries, so a little above), last entry 1/(D+1); far
    # below the experiment's thresholds (0.8-0.9), which is what makes the scores informative
    assert 0.1 < means["kq_diagonal"] < 0.25
    assert 0.1 < means["kq_homogeneous"] < 0.4
    assert 0.1 < means["ov_last_entry"] < 0.25
    assert 0.4 < means["ov_zero_sum"] < 0.8


def test_model_rejects_bad_shapes(key):
    with pytest.raises(ValueError, match="n_heads"):
        sa.init(key, dim=3, n_heads=0)
    with pytest.raises(ValueError, match="scale"):
        sa.init(key, dim=3, n_heads=1, scale=0.0)


# ------------------------------------------------------------------ theory

def test_debiased_gd_loss_matches_monte_carlo(key):
    d, n, s2, batch = 3, 8, 0.25, 200_000
    x, y, xq, yq = _paper_task(key, d=d, n_context=n, batch=batch, noise_var=s2)
    feature = jnp.einsum("bl,bld,bd->b", y, x - x.mean(axis=1, keepdims=True), xq) / n
    for eta in (0.5, float(th.debiased_gd_optimal_step(d=d, n_context=n, noise_var=s2))):
        err = 0.5 * (yq - eta * feature) ** 2
        se = float(jnp.std(err)) / np.sqrt(batch)
        # exact formula vs a mean of 2e5 squared errors: 5 standard errors (~1.5%)
        assert abs(float(jnp.mean(err)) - th.debiased_gd_loss(eta, d=d, n_context=n, noise_var=s2)) < 5 * se


def test_debiased_gd_optimum_is_the_minimum_over_eta():
    kw = dict(d=5, n_context=40, noise_var=0.1)
    etas = np.linspace(0.0, 2.0, 200_001)
    losses = th.debiased_gd_loss(etas, **kw)
    # quadratic in η: the grid minimum (spacing 1e-5) is within ~1e-10 of the closed form
    assert abs(losses.min() - th.debiased_gd_optimal_loss(**kw)) < 1e-9
    assert abs(etas[np.argmin(losses)] - th.debiased_gd_optimal_step(**kw)) < 1e-5
    # the paper's asymptotic multi-head optimum is its large-d limit: at d = 5 within 10% ...
    assert abs(th.multi_head_optimal_loss(**kw) / th.debiased_gd_optimal_loss(**kw) - 1) < 0.10
    # ... and at d = 500, L = 4000 within 0.2% (the dropped term is O(1/d))
    big = dict(d=500, n_context=4000, noise_var=0.1)
    assert abs(th.multi_head_optimal_loss(**big) / th.debiased_gd_optimal_loss(**big) - 1) < 2e-3


@pytest.mark.parametrize("d,n", [(5, 40), (6, 3)])
def test_bayes_ridge_finite_loss_matches_direct_monte_carlo(key, d, n):
    # Independent of the Bartlett draws: X sampled entry by entry (jax PRNG), (a) the risk formula
    # σ² + σ² tr((XᵀX + σ²d I)⁻¹) averaged over X, (b) the Bayes predictor's own squared error on
    # fresh (β, ε, x_q). Both within 4 combined standard errors (the claim is exactness in d, L;
    # 4 SE: a two-sided chance of 6e-5 per comparison).
    s2, draws = 0.1, 20_000
    fin = th.bayes_ridge_finite_loss(d=d, n_context=n, noise_var=s2)
    x, y, xq, yq = _paper_task(key, d=d, n_context=n, batch=draws, noise_var=s2)
    gram = jnp.einsum("bld,ble->bde", x, x) + s2 * d * jnp.eye(d)
    per_x = 0.5 * s2 * (1.0 + jnp.trace(jnp.linalg.inv(gram), axis1=1, axis2=2))
    se = np.hypot(float(per_x.std()) / np.sqrt(draws), fin.standard_error)
    assert abs(float(per_x.mean()) - fin.value) < 4 * se, (float(per_x.mean()), fin)
    mean = jnp.linalg.solve(gram, jnp.einsum("bld,bl->bd", x, y)[..., None])[..., 0]
    err = 0.5 * (yq - jnp.einsum("bd,bd->b", mean, xq)) ** 2
    se = np.hypot(float(err.std()) / np.sqrt(draws), fin.standard_error)
    assert abs(float(err.mean()) - fin.value) < 4 * se, (float(err.mean()), fin)


def test_bayes_ridge_loss_is_the_limit_of_the_finite_risk():
    # The proportional-limit formula is the d, L → ∞ limit at fixed ξ = d/L of the finite risk: its
    # gap must shrink when d and L grow ×8 together (ξ = 1/8), by more than the Monte Carlo can blur
    # (4 standard errors on each side). No rate is asserted: finite-size corrections of E tr of a
    # Wishart resolvent are O(1/d) for real Gaussian ensembles, with a constant we do not derive.
    s2 = 0.1
    gaps = []
    for d, n, draws in ((5, 40, 2**16), (40, 320, 2**12)):
        fin = th.bayes_ridge_finite_loss(d=d, n_context=n, noise_var=s2, n_samples=draws)
        gaps.append((abs(fin.value - th.bayes_ridge_loss(d=d, n_context=n, noise_var=s2)), fin.standard_error))
    (small, se_small), (big, se_big) = gaps
    assert big + 4 * se_big < small - 4 * se_small, gaps


def test_bayes_ridge_finite_loss_checks_and_noiseless_case():
    assert th.bayes_ridge_finite_loss(d=10, n_context=4, noise_var=0.0) == (pytest.approx(0.3), 0.0)
    assert th.bayes_ridge_finite_loss(d=10, n_context=40, noise_var=0.0) == (0.0, 0.0)
    with pytest.raises(ValueError, match="n_samples"):
        th.bayes_ridge_finite_loss(d=5, n_context=40, noise_var=0.1, n_samples=1)
    with pytest.raises(ValueError, match="noise_var"):
        th.bayes_ridge_finite_loss(d=5, n_context=40, noise_var=-1.0)


def test_bayes_ridge_noiseless_limit():
    # σ² = 0: the posterior mean projects β on the span of the L < d inputs; risk ½(1 − L/d)
    assert th.bayes_ridge_loss(d=10, n_context=4, noise_var=0.0) == pytest.approx(0.5 * 0.6)
    assert th.bayes_ridge_loss(d=10, n_context=40, noise_var=0.0) == 0.0
    # and the σ² > 0 formula tends to it
    assert th.bayes_ridge_loss(d=10, n_context=4, noise_var=1e-10) == pytest.approx(0.3, rel=1e-4)


def test_single_head_optimum_minimises_approx_loss():
    kw = dict(d=5, n_context=40, noise_var=0.1)
    omegas = np.linspace(0.3, 0.6, 3001)
    losses = [th.approx_loss(th.optimal_mu([w], **kw), [w], **kw) for w in omegas]
    w_star, mu_star = th.single_head_optimum(**kw)
    # second derivation: grid search over ω with μ*(ω) = M⁻¹ω (spacing 1e-4: the loss is
    # flat to O(δω²) ≈ 1e-8 at the minimum, which lies inside the grid)
    assert abs(min(losses) - th.single_head_optimal_loss(**kw)) < 1e-7
    assert abs(omegas[int(np.argmin(losses))] - w_star) < 2e-4
    assert th.optimal_mu([w_star], **kw)[0] == pytest.approx(mu_star, rel=1e-12)
    assert th.approx_loss([mu_star], [w_star], **kw) == pytest.approx(th.single_head_optimal_loss(**kw), rel=1e-12)


def test_multi_head_optimum_is_the_infimum(key):
    kw = dict(d=5, n_context=40, noise_var=0.1)
    bound = th.multi_head_optimal_loss(**kw)
    # approached by the zero-sum pair ω = (ε, −ε) as ε → 0, with an O(ε²) gap
    gaps = [th.approx_loss(th.optimal_mu([e, -e], **kw), [e, -e], **kw) - bound for e in (0.1, 0.01, 0.001)]
    assert gaps[0] > gaps[1] > gaps[2] > 0 and gaps[2] < 1e-6
    # never beaten: random ω for H = 2, 3, 4 (μ optimal for each)
    rng = np.random.default_rng(0)
    for h in (2, 3, 4):
        for omega in rng.normal(scale=0.5, size=(300, h)):
            assert th.approx_loss(th.optimal_mu(omega, **kw), omega, **kw) >= bound - 1e-12
    # one head cannot reach it: its optimum is higher by the factor e inside
    assert th.single_head_optimal_loss(**kw) > bound + 0.05


@pytest.mark.parametrize("omega", [pytest.param((0.15,), marks=pytest.mark.slow), (0.15, -0.15)])
def test_finite_d_loss_matches_monte_carlo(key, omega):
    # Leading order in 1/L: at the optimal μ the next order is O(1/L²) plus the O(1/L)
    # ratio-estimator bias times (1 − μᵀω) = O(1/L), ≈ 1% at L = 200 (64000 sequences put
    # the single head at +0.4%, the pair at +1.2% ± 0.6%). 16000 f64 sequences give a
    # Monte Carlo error ≈ 1.1% (std of ½e² ≈ √2 × mean): tol 4.5% ≈ 1.2% + 3 errors.
    d, n, s2, batch = 10, 200, 0.1, 16_000
    kw = dict(d=d, n_context=n, noise_var=s2)
    mu = th.optimal_mu(np.asarray(omega), **kw)
    total = 0.0
    for k in jax.random.split(key, 4):
        x, y, xq, yq = _paper_task(k, d=d, n_context=n, batch=batch // 4, noise_var=s2)
        total += float(jnp.sum(0.5 * (yq - _reduced_softmax(mu, omega, x, y, xq)) ** 2))
    assert abs(total / batch / th.finite_d_loss(mu, omega, **kw) - 1) < 0.045


def test_approx_loss_is_the_large_d_limit_of_finite_d_loss():
    # The paper's loss replaces ‖x_q‖² by d and drops the t u² covariance: O(1/d) relative
    # error at fixed dω² (faster at the optimal μ, where first-order errors cancel), so the
    # gap must shrink at least 5× per 10× in d.
    s2, n = 0.1, 100
    gaps = []
    for d in (10, 100, 1000, 10_000):
        omega = np.array([0.8, -0.5]) / np.sqrt(d)
        mu = th.optimal_mu(omega, d=d, n_context=n, noise_var=s2)
        kw = dict(d=d, n_context=n, noise_var=s2)
        gaps.append(abs(th.finite_d_loss(mu, omega, **kw) / th.approx_loss(mu, omega, **kw) - 1))
    assert gaps[0] > 1e-3 and gaps[-1] < 1e-4
    for a, b in zip(gaps, gaps[1:]):
        assert a / b > 5


@pytest.mark.slow
def test_single_head_formula_at_paper_size(key):
    # Documents the tolerance of the experiment's H = 1 row: at the paper's d = 5, L = 40
    # the reduced single-head model at the predicted optimum (ω*, μ*) has a loss 10% above
    # the large-d, large-L formula (f64 Monte Carlo, 40000 sequences, error 0.7%).
    kw = dict(d=5, n_context=40, noise_var=0.1)
    w, mu = th.single_head_optimum(**kw)
    x, y, xq, yq = _paper_task(key, d=5, n_context=40, batch=40_000, noise_var=0.1)
    mc = float(jnp.mean(0.5 * (yq - _reduced_softmax([mu], [w], x, y, xq)) ** 2))
    rel = mc / th.single_head_optimal_loss(**kw) - 1
    assert 0.05 < rel < 0.13


def test_single_head_finite_optimum_is_the_minimum_of_a_direct_monte_carlo(key):
    # Second derivation of the exact one-head optimum: sample the full task (x, β, ε), and
    # minimise over a grid of ω the loss with μ optimal for each ω (the loss is quadratic in
    # μ: μ* = E[y_q ŷ₁]/E[ŷ₁²] on the same sequences). 100000 sequences: standard error of
    # the loss ≈ 0.45% (std of ½e² ≈ √2 × mean); the function's own ≈ 0.45%: tol 4 combined
    # errors ≈ 2.5% (a 5% change of the value fails). Grid spacing 0.05/√d: the loss is flat
    # to O(δω²) at the minimum (< 0.1%), and the argmin moves with the sampling noise of the
    # flat bottom, so the two minimisers agree to 0.1/√d only.
    kw = dict(d=5, n_context=40, noise_var=0.1)
    opt = th.single_head_finite_optimum(**kw)
    omegas = np.linspace(0.6, 1.8, 25) / np.sqrt(5)
    num, den, yy, n = np.zeros(omegas.size), np.zeros(omegas.size), 0.0, 0
    for k in jax.random.split(key, 4):
        x, y, xq, yq = (np.asarray(a) for a in _paper_task(k, d=5, n_context=40, batch=25_000, noise_var=0.1))
        dots = np.einsum("bld,bd->bl", x, xq)
        for i, w in enumerate(omegas):
            p = np.exp(w * dots - (w * dots).max(axis=1, keepdims=True))
            y1 = np.sum(p * y, axis=1) / p.sum(axis=1)
            num[i] += yq @ y1
            den[i] += y1 @ y1
        yy, n = yy + yq @ yq, n + yq.size
    losses = 0.5 * (yy - num**2 / den) / n
    i = int(np.argmin(losses))
    mu = num[i] / den[i]
    x, y, xq, yq = (np.asarray(a) for a in _paper_task(jax.random.fold_in(key, 9), d=5, n_context=40, batch=25_000, noise_var=0.1))
    err = 0.5 * (yq - np.asarray(_reduced_softmax([mu], [omegas[i]], x, y, xq))) ** 2
    se = np.sqrt((2 * losses[i] ** 2) / n + opt.standard_error**2)
    assert abs(losses[i] - opt.loss) < 4 * se, (losses[i], opt)
    assert abs(omegas[i] - opt.omega) < 0.1 / np.sqrt(5)
    assert opt.mu == pytest.approx(mu, rel=0.05)
    # the paper's large-size formula lies below the exact optimum (it drops positive O(1/d, 1/L) terms)
    assert th.single_head_optimal_loss(**kw) < opt.loss - 4 * opt.standard_error
    # and the exact optimum's loss is what the found (ω, μ) give on fresh sequences (5 errors)
    assert abs(err.mean() - opt.loss) < 5 * np.sqrt(2 * opt.loss**2 / err.size + opt.standard_error**2)


def test_theory_rejects_bad_inputs():
    with pytest.raises(ValueError, match="n_context"):
        th.debiased_gd_loss(1.0, d=5, n_context=1, noise_var=0.1)
    with pytest.raises(ValueError, match="noise_var"):
        th.multi_head_optimal_loss(d=5, n_context=40, noise_var=-1.0)
    with pytest.raises(ValueError, match="same length"):
        th.approx_loss([1.0, 2.0], [0.1], d=5, n_context=40, noise_var=0.1)
    with pytest.raises(ValueError, match="1/2"):
        th.finite_d_loss([1.0], [0.8], d=5, n_context=40, noise_var=0.1)
    with pytest.raises(ValueError, match="n_samples"):
        th.single_head_finite_optimum(d=5, n_context=40, noise_var=0.1, n_samples=1)


# -------------------------------------------------------------- experiment

def test_experiment_config_checks():
    from experiments import softmax_icl_patterns as exp

    with pytest.raises(ValueError, match="test_lengths"):
        exp.Config(test_lengths=(20, 80))
    with pytest.raises(ValueError, match="heads"):
        exp.Config(heads=(2, 4))


@pytest.mark.slow
def test_smoke_run_passes(tmp_path):
    # ~1 min on 2 idle cores (two trainings of 2500 Adam steps and the test sets)
    from experiments import softmax_icl_patterns as exp
    from experiments.common import run_experiment

    result = run_experiment(exp, exp.smoke(), tmp_path / "run")
    assert result.rows and all(r["passed"] for r in result.rows)
