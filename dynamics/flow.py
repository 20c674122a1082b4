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
"""
from __future__ import annotations

from typing import Any, Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax
import numpy as np
import optimistix

from dynamics.trajectory import Trajectory, no_stats

SOLVERS = ("tsit5", "kvaerno5")


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
      solver: "tsit5" (default; explicit, for non-stiff flows) or "kvaerno5"
        (implicit, matrix-free; for stiff flows, see the module docstring), or
        a diffrax solver (e.g. from ``make_solver``).
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
