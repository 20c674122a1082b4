"""Non-contrastive SSL eigen-dynamics (theory.directpred, models.ssl, experiments.directpred;
Tian, Chen & Ganguli 2021, arXiv 2102.06810). The smoke run checks the theory against float64
matrix flows and SGD (every row); the full config is slow-marked."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import experiments
from experiments import directpred as exp_module
from models import ssl
from theory import directpred as th

PARAMS = [dict(weight_decay=0.05, noise_var=0.0, tau=1.0, alpha_p=1.0),
          dict(weight_decay=0.1, noise_var=0.5, tau=1.0, alpha_p=2.0),
          dict(weight_decay=0.02, noise_var=1.5, tau=0.7, alpha_p=0.5)]


@pytest.mark.strict_dtypes
@pytest.mark.parametrize("kw", PARAMS)
def test_fixed_points_are_the_roots_and_zeros_of_the_flow(kw):
    # second derivation: numpy's polynomial roots of (1 + σ²)p² − τp + η, the ṡ = 0 condition of Eq. 12
    p_plus, p_minus = th.predictor_fixed_points(**kw)
    roots = np.sort(np.roots([1.0 + kw["noise_var"], -kw["tau"], kw["weight_decay"]]).real)
    np.testing.assert_allclose([p_minus, p_plus], roots, rtol=1e-12)
    s_plus, s_minus = th.correlation_fixed_points(**kw)
    for p, s in ((p_plus, s_plus), (p_minus, s_minus)):
        dp, ds = th.eigen_flow(p, s, **kw)
        assert abs(float(dp)) < 1e-14 and abs(float(ds)) < 1e-14


@pytest.mark.strict_dtypes
def test_critical_weight_decay_is_where_the_fixed_points_meet():
    for sig, tau in ((0.0, 1.0), (0.5, 1.0), (2.0, 0.6)):
        eta_c = float(th.critical_weight_decay(noise_var=sig, tau=tau))
        below = th.predictor_fixed_points(eta_c * (1 - 1e-10), noise_var=sig, tau=tau)
        np.testing.assert_allclose(below, tau / (2 * (1 + sig)), rtol=1e-4)
        assert np.all(np.isnan(th.predictor_fixed_points(eta_c * (1 + 1e-10), noise_var=sig, tau=tau)))
    np.testing.assert_allclose(th.predictor_fixed_points(0.0, noise_var=0.5, tau=0.9), (0.6, 0.0), atol=1e-15)


@pytest.mark.strict_dtypes
@pytest.mark.parametrize("kw", PARAMS)
def test_stability_matches_the_numerical_jacobian(kw):
    field = lambda y: jnp.stack(th.eigen_flow(y[0], y[1], **kw))
    eig = th.fixed_point_eigenvalues(**kw)
    p_plus, p_minus = th.predictor_fixed_points(**kw)
    for name, p in (("plus", p_plus), ("minus", p_minus), ("collapsed", 0.0)):
        y = jnp.stack([jnp.asarray(p, dtype=float), jnp.asarray(p, dtype=float) ** 2 / kw["alpha_p"]])
        numeric = np.sort_complex(np.linalg.eigvals(np.asarray(jax.jacfwd(field)(y))))
        np.testing.assert_allclose(np.sort_complex(np.asarray(eig[name])), numeric, atol=1e-12)
    assert np.all(np.real(eig["plus"]) < 0) and np.all(np.real(eig["collapsed"]) < 0)
    assert np.sum(np.real(eig["minus"]) > 0) == 1  # a saddle


@pytest.mark.strict_dtypes
def test_basin_on_the_parabola_is_p_below_p_minus():
    # the paper's criterion (Sec. 3.2) vs our reduced-ODE construction; p0 at least 10% away from p₋*
    kw = dict(weight_decay=0.1, noise_var=0.5, alpha_p=2.0)
    _, p_minus = th.predictor_fixed_points(**kw)
    p0 = float(p_minus) * np.array([0.2, 0.5, 0.9, 1.1, 2.0, 6.0])
    got = th.collapses(p0, p0**2 / kw["alpha_p"], **kw)
    np.testing.assert_array_equal(np.asarray(got), p0 < float(p_minus))
    # above η_c = 1/6; the first call's horizon (40/0.1, longer than the default 40/0.2) keeps every
    # array shape and the horizon, so diffrax's compiled solver is reused (no second compile)
    assert np.all(np.asarray(th.collapses(p0, p0**2, weight_decay=0.2, noise_var=0.5, horizon=40.0 / kw["weight_decay"])))


@pytest.mark.slow  # both solvers are checked against the float64 matrix flows by default (smoke rows
# "aligned eta=...: p_j(t), s_j(t) vs Eqs. 11-12" and "directpred: s_j(t) vs Eq. 12"); this identity between them is extra
@pytest.mark.strict_dtypes
def test_directpred_reduction_equals_the_trained_flow_on_its_parabola():
    # ε = 0 DirectPred keeps s = p² (α_p = 1 parabola); a trained predictor started on it stays there (Eq. 14)
    kw = dict(weight_decay=0.08, noise_var=0.3)
    s0 = np.array([0.9, 0.2, 0.02, 0.004])
    t = exp_module._times(exp_module.smoke())  # the smoke's recording times: its DirectPred solve reuses this compile
    dp = th.directpred_trajectory(t, s0, **kw)
    trained = th.eigen_trajectory(t, np.sqrt(s0), s0, alpha_p=1.0, **kw)
    np.testing.assert_allclose(np.asarray(dp), np.asarray(trained.s), rtol=1e-7, atol=1e-12)


def test_surrogate_gradient_is_lemma_1():
    # −∇L of models.ssl.training_loss vs Eqns. 2-4 written out (X = I, X' = σ²I), with and without symmetrisation
    eta, sig, ap, beta = 0.07, 0.4, 1.7, 0.3
    kw, kp, ka = jax.random.split(jax.random.key(3), 3)
    w, wa = jax.random.normal(kw, (3, 5)), jax.random.normal(ka, (3, 5))
    wp = jax.random.normal(kp, (3, 3))
    params = ssl.Params(w, wp, wa)
    w, wp, wa = np.asarray(w), np.asarray(wp), np.asarray(wa)  # the hand computation in numpy
    # one jitted program for both cases (symmetric traced, as the experiment's sweep traces it)
    grad = jax.jit(lambda params, symmetric: jax.grad(ssl.training_loss(
        weight_decay=eta, noise_var=sig, alpha_p=ap, ema_rate=beta, symmetric=symmetric))(params, None))
    for symmetric in (True, False):
        g = grad(params, symmetric)
        p = 0.5 * (wp + wp.T) if symmetric else wp
        inner = -(1 + sig) * p @ w + wa
        dwp = ap * inner @ w.T
        dwp = 0.5 * (dwp + dwp.T) if symmetric else dwp
        np.testing.assert_allclose(-g.predictor, dwp - eta * wp, atol=1e-12)
        np.testing.assert_allclose(-g.online, p.T @ inner - eta * w, atol=1e-12)
        np.testing.assert_allclose(-g.target, beta * (w - wa), atol=1e-12)


def test_sampled_objective_averages_to_the_population_one():
    # Monte-Carlo: with P = 2¹⁴ view pairs the sample mean of the per-pair loss is within 4 standard errors
    sig = 0.5
    params = ssl.init(jax.random.key(0), 6, 3, scale=1.0, predictor_mean=0.5)
    pred, target = 0.5 * (params.predictor + params.predictor.T), 0.8 * params.online
    kx, k1, k2 = jax.random.split(jax.random.key(1), 3)
    x = jax.random.normal(kx, (16384, 6))
    x1, x2 = x + np.sqrt(sig) * jax.random.normal(k1, x.shape), x + np.sqrt(sig) * jax.random.normal(k2, x.shape)
    r = x1 @ (pred @ params.online).T - x2 @ target.T
    per_pair = 0.5 * jnp.sum(r**2, -1)
    se = float(jnp.std(per_pair)) / np.sqrt(x.shape[0])
    got = float(ssl.sampled_objective(params, pred, target, (x1, x2)))
    want = float(ssl.population_objective(params, pred, target, sig))
    assert abs(got - want) < 4 * se


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="weight_decay"):
        th.predictor_fixed_points(-0.1)
    with pytest.raises(ValueError, match="noise_var"):
        th.critical_weight_decay(noise_var=-1.0)
    with pytest.raises(ValueError, match="n_out"):
        exp_module.Config(n_out=9)
    with pytest.raises(ValueError, match="aligned_p0"):
        exp_module.Config(aligned_p0=(1.0, 0.5))


def test_smoke_run_passes_every_row(tmp_path):
    exp = experiments.get("directpred")
    result = exp.run(exp.smoke(), tmp_path / "run")
    failed = [r for r in result.rows if not r["passed"]]
    assert result.rows and not failed, failed
    assert (tmp_path / "run" / "directpred.png").exists()


@pytest.mark.slow
def test_full_config_passes_every_row(tmp_path):
    exp = experiments.get("directpred")
    rows = exp.run(exp.Config(), tmp_path / "run").rows
    failed = [r for r in rows if not r["passed"]]
    assert rows and not failed, failed
