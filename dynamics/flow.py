"""Continuous gradient flow τ dθ/dt = −∂L/∂θ, solved with diffrax.

Adaptive Tsit5 (5th order) with a PID step-size controller; the solution is
sampled at the requested times only, never stored as a whole trajectory.
"""
from __future__ import annotations

from typing import Any, Callable

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from dynamics.trajectory import Trajectory, no_stats


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
) -> Trajectory:
    """Integrate τ dθ/dt = −∇_θ loss_fn(θ, data) from t = 0 and record at ``times``.

    Args:
      loss_fn, params, data: as in ``dynamics.descend`` (full batch).
      times: non-decreasing recording times ≥ 0 (GD step k ↔ t = k when τ = 1/η).
      tau: time constant τ.
      rtol, atol: PID controller tolerances; the defaults give ~1e-8 relative
        accuracy in float64.
      progress: tqdm bar over simulated time (diffrax's TqdmProgressMeter).
    """
    if not isinstance(times, jax.core.Tracer):
        check = np.asarray(times, dtype=float)
        if check.ndim != 1 or check.size == 0 or check[0] < 0 or np.any(np.diff(check) < 0):
            raise ValueError(f"times must be a non-empty non-decreasing sequence ≥ 0, got {times!r}")
    ts = jnp.asarray(times, dtype=jnp.result_type(float))
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")

    def vector_field(t, theta, args):
        return jax.tree_util.tree_map(lambda g: -g / tau, jax.grad(loss_fn)(theta, data))

    def summary(t, theta, args):
        return loss_fn(theta, data), observe(theta)

    saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=ts, fn=summary), diffrax.SubSaveAt(t1=True)])
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        diffrax.Tsit5(),
        t0=0.0,
        t1=ts[-1],
        dt0=None,
        y0=params,
        saveat=saveat,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
        progress_meter=diffrax.TqdmProgressMeter() if progress else diffrax.NoProgressMeter(),
    )
    (losses, stats), final = sol.ys
    final = jax.tree_util.tree_map(lambda a: a[-1], final)
    return Trajectory(ts.astype(losses.dtype), losses, stats, final)
