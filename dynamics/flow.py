"""Continuous gradient flow τ dθ/dt = −∂L/∂θ, solved with diffrax.

Adaptive step sizes from a PID controller; the solution is sampled at the
requested times only, never stored as a whole trajectory. Two solvers:

* ``"tsit5"`` (default): explicit 5th-order Runge–Kutta (Tsitouras 2011). Cheapest
  per step; its step is bounded by stability, h ≲ 3.5/λ_max of the Hessian
  ∇²L/τ, whatever the accuracy asks.
* ``"kvaerno5"``: L-stable implicit ESDIRK of order 5 (Kværnø 2004), for stiff
  flows: after an escape the Hessian has eigenvalues λ_max ~ L s₁^{2−2/L} while
  the next escape may be ~10⁴ τ away (deep linear nets from small init), so the
  explicit step count grows like λ_max · t. Each step solves the stage equations
  by the chord method with the Jacobian −∇²L/τ linearised once per step, and
  the linear systems (I + γh∇²L/τ) Δ = r matrix-free by GMRES (Hessian-vector
  products; no Jacobian is ever formed, memory stays O(#params)). The step is
  then bounded by accuracy only.
* ``"rkc"``: stabilised explicit Runge–Kutta–Chebyshev of order 2 (``RKC``), for
  stiff flows whose Jacobian has a real spectrum (a gradient flow's −∇²L/τ):
  s stages per step with s ~ √(h λ_max) stretch the stability interval to
  ~0.65 s², so the step is bounded by accuracy at ~√(h λ_max) gradients per
  step and no linear solves. On the saddle-to-saddle depth-4 flow: 5,400 steps,
  4.1 CPU s per seed, against Tsit5's 3.1e5 steps (57 s) and Kvaerno5's 750
  steps (29 s, each step's nested Newton–GMRES loops cost ~39 ms).
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax
import numpy as np
import optimistix

from dynamics.trajectory import Trajectory, no_stats

SOLVERS = ("tsit5", "kvaerno5", "rkc")


class _KrylovChord(diffrax.VeryChord):
    """diffrax's VeryChord (Jacobian linearised once per step), with a matrix-free
    linear solver: its stored linear state holds a traced function (the
    linearised JVP), so only its arrays go through stop_gradient."""

    def step(self, fn, y, args, options, state, tags):
        del options, tags
        fx, aux = fn(y, args)
        jac, linear_state = state.linear_state
        arrays, rest = eqx.partition(linear_state, eqx.is_array)
        linear_state = eqx.combine(jax.lax.stop_gradient(arrays), rest)
        sol = lineax.linear_solve(jac, fx, self.linear_solver, state=linear_state, throw=False)
        new_y = jax.tree_util.tree_map(lambda a, b: a - b, y, sol.value)
        scale = jax.tree_util.tree_map(lambda v: self.atol + self.rtol * jnp.abs(v), new_y)
        diffsize = self.norm(jax.tree_util.tree_map(lambda a, b: a / b, sol.value, scale))
        new_state = type(state)(linear_state=state.linear_state, diff=sol.value, diffsize=diffsize,
                                diffsize_prev=state.diffsize, result=optimistix.RESULTS.promote(sol.result),
                                step=state.step + 1)
        return new_y, new_state, aux


class RKC(diffrax.AbstractAdaptiveSolver):
    """Runge–Kutta–Chebyshev, second order, damping ε = 2/13 (Sommeijer, Shampine &
    Verwer 1997, J. Comput. Appl. Math. 88, 315, Eqs. 2.1–2.5 and the error estimate
    of Sec. 2.3): an explicit method whose s stages stretch the real stability
    interval to β(s) ≈ 0.653 (s² − 1), for Jacobians with a real spectrum in
    [−ρ, 0], which a gradient flow's −∇²L/τ has away from saddles. Each step picks
    s = 1 + ⌈√(1 + 1.54 h ρ)⌉ (the RKC code's rule) from ρ, the Jacobian's spectral
    radius, estimated by ``power_iterations`` Jacobian-vector products warm-started
    from the previous step's vector (×1.2 safety); the step size is bounded by
    accuracy only, at ~√(hρ) gradients per step and no linear solves.

        Y₀ = y,  Y₁ = Y₀ + μ̃₁ h F(Y₀),
        Y_j = (1 − μ_j − ν_j) Y₀ + μ_j Y_{j−1} + ν_j Y_{j−2} + μ̃_j h F(Y_{j−1}) + γ̃_j h F(Y₀),
        μ_j = 2 b_j w₀/b_{j−1}, ν_j = −b_j/b_{j−2}, μ̃_j = 2 b_j w₁/b_{j−1},
        γ̃_j = −(1 − b_{j−1} T_{j−1}(w₀)) μ̃_j,  b_j = T_j''(w₀)/T_j'(w₀)² (b₀ = b₁ = b₂),
        w₀ = 1 + ε/s²,  w₁ = T_s'(w₀)/T_s''(w₀),  μ̃₁ = b₁ w₁,
        error estimate (12 (y − y₁) + 6 h (F(y) + F(y₁)))/15.
    """

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar = diffrax.ThirdOrderHermitePolynomialInterpolation
    power_iterations: int = 3
    max_stages: int = 1000

    def order(self, terms):
        return 2

    @staticmethod
    def _start_vector(y):
        # not orthogonal to any particular eigenvector: ones plus a small ramp
        return jax.tree_util.tree_map(lambda a: jnp.ones_like(a) + 0.1 * jnp.arange(a.size).reshape(a.shape) / a.size, y)

    def init(self, terms, t0, t1, y0, args):
        return terms.vf(t0, y0, args), self._start_vector(y0)

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        tmap = jax.tree_util.tree_map
        f0, v = solver_state
        f0 = jax.lax.cond(made_jump, lambda: terms.vf(t0, y0, args), lambda: f0)
        h = jnp.asarray(t1 - t0, dtype=jnp.result_type(float))
        vf = lambda y: terms.vf(t0, y, args)  # noqa: E731 (autonomous flows; t enters no stage)

        def norm(x):
            return jnp.sqrt(sum(jnp.sum(a**2) for a in jax.tree_util.tree_leaves(x)))

        def power(_, carry):
            u, _rho = carry
            n = norm(u)
            # a zero vector (a flat direction, e.g. exactly zero weights) restarts from the start vector
            u = jax.lax.cond(n > 0, lambda: tmap(lambda a: a / jnp.where(n > 0, n, 1.0), u),
                             lambda: self._start_vector(y0))
            w = jax.jvp(vf, (y0,), (u,))[1]
            return w, norm(w)

        v, rho = jax.lax.fori_loop(0, self.power_iterations, power, (v, jnp.zeros((), h.dtype)))
        rho = 1.2 * rho
        s = jnp.clip(1 + jnp.ceil(jnp.sqrt(1.0 + 1.54 * jnp.abs(h) * rho)), 2, self.max_stages).astype(int)
        eps = 2.0 / 13.0
        w0 = 1.0 + eps / s**2

        def cheb(_, c):  # (T_{j-1}, T_j, T'_{j-1}, T'_j, T''_{j-1}, T''_j) → j + 1
            t_a, t_b, d_a, d_b, e_a, e_b = c
            return (t_b, 2 * w0 * t_b - t_a, d_b, 2 * t_b + 2 * w0 * d_b - d_a, e_b, 4 * d_b + 2 * w0 * e_b - e_a)

        one, zero = jnp.ones((), h.dtype), jnp.zeros((), h.dtype)
        c1 = (one, w0, zero, one, zero, zero)  # j = 1
        cs = jax.lax.fori_loop(1, s, cheb, c1)
        w1 = cs[3] / cs[5]
        b2 = 1.0 / (4.0 * w0**2)  # T₂''/T₂'² = 4/(4w₀)²
        y1 = tmap(lambda a, f: a + b2 * w1 * h * f, y0, f0)

        def stage(j, carry):
            y_prev2, y_prev, c, b_prev2, b_prev = carry  # c holds T_{j-2}, T_{j-1} and derivatives
            t_a, t_b, d_a, d_b, e_a, e_b = c
            c_new = cheb(None, c)
            b_j = c_new[5] / c_new[3] ** 2
            mu = 2 * b_j * w0 / b_prev
            nu = -b_j / b_prev2
            mu_t = 2 * b_j * w1 / b_prev
            gamma_t = -(1 - b_prev * t_b) * mu_t
            f = vf(y_prev)
            y_new = tmap(lambda a0, a1, a2, fj, fz: (1 - mu - nu) * a0 + mu * a1 + nu * a2 + mu_t * h * fj
                         + gamma_t * h * fz, y0, y_prev, y_prev2, f, f0)
            return y_prev, y_new, c_new, b_prev, b_j

        _, y_s, _, _, _ = jax.lax.fori_loop(2, s + 1, stage, (y0, y1, c1, b2, b2))
        f1 = vf(y_s)
        err = tmap(lambda a, b, fa, fb: (12.0 * (a - b) + 6.0 * h * (fa + fb)) / 15.0, y0, y_s, f0, f1)
        dense = dict(y0=y0, y1=y_s, k0=tmap(lambda f: h * f, f0), k1=tmap(lambda f: h * f, f1))
        return y_s, err, dense, (f1, v), diffrax.RESULTS.successful


def make_solver(solver: str, rtol: float, atol: float, *, krylov_dim: int = 30, kappa: float = 1.0,
                gmres=lineax.GMRES):
    """The diffrax solver that ``gradient_flow(solver=name)`` uses.

    kvaerno5: chord (Newton) iterations in the step controller's scaled norm
    ‖·/(atol + rtol|y|)‖, stopped once their estimated remaining error
    (diffrax's VeryChord test, d·ρ/(1 − ρ) with ρ the contraction rate) is
    below ``kappa``. kappa = 1 stops them at the error the step controller
    itself accepts per step (diffrax's default 1e-2 asks 100× less, and a
    chord iteration that has not got there within 10 iterations rejects the
    step): on the saddle-to-saddle depth-2 flow it cut accepted + rejected
    steps from 636 to 260 with the transition times unchanged to 1e-6
    relative (benchmarks/stiff_flow.py). GMRES to 1e-2 of the tolerances (an
    inexact Newton step only costs iterations), with restart and stagnation
    window ``krylov_dim``. ``gmres``: the GMRES class (benchmarks pass a
    subclass that counts its iterations).
    """
    if solver == "tsit5":
        return diffrax.Tsit5()
    if solver == "rkc":
        return RKC()
    if solver == "kvaerno5":
        linear = gmres(rtol=1e-2 * rtol, atol=1e-2 * atol, restart=krylov_dim, stagnation_iters=krylov_dim)
        return diffrax.Kvaerno5(root_finder=_KrylovChord(rtol=rtol, atol=atol, kappa=kappa, linear_solver=linear))
    raise ValueError(f"solver={solver!r} is invalid; allowed: {', '.join(SOLVERS)}")


def gradient_flow(
    loss_fn: Callable,
    params: Any,
    data: Any,
    *,
    times,
    tau: float = 1.0,
    observe: Callable = no_stats,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 1_000_000,
    progress: bool = False,
    solver="tsit5",
) -> Trajectory:
    """Integrate τ dθ/dt = −∇_θ loss_fn(θ, data) from t = 0 and record at ``times``.

    Args:
      loss_fn, params, data: as in ``dynamics.descend`` (full batch).
      times: non-decreasing recording times ≥ 0 (GD step k ↔ t = k when τ = 1/η).
      tau: time constant τ.
      rtol, atol: PID controller tolerances; the defaults give ~1e-8 relative
        accuracy in float64.
      progress: tqdm bar over simulated time (diffrax's TqdmProgressMeter).
      solver: "tsit5" (default; explicit, for non-stiff flows), "rkc"
        (stabilised explicit, for stiff gradient flows) or "kvaerno5"
        (implicit, matrix-free; see the module docstring), or a diffrax
        solver (e.g. from ``make_solver``). RKC is second order: at equal
        rtol its error is larger than the fifth-order solvers' (saddle-to-
        saddle, rtol 1e-6: escape times within 2e-4–6e-4 relative of Tsit5's,
        vs 4e-8 between Tsit5 and Kvaerno5; each 10× smaller rtol cuts it
        2–4× and doubles RKC's steps), so tighten rtol where that matters.
    """
    if isinstance(solver, str) and solver not in SOLVERS:
        raise ValueError(f"solver={solver!r} is invalid; allowed: {', '.join(SOLVERS)}")
    if not isinstance(times, jax.core.Tracer):
        check = np.asarray(times, dtype=float)
        if check.ndim != 1 or check.size == 0 or check[0] < 0 or np.any(np.diff(check) < 0):
            raise ValueError(f"times must be a non-empty non-decreasing sequence ≥ 0, got {times!r}")
    ts = jnp.asarray(times, dtype=jnp.result_type(float))
    solver = make_solver(solver, rtol, atol) if isinstance(solver, str) else solver
    # An implicit solver's error estimate varies less smoothly on stiff flows; the PI
    # controller (0.3, 0.3) of diffrax's PIDController docs rejects fewer steps there
    # than the default I controller, which suits the smooth non-stiff case.
    pid = {"pcoeff": 0.3, "icoeff": 0.3} if isinstance(solver, diffrax.AbstractImplicitSolver) else {}
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")

    def vector_field(t, theta, args):
        return jax.tree_util.tree_map(lambda g: -g / tau, jax.grad(loss_fn)(theta, data))

    def summary(t, theta, args):
        return loss_fn(theta, data), observe(theta)

    saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=ts, fn=summary), diffrax.SubSaveAt(t1=True)])
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        solver,
        t0=0.0,
        t1=ts[-1],
        dt0=None,
        y0=params,
        saveat=saveat,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, **pid),
        max_steps=max_steps,
        progress_meter=diffrax.TqdmProgressMeter() if progress else diffrax.NoProgressMeter(),
    )
    (losses, stats), final = sol.ys
    final = jax.tree_util.tree_map(lambda a: a[-1], final)
    return Trajectory(ts.astype(losses.dtype), losses, stats, final)
