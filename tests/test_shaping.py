"""Shaping (arXiv 2402.18361): the ODEs of theory.shaping against independent computations
(quadrature of the 1-D primitive ODE, the authors' fixed-point equation solved by scipy, the
composite ODE's own trajectory), the model's init, and the experiment's smoke (float64
simulation at N = 400 vs the ODEs); the full config (N = 1000) is slow-marked."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, optimize

from experiments import shaping as shaping_exp
from experiments.common import run_experiment
from models import rl_perceptron as rl
from theory import shaping

strict = pytest.mark.strict_dtypes  # theory tests; the simulation mixes int episode counts


def _authors_fixed_point(T):
    # training_time.py (github.com/jinhl9/saad-solla-composition), η = 1: x P(x)/T = √(2/π)(1 − x²)
    return optimize.brentq(lambda x: x * (1 - np.arccos(x) / np.pi) / T - np.sqrt(2 / np.pi) * (1 - x**2), 0.0, 1.0,
                           xtol=1e-15)


@strict
@pytest.mark.parametrize("T", [1, 4])
def test_fixed_point_solves_the_authors_equation_and_is_where_the_ode_stops(T):
    r_star = float(shaping.fixed_point(T, 1.0))
    assert abs(r_star - _authors_fixed_point(T)) < 1e-12  # both bisect/brent to float64 resolution
    # the primitive ODE from R = 0 settles there: after 20 relaxation times the distance is e^-20 of O(1)
    slope = float(jax.grad(lambda r: shaping.primitive_rate(r, T=T, learning_rate=1.0))(r_star))
    alpha = np.asarray([20.0 / -slope + float(shaping.primitive_learning_time(T, learning_rate=1.0))])
    assert abs(float(shaping.overlap(alpha, T=T, learning_rate=1.0)[0]) - r_star) < 1e-7


@strict
def test_fixed_point_rises_with_T_and_falls_with_the_learning_rate():
    r = np.asarray(shaping.fixed_point(jnp.arange(1.0, 9.0), 1.0))
    assert np.all(np.diff(r) > 0)
    np.testing.assert_allclose(r[[1, 2, 7]], [_authors_fixed_point(T) for T in (2, 3, 8)], atol=1e-12)
    assert float(shaping.fixed_point(2, 2.0)) < float(shaping.fixed_point(2, 1.0)) < float(shaping.fixed_point(2, 0.5))


@strict
@pytest.mark.parametrize("T, eta", [(1, 1.0), (3, 0.5)])
def test_overlap_inverts_the_quadrature_of_the_primitive_ode(T, eta):
    # 1-D autonomous ODE: α(R) = ∫_0^R dr / f(r), by adaptive quadrature (independent of RK4)
    targets = np.asarray([0.2, 0.4, 0.9 * float(shaping.fixed_point(T, eta))])
    rate = lambda r: float(shaping.primitive_rate(r, T=T, learning_rate=eta))  # noqa: E731
    alphas = np.asarray([integrate.quad(lambda r: 1.0 / rate(r), 0.0, x, epsabs=1e-13, epsrel=1e-12)[0] for x in targets])
    got = np.asarray(shaping.overlap(alphas[::-1], T=T, learning_rate=eta))[::-1]  # any order of α
    # RK4 at step 0.01: error ~h⁴ max|f''''| ≈ 1e-9; quad at 1e-12
    np.testing.assert_allclose(got, targets, atol=1e-7)
    t_hit = float(shaping.primitive_learning_time(T, learning_rate=eta, margin=float(shaping.fixed_point(T, eta)) - 0.4))
    assert abs(t_hit - alphas[1]) < 1e-6 * alphas[1]  # crossing by Hermite interpolation: O(h⁴) too


@strict
def test_composite_with_one_primitive_is_the_primitive_ode():
    alpha = np.linspace(0.0, 6.0, 13)
    comp = shaping.composite(alpha, T=2, learning_rate=1.0, v_learning_rate=3.0, v_teacher=jnp.ones(1), r0=0.1,
                             v0=jnp.ones(1))
    np.testing.assert_allclose(np.asarray(comp.r[:, 0]), np.asarray(shaping.overlap(alpha, T=2, learning_rate=1.0, r0=0.1)),
                               atol=1e-12)  # the same field, the same RK4 steps
    np.testing.assert_allclose(np.asarray(comp.v), 1.0, atol=1e-12)


@strict
def test_composite_fixed_point_is_R_star_with_v_equal_to_v_star():
    vt = jnp.asarray([0.5, 0.3, 0.2])
    r_star = shaping.fixed_point(3, 0.7)
    rates = shaping.composite_rates(shaping.CompositeState(jnp.full(3, r_star), vt / jnp.linalg.norm(vt)), T=3,
                                    learning_rate=0.7, v_learning_rate=1.0, v_teacher=vt)
    assert float(jnp.max(jnp.abs(rates.r))) < 1e-14 and float(jnp.max(jnp.abs(rates.v))) < 1e-14


@strict
def test_composite_learning_time_is_where_the_trajectory_crosses_the_threshold():
    vt, v0 = jnp.ones(3), jnp.asarray([0.6, 0.3, 0.1])
    kw = dict(T=2, learning_rate=1.0, v_learning_rate=1.0, v_teacher=vt, v0=v0)
    lt = shaping.learning_time(shaped=False, **kw)
    comp = shaping.composite(np.asarray([float(lt.total)]), r0=0.0, **kw)
    rho = float(shaping.composite_overlap(comp.r, comp.v, vt)[0])
    assert abs(rho - (float(shaping.fixed_point(2, 1.0)) - 0.01)) < 1e-8
    shaped = shaping.learning_time(shaped=True, **kw)
    assert float(shaped.pretrain) == pytest.approx(float(shaping.primitive_learning_time(2, learning_rate=1.0)), rel=1e-12)
    assert float(shaped.total) < float(lt.total)


@strict
def test_learning_time_is_jittable_over_T_and_grows_with_T():
    f = jax.jit(jax.vmap(lambda T: shaping.learning_time(T, learning_rate=1.0, v_learning_rate=1.0, v_teacher=jnp.ones(2),
                                                         v0=jnp.asarray([0.9, 0.1]), shaped=False).total))
    t = np.asarray(f(jnp.asarray([1.0, 2.0, 3.0])))
    assert np.all(np.isfinite(t)) and np.all(np.diff(t) > 0)


@strict
@pytest.mark.parametrize("call, word", [
    (lambda: shaping.fixed_point(0, 1.0), "T"),
    (lambda: shaping.fixed_point(2, -1.0), "learning_rate"),
    (lambda: shaping.overlap(np.asarray([-1.0, 1.0]), T=1, learning_rate=1.0), "alpha"),
    (lambda: shaping.overlap(np.asarray([1.0]), T=1, learning_rate=1.0, r0=1.0), "r0"),
    (lambda: shaping.composite(np.asarray([1.0]), T=1, learning_rate=1.0, v_learning_rate=1.0, v_teacher=jnp.ones(2),
                               r0=0.0, v0=jnp.ones(3)), "v0"),
])
def test_bad_input_is_one_clear_value_error(call, word):
    with pytest.raises(ValueError, match=word):
        call()


def test_student_init_has_the_requested_overlaps_and_unit_norms(key):
    k1, k2 = jax.random.split(key)
    teacher = rl.init_teacher(k1, 300, jnp.asarray([1.0, 2.0, 2.0]))
    np.testing.assert_allclose(np.asarray(teacher.w @ teacher.w.T / 300), np.eye(3), atol=1e-12)
    student = rl.init_student(k2, teacher, r0=jnp.asarray([0.0, 0.3, -0.5]), v0=jnp.asarray([1.0, 1.0, 0.0]))
    np.testing.assert_allclose(np.asarray(rl.overlaps(student, teacher)), [0.0, 0.3, -0.5], atol=1e-12)
    np.testing.assert_allclose(np.asarray(jnp.sum(student.w**2, -1) / 300), 1.0, atol=1e-12)
    rho = float(rl.composite_overlap(student, teacher))
    assert rho == pytest.approx(float(shaping.composite_overlap(rl.overlaps(student, teacher), student.v, teacher.v)), abs=1e-12)


def test_smoke_run_passes_every_row_and_writes_the_figure(tmp_path):
    # float64 simulation at N = 400 (4 seeds) against the ODEs; tolerances 4 SE + 2/N (experiment docstring)
    result = run_experiment(shaping_exp, shaping_exp.smoke(), tmp_path / "run")
    assert len(result.rows) == 10 and all(r["passed"] for r in result.rows), [r for r in result.rows if not r["passed"]]
    assert (tmp_path / "run" / "shaping.png").exists()


def test_config_refuses_a_readout_of_the_wrong_length():
    with pytest.raises(ValueError, match="v0"):
        dataclasses.replace(shaping_exp.Config(), v0=(1.0, 2.0))


@pytest.mark.slow  # N = 1000, 8 seeds, T = 1, 2, 4 and the composite task: a few minutes on 2 cores
def test_full_config_passes_every_row(tmp_path):
    result = run_experiment(shaping_exp, shaping_exp.Config(), tmp_path / "run")
    assert all(r["passed"] for r in result.rows), [r for r in result.rows if not r["passed"]]


def test_run_episodes_records_every_block_and_draws_a_fresh_key_per_episode(key):
    from dynamics.episodes import run_episodes

    def episode(state, k):  # count episodes and sum one uniform draw per episode
        return state[0] + 1, state[1] + jax.random.uniform(k)

    rec = run_episodes(episode, (0, 0.0), key, n_records=3, every=4, observe=lambda s: s[0])
    np.testing.assert_array_equal(np.asarray(rec.episodes), [0, 4, 8, 12])
    np.testing.assert_array_equal(np.asarray(rec.observed), [0, 4, 8, 12])
    draws = sum(float(jax.random.uniform(jax.random.fold_in(key, i))) for i in range(12))
    assert float(rec.final[1]) == pytest.approx(draws, abs=1e-12)
    with pytest.raises(ValueError, match="n_records"):
        run_episodes(episode, (0, 0.0), key, n_records=0, every=4, observe=lambda s: s[0])
