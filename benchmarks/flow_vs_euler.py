"""Gradient flow accuracy per right-hand-side evaluation: adaptive diffrax vs Euler.

Trajectory: a two-layer linear net (in = hidden = out = 4) on a teacher with
singular values s = (3, 2, 1, 0.5) and white inputs (population statistics),
from a small aligned balanced init with every mode at u0 = 1e-3, integrated
to t = 15 τ (τ = 1). Each mode climbs a logistic from one saddle to the next;
the reference is the closed form u_α(t) of Saxe et al. 2014 (arXiv 1312.6120,
Eq. 8; ``theory.linear.mode_strength``), exact for this init. The error of a
run is max over 301 equally spaced times in [0, 15] and over the 4 modes of
|u_α(t) − u_α^theory(t)| (float64 throughout).

* adaptive: ``dynamics.gradient_flow`` (diffrax Tsit5 + PID controller) at a
  ladder of tolerances rtol (atol = rtol / 100);
* fixed step: forward Euler θ ← θ − dt ∇L(θ), which is ``dynamics.descend``
  with ``optax.sgd(dt)`` (GD with η = dt sits at t = k·dt).

A right-hand-side (RHS) evaluation is one gradient ∇L(θ). They are counted,
not inferred: the loss passes θ through an identity whose custom VJP fires a
``jax.debug.callback`` on every backward pass, so every gradient diffrax
takes (all Tsit5 stages, rejected steps, the initial step-size guess) is
counted, and the loss-only evaluations at the save times are not. Euler takes
exactly one gradient per step; the counter confirms that on a short run.

    python benchmarks/flow_vs_euler.py --json out.json    # ~1 min on 2 cores
    python benchmarks/flow_vs_euler.py --quick            # ~20 s
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import optax  # noqa: E402

import dynamics  # noqa: E402
from counting import counted_identity  # noqa: E402
import tasks  # noqa: E402
from models import linear  # noqa: E402
from theory.linear import mode_strength  # noqa: E402

S = (3.0, 2.0, 1.0, 0.5)
U0 = 1e-3
HORIZON = 15.0
N_TIMES = 301
WIDTH = 4

_COUNT = [0]


def _bump(_):
    _COUNT[0] += 1


_counted = counted_identity(_bump)


def setup():
    """Task statistics, initial params, loss (counting gradients), observer, save times, theory."""
    key_task, key_init = jax.random.split(jax.random.key(0))
    task = tasks.teacher(key_task, n_in=WIDTH, n_out=WIDTH, s=S)

    def loss(params, stats):
        sigma_xx, sigma_yx, trace_yy = stats
        w = linear.end_to_end(_counted(params))
        return dynamics.linear_loss_from_stats(w, sigma_xx, sigma_yx, trace_yy)

    params = linear.init_aligned(key_init, (WIDTH, WIDTH, WIDTH), u=task.u, v=task.v, u0=U0)
    observe = lambda p: {"modes": linear.mode_strengths(p, task.u, task.v)}  # noqa: E731
    times = np.linspace(0.0, HORIZON, N_TIMES)
    theory = np.asarray(mode_strength(times[:, None], s=task.s, u0=U0))
    return loss, params, (task.sigma_xx, task.sigma_yx, task.trace_yy), observe, times, theory


def adaptive(rtol: float, ctx) -> dict:
    loss, params, data, observe, times, theory = ctx
    _COUNT[0] = 0
    t0 = time.perf_counter()
    traj = dynamics.gradient_flow(loss, params, data, times=times, observe=observe, rtol=rtol, atol=rtol / 100)
    modes = np.asarray(traj.stats["modes"])
    jax.effects_barrier()
    return {"rtol": rtol, "rhs": _COUNT[0], "max_err": float(np.max(np.abs(modes - theory))),
            "seconds": time.perf_counter() - t0}


def euler(per_interval: int, ctx, *, count: bool = False) -> dict:
    """Forward Euler with dt = (times[1] − times[0]) / per_interval."""
    loss, params, data, observe, times, theory = ctx
    dt = (times[1] - times[0]) / per_interval
    record = np.arange(N_TIMES) * per_interval
    _COUNT[0] = 0
    t0 = time.perf_counter()
    fn = loss if count else _uncounted_loss(ctx)
    traj = dynamics.descend(fn, params, optax.sgd(dt), data, record_steps=record, observe=observe)
    modes = np.asarray(traj.stats["modes"])
    jax.effects_barrier()
    steps = int(record[-1])
    return {"dt": dt, "steps": steps, "rhs": steps, "counted": _COUNT[0] if count else None,
            "max_err": float(np.max(np.abs(modes - theory))), "seconds": time.perf_counter() - t0}


def _uncounted_loss(ctx):
    """The same loss without the callback (a callback per step would dominate long Euler runs)."""

    def loss(params, stats):
        sigma_xx, sigma_yx, trace_yy = stats
        return dynamics.linear_loss_from_stats(linear.end_to_end(params), sigma_xx, sigma_yx, trace_yy)

    return loss


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer tolerances and Euler steps (~20 s)")
    p.add_argument("--target", type=float, default=1e-6, help="max error to compare at")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    start = time.perf_counter()
    ctx = setup()

    rtols = [1e-4, 1e-7, 1e-10] if args.quick else [1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11]
    flow_rows = []
    for rtol in rtols:
        flow_rows.append(adaptive(rtol, ctx))
        log(f"  diffrax rtol={rtol:.0e}: {flow_rows[-1]['rhs']:7d} RHS, max err {flow_rows[-1]['max_err']:.2e}")

    check = euler(1, ctx, count=True)
    if check["counted"] != check["steps"]:
        raise RuntimeError(f"RHS counter saw {check['counted']} gradients in {check['steps']} Euler steps")
    per = [1, 10, 100, 1000] if args.quick else [1, 10, 100, 1000, 10000]
    euler_rows = []
    for m in per:
        euler_rows.append(euler(m, ctx))
        r = euler_rows[-1]
        log(f"  Euler dt={r['dt']:.1e}: {r['steps']:9d} RHS, max err {r['max_err']:.2e} ({r['seconds']:.1f} s)")

    # Euler is first order: err ≈ C·dt once dt is small. Fit C on the finest run
    # (the measured order between the two finest runs is reported alongside).
    fine, finer = euler_rows[-2], euler_rows[-1]
    order = np.log(fine["max_err"] / finer["max_err"]) / np.log(fine["dt"] / finer["dt"])
    c = finer["max_err"] / finer["dt"]
    euler_rhs_at_target = HORIZON / (args.target / c)

    ok = [r for r in flow_rows if r["max_err"] <= args.target]
    flow_at_target = min(ok, key=lambda r: r["rhs"]) if ok else None
    # A ratio with no extrapolation: the finest Euler run vs the cheapest diffrax
    # run that is at least as accurate.
    direct_ok = [r for r in flow_rows if r["max_err"] <= finer["max_err"]]
    direct = min(direct_ok, key=lambda r: r["rhs"]) if direct_ok else None
    result = {
        "s": S, "u0": U0, "horizon": HORIZON, "width": WIDTH, "n_times": N_TIMES, "target": args.target,
        "flow": flow_rows, "euler": euler_rows, "counter_check": check,
        "euler_order": float(order), "euler_C": float(c), "euler_rhs_at_target": float(euler_rhs_at_target),
        "flow_at_target": flow_at_target,
        "ratio_at_target": None if flow_at_target is None else float(euler_rhs_at_target / flow_at_target["rhs"]),
        "direct": None if direct is None else {"euler": finer, "flow": direct,
                                                "ratio": finer["rhs"] / direct["rhs"]},
        "seconds": time.perf_counter() - start,
    }
    log(f"  Euler order {order:.3f}; RHS for err {args.target:.0e}: {euler_rhs_at_target:.3g} (extrapolated); "
        f"diffrax: {flow_at_target and flow_at_target['rhs']}; ratio {result['ratio_at_target']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
