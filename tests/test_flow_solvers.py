"""gradient_flow's solvers: the implicit Newton–Krylov Kvaerno5 and the stabilised explicit RKC against exact solutions."""
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics
from models import linear
from theory.linear import mode_strength


def test_stiff_quadratic_matches_exponentials():
    # L = ½ Σ λ_i θ_i², θ_i(t) = θ_i(0) e^{-λ_i t}: rates 1e3 and 1e-2 over t = 300,
    # stiffness ratio 1e5 (the explicit solver would need ~1e5 steps)
    lam = jnp.array([1e3, 1e-2])

    def loss(theta, _):
        return 0.5 * jnp.sum(lam * theta**2)

    times = np.array([0.0, 1.0, 10.0, 100.0, 300.0])
    theta0 = jnp.array([1.0, 1.0])
    traj = dynamics.gradient_flow(loss, theta0, None, times=times, rtol=1e-7, atol=1e-10, solver="kvaerno5",
                                  max_steps=2000)
    exact = 0.5 * np.sum(np.asarray(lam)[None] * np.exp(-2 * np.asarray(lam)[None] * times[:, None]), axis=1)
    # rtol 1e-7 bounds each step's local error relative to |θ|; a few hundred steps accumulate ≲ 1e-5
    np.testing.assert_allclose(traj.loss, exact, rtol=1e-5, atol=1e-12)


def test_rkc_on_a_stiff_quadratic_matches_exponentials_with_few_stages_per_unit_stiffness():
    # rates 1e3 and 1e-2 over t = 300 (stiffness ratio 3e7 over the run): an explicit RK step is bounded by
    # ~3/1e3, i.e. ~1e5 steps; RKC's step is bounded by accuracy only
    lam = jnp.array([1e3, 1e-2])

    def loss(theta, _):
        return 0.5 * jnp.sum(lam * theta**2)

    times = np.array([0.0, 1.0, 10.0, 100.0, 300.0])
    traj = dynamics.gradient_flow(loss, jnp.array([1.0, 1.0]), None, times=times, rtol=1e-7, atol=1e-10,
                                  solver="rkc", max_steps=5000)
    exact = 0.5 * np.sum(np.asarray(lam)[None] * np.exp(-2 * np.asarray(lam)[None] * times[:, None]), axis=1)
    # second order: local error control at rtol 1e-7 over ≲ 1e3 steps accumulates ≲ 1e-4 relative
    np.testing.assert_allclose(traj.loss, exact, rtol=1e-4, atol=1e-12)


def test_rkc_step_is_stable_far_beyond_the_explicit_bound():
    # one step of h = 10 on rates up to 1e3 (h λ = 1e4; an explicit RK step is stable only for h λ ≲ 3):
    # s = 1 + ceil(sqrt(1 + 1.54 h ρ)) stages with ρ ≈ 1.2e3 (power iteration × 1.2) put h λ inside the
    # stability interval, so the fast component is damped, |θ_fast| ≤ |θ_fast(0)|
    import diffrax

    from dynamics.flow import RKC

    lam = jnp.array([1e3, 1.0])
    term = diffrax.ODETerm(lambda t, y, a: -lam * y)
    solver = RKC()
    y0 = jnp.array([1.0, 1.0])
    state = solver.init(term, 0.0, 10.0, y0, None)
    y1, _, _, _, _ = solver.step(term, 0.0, 10.0, y0, None, state, False)
    assert abs(float(y1[0])) <= 1.0  # stability polynomial bounded by 1 on [−β(s), 0]


# Local error control at rtol 1e-8 over the logistic climbs: ~100 steps for the fifth-order
# solvers give a global error ≲ 1e-6 of s; RKC is second order (~1e3 steps): ≲ 1e-5 of s.
@pytest.mark.parametrize("solver, rel_atol, extra", [("tsit5", 1e-6, {}), ("kvaerno5", 1e-6, {}),
                                                     ("rkc", 1e-5, {"max_steps": 20000})])
def test_two_layer_linear_flow_matches_saxe_closed_form(solver, rel_atol, extra):
    # aligned balanced init: every mode follows the logistic u(t) of Saxe et al. 2014 (arXiv 1312.6120, Eq. 8)
    s, u0 = np.array([3.0, 1.0]), 1e-3
    root = np.sqrt(u0)
    params = [root * jnp.eye(2), root * jnp.eye(2)]
    sxy = jnp.diag(jnp.asarray(s))

    def loss(p, _):
        return dynamics.linear_loss_from_stats(linear.end_to_end(p), jnp.eye(2), sxy, float(np.sum(s**2)))

    times = np.linspace(0.0, 8.0, 33)
    traj = dynamics.gradient_flow(loss, params, None, times=times, rtol=1e-8, atol=1e-12, solver=solver,
                                  observe=lambda p: jnp.diag(linear.end_to_end(p)), **extra)
    theory = np.stack([np.asarray(mode_strength(times, s=sk, u0=u0)) for sk in s], axis=1)
    np.testing.assert_allclose(np.asarray(traj.stats), theory, atol=rel_atol * s.max())


def test_unknown_solver_is_rejected():
    with pytest.raises(ValueError, match="solver='rk4' is invalid; allowed: tsit5, kvaerno5, rkc"):
        dynamics.gradient_flow(lambda p, _: jnp.sum(p**2), jnp.ones(2), None, times=[0.0, 1.0], solver="rk4")
