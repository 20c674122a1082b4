"""Throughput: thousands of two-layer linear nets trained by full-batch GD.

One problem, several implementations, timed side by side in one process:

* saddle's sweep engine ``dynamics.sweep.run_sweep`` with a cell function,
  three ways: the lean cell (the GD step written out under
  ``jax.lax.fori_loop``) with W2ᵀ kept in the loop carry (the headline: every
  dot then has an untransposed left operand, which XLA:CPU sends to YNNPACK),
  the lean cell as written (``b.T @ e``), and the library path
  (``models.linear`` + autodiff + ``optax.sgd`` + ``dynamics.descend``);
* a per-model PyTorch loop (one net at a time: autograd + ``torch.optim.SGD``,
  as a training loop is usually written; and hand-written with ``torch.mm``
  and in-place updates, no autograd);
* hand-batched NumPy (``np.matmul`` on stacked (n, d, d) weights);
* batched PyTorch (``torch.bmm`` on the same stacks);
* plain ``jax.jit(jax.vmap(cell))`` over all nets on one device (no sweep engine).

The problem (population-statistics GD, white inputs). Net i has a teacher
W*_i (d × d, entries N(0, 1/d)) and inputs x ~ N(0, I), so Σxx = I, Σyx = W*_i
and the loss is L = ½ E‖W*x − W2 W1 x‖² = ½ ‖W2 W1 − W*‖²_F. From W1, W2 with
entries N(0, σ²/d), σ = ``INIT_SCALE`` (small: saddle-to-saddle learning),
every implementation runs ``steps`` simultaneous GD updates

    E = W2 W1 − W*,   W1 ← W1 − η W2ᵀ E,   W2 ← W2 − η E W1ᵀ

in float32 and returns the final loss ½‖E‖²_F. With in = hidden = out = d that
is 3 matmuls of d × d × d per step, 6 d³ flops per net per step; the rates
count these only (the 5 d² elementwise flops per step, 2.5 % more at d = 32,
are counted for no one). Every implementation's final losses are compared with
a float64 NumPy run of the same updates on the first nets.

Timing: one warm-up call each (JAX compiles in it; its time is reported as
"first call"), then ``--repeats`` rounds in which every implementation runs
once, round-robin, so load from other processes hits all alike; min and median
over the rounds. Before each timed call the script waits (up to
``--wait-idle`` s) for the machine to be ≥ 90 % idle, and it records the CPU
share other processes took during each call.

    python benchmarks/sweep_throughput.py --json out.json      # both grids, ~6 min on 2 cores
    python benchmarks/sweep_throughput.py --quick               # 50/100 steps, ~2 min
    python benchmarks/sweep_throughput.py --steps 5 --repeats 1 # smoke test of the code
    python benchmarks/run_all.py                                # everything → BENCHMARKS.md
"""
from __future__ import annotations

import os

# One CPU device per core, so run_sweep can shard cells over the cores; this
# must be set before jax is imported.
os.environ.setdefault("JAX_NUM_CPU_DEVICES", str(os.cpu_count()))

import argparse  # noqa: E402
import collections  # noqa: E402
import functools  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import dynamics  # noqa: E402
import timing  # noqa: E402
from baselines import (faster_threads, numpy_batched, numpy_reference, torch_bmm, torch_loop,  # noqa: E402
                       torch_loop_inplace)
from timing import finish, matmul_peak, round_robin, timed, wait_idle  # noqa: E402
from dynamics.sweep import run_sweep  # noqa: E402
from models import linear  # noqa: E402

ETA = 0.05          # GD rate η: t = 50 τ after 1000 steps; stable, η · 2 s_max ≈ 0.2 < 2
INIT_SCALE = 0.1    # σ: W1, W2 entries N(0, σ²/d), so initial mode strengths ~σ² = 0.01
GRIDS = {"full": [(32, 1024, 1000), (64, 256, 1000)], "quick": [(32, 1024, 50), (64, 256, 100)]}


def flops(d: int, n: int, steps: int) -> float:
    """6 d³ flops per net per step: three d × d × d matmuls (multiply + add)."""
    return 6.0 * d**3 * n * steps


# ------------------------------------------------------------------ problem

def problem(seed, d: int):
    """(W1, W2, W*) of one net, float32, from an integer seed (jit/vmap-able)."""
    k_star, k1, k2 = jax.random.split(jax.random.key(seed), 3)
    w_star = jax.random.normal(k_star, (d, d), jnp.float32) / np.sqrt(d)
    w1 = (INIT_SCALE / np.sqrt(d)) * jax.random.normal(k1, (d, d), jnp.float32)
    w2 = (INIT_SCALE / np.sqrt(d)) * jax.random.normal(k2, (d, d), jnp.float32)
    return w1, w2, w_star


def stacked_problem(n: int, d: int):
    """The n nets' (W1, W2, W*) as writable numpy (n, d, d) float32 stacks, for the baselines."""
    return tuple(np.array(a) for a in jax.jit(jax.vmap(lambda s: problem(s, d)))(jnp.arange(n)))


def population_loss(params, w_star):
    """L = ½‖W2 W1 − W*‖²_F, the MSE ½E‖W*x − W2W1x‖² for white inputs x."""
    return 0.5 * jnp.sum((linear.end_to_end(params) - w_star) ** 2)


# --------------------------------------------------------------- saddle side

def lean_cell(d: int, steps: int, eta: float = ETA, unroll: int = 1, carry_transpose: bool = False):
    """Cell: seed → final loss, the GD step written out under lax.fori_loop.

    carry_transpose: also carry W2ᵀ (updated with the transposed gradient, so it
    stays exactly W2ᵀ) and form W2ᵀE as (W2ᵀ) @ E; then no dot has a
    transposed left operand (XLA:CPU sends those to Eigen instead of YNNPACK).
    """

    def cell(values):
        w1, w2, w_star = problem(values["seed"], d)

        def step(_, carry):
            a, b = carry
            e = b @ a - w_star
            return a - eta * (b.T @ e), b - eta * (e @ a.T)

        def step_t(_, carry):
            a, b, bt = carry
            e = b @ a - w_star
            gb = e @ a.T
            return a - eta * (bt @ e), b - eta * gb, bt - eta * gb.T

        if carry_transpose:
            a, b, _ = jax.lax.fori_loop(0, steps, step_t, (w1, w2, w2.T), unroll=unroll)
        else:
            a, b = jax.lax.fori_loop(0, steps, step, (w1, w2), unroll=unroll)
        return {"loss": 0.5 * jnp.sum((b @ a - w_star) ** 2)}

    return cell


def descend_cell(d: int, steps: int, eta: float = ETA):
    """Cell: seed → final loss via the library path: models.linear params,
    autodiff of the population loss, optax.sgd, dynamics.descend."""

    def cell(values):
        w1, w2, w_star = problem(values["seed"], d)
        traj = dynamics.descend(population_loss, [w1, w2], optax.sgd(eta), w_star, record_steps=[steps])
        return {"loss": traj.loss[-1]}

    return cell


def saddle_sweep(cell, n: int, *, batch_size: int, n_devices: int) -> np.ndarray:
    """The losses of n cells (seeds 0..n-1) from dynamics.sweep.run_sweep."""
    out, failed = run_sweep(cell, {"seed": np.arange(n)}, batch_size=batch_size, n_devices=n_devices)
    if failed.any():
        raise RuntimeError(f"{int(failed.sum())} cells diverged")
    return out["loss"]


def jax_vmap(cell, n: int):
    """Plain jit(vmap(cell)) over all n nets at once on the default device."""
    f = jax.jit(jax.vmap(lambda s: cell({"seed": s})["loss"]))
    seeds = jnp.arange(n)
    return lambda: np.asarray(f(seeds))


def agreement(losses: np.ndarray, reference: np.ndarray, initial: np.ndarray) -> float:
    """max_i |L_i − L_i(float64)| / L_i(t=0): float32 drift relative to the loss scale."""
    k = len(reference)
    return float(np.max(np.abs(np.asarray(losses[:k], np.float64) - reference) / initial[:k]))


# ------------------------------------------------------------- explanations

def _computations(hlo: str) -> dict:
    comps, name, body = {}, None, []
    for line in hlo.splitlines():
        m = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if m:
            name, body = m.group(1), []
        elif line.startswith("}") and name:
            comps[name] = body
            name = None
        elif name:
            body.append(line.strip())
    return comps


def step_census(cell, steps: int, batch: int) -> dict:
    """Kinds of operations XLA runs per GD step: the body of the while loop
    with trip count `steps` in the optimised HLO of jit(vmap(cell))."""
    hlo = jax.jit(jax.vmap(cell)).lower({"seed": jnp.arange(batch)}).compile().as_text()
    comps = _computations(hlo)
    for lines in comps.values():
        for line in lines:
            if " while(" in line and f'"known_trip_count":{{"n":"{steps}"}}' in line:
                body = re.search(r"body=%?([\w.\-]+)", line).group(1)
                kinds = collections.Counter()
                for op in comps[body]:
                    if "__ynn_fusion" in op:
                        kinds["YNNPACK dot"] += 1
                    elif re.search(r"\} dot\(", op):
                        kinds["Eigen dot"] += 1
                    elif "kind=kLoop" in op and not re.search(r"= s32\[\]", op):
                        kinds["elementwise fusion"] += 1
                    elif re.search(r"\} copy\(", op):
                        kinds["copy"] += 1
                    elif "transpose(" in op:
                        kinds["transpose"] += 1
                return dict(kinds)
    return {}


def dot_bounds(d: int, batch: int, n_devices: int, iters: int = 300, repeats: int = 5, max_wait: float = 30) -> dict:
    """GFLOP/s of each kind of batched d×d×d dot alone, as the sweep runs it:
    `batch` nets per device, shard_map over n_devices, `iters` dependent dots
    in a fori_loop (x ← x·Q with orthogonal Q, so values stay O(1))."""
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = jax.make_mesh((n_devices,), ("cells",), devices=jax.devices()[:n_devices])
    spec = PartitionSpec("cells")
    q = np.linalg.qr(np.random.default_rng(0).standard_normal((n_devices * batch, d, d)))[0].astype(np.float32)
    x = jax.device_put(q, NamedSharding(mesh, spec))
    kinds = {"A·B": "bij,bjk->bik", "A·Bᵀ": "bij,bkj->bik", "Aᵀ·B": "bji,bjk->bik"}
    out = {}
    for name, eq in kinds.items():
        def local(y, eq=eq):
            return jax.lax.fori_loop(0, iters, lambda _, z: jnp.einsum(eq, z, y), y)

        f = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=spec))
        f(x).block_until_ready()
        wait_idle(max_wait)
        best = min(timed(lambda: f(x).block_until_ready())[1] for _ in range(repeats))
        out[name] = 2.0 * d**3 * n_devices * batch * iters / best / 1e9
    # The headline step's dots: E = W2·W1 and (W2ᵀ)·E are A·B, E·W1ᵀ is A·Bᵀ.
    out["3 dots, harmonic"] = 3.0 / (2.0 / out["A·B"] + 1.0 / out["A·Bᵀ"])
    return out


# -------------------------------------------------------------------- main

SADDLE_ROWS = ("saddle sweep, lean cell, W2ᵀ carried", "saddle sweep, lean cell", "saddle sweep via dynamics.descend")


def run_grid(d: int, n: int, steps: int, *, repeats: int, loop_nets: int, batch_size: int,
             n_devices: int, max_wait: float, log=print) -> dict:
    fl = flops(d, n, steps)
    w1, w2, w_star = stacked_problem(n, d)
    k = min(loop_nets, n)
    reference = numpy_reference(w1[:k], w2[:k], w_star[:k], steps, ETA)
    initial = 0.5 * np.sum((w2[:k].astype(np.float64) @ w1[:k] - w_star[:k]) ** 2, axis=(1, 2))
    calib_steps = max(1, steps // 10)
    th_loop = faster_threads(torch_loop, w1, w2, w_star, calib_steps, ETA)
    th_hand = faster_threads(torch_loop_inplace, w1, w2, w_star, calib_steps, ETA)
    sweep_how = f"run_sweep(batch_size={batch_size}, n_devices={n_devices})"
    sweep = functools.partial(saddle_sweep, n=n, batch_size=batch_size, n_devices=n_devices)
    impls = {
        SADDLE_ROWS[0]: (sweep_how + "; lax.fori_loop, W2ᵀ kept in the carry", 1.0,
                         lambda: sweep(lean_cell(d, steps, carry_transpose=True))),
        SADDLE_ROWS[1]: (sweep_how + "; lax.fori_loop, b.T @ e", 1.0, lambda: sweep(lean_cell(d, steps))),
        SADDLE_ROWS[2]: (sweep_how + "; models.linear + autodiff + optax.sgd", 1.0,
                         lambda: sweep(descend_cell(d, steps))),
        "plain jax.jit(jax.vmap(cell)), 1 device": ("lean cell, all nets in one vmap, no sweep engine", 1.0,
                                                    jax_vmap(lean_cell(d, steps), n)),
        "batched PyTorch (torch.bmm)": (f"{torch_threads()} threads, in place", 1.0, lambda: torch_bmm(w1, w2, w_star, steps, ETA)),
        "hand-batched NumPy (np.matmul)": ("(n, d, d) stacks, in place", 1.0, lambda: numpy_batched(w1, w2, w_star, steps, ETA)),
        "per-model PyTorch loop (autograd + optim.SGD)":
            (f"{th_loop} thread(s), the faster of 1 and {os.cpu_count()}; {k} of {n} nets timed, × {n / k:.1f} "
             "(time is linear in nets)", n / k, lambda: torch_loop(w1[:k], w2[:k], w_star[:k], steps, ETA, threads=th_loop)),
        "per-model PyTorch loop, hand-written (torch.mm, in place)":
            (f"{th_hand} thread(s), the faster of 1 and {os.cpu_count()}; {k} of {n} nets timed, × {n / k:.1f}", n / k,
             lambda: torch_loop_inplace(w1[:k], w2[:k], w_star[:k], steps, ETA, threads=th_hand)),
    }
    log(f"  grid d={d}, n={n}, {steps} steps: {fl / 1e9:.0f} GFLOP per run")
    timings = round_robin({name: v[2] for name, v in impls.items()}, repeats, max_wait=max_wait, log=log)
    rows = []
    for name, (how, scale, _) in impls.items():
        m = timings[name]
        times = [t * scale for t in m["times"]]
        row = {"name": name, "how": how, "times": times, "min": min(times), "median": statistics.median(times),
               "first": m["first"] * scale, "gflops_best": fl / min(times) / 1e9,
               "gflops_median": fl / statistics.median(times) / 1e9, "others_max": max(m["others"]),
               "cores_busy": m["busy"][int(np.argmin(m["times"]))],
               "idle_before_min": min(m["idle_before"]),
               "max_rel_loss_err": agreement(m["result"], reference, initial)}
        rows.append(row)
        log(f"    {name:42s} {row['gflops_best']:7.1f} GFLOP/s best, {row['gflops_median']:7.1f} median "
            f"(first call {row['first']:.2f} s; others used ≤{row['others_max']:.0%} CPU; loss err {row['max_rel_loss_err']:.1e})")
    return {"d": d, "n": n, "steps": steps, "flops": fl, "rows": rows, "checked_nets": k,
            "final_loss_median": float(np.median(reference)), "initial_loss_median": float(np.median(initial))}


def sweep_call_cost(d: int, n: int, *, batch_size: int, n_devices: int, repeats: int = 3) -> float:
    """Seconds run_sweep spends besides training: a 1-step cell (tracing, lowering,
    loading the compiled program from JAX's persistent cache, chunking, transfers)."""
    cell = lean_cell(d, 1, carry_transpose=True)
    saddle_sweep(cell, n, batch_size=batch_size, n_devices=n_devices)  # compile once
    return min(timed(lambda: saddle_sweep(cell, n, batch_size=batch_size, n_devices=n_devices))[1]
               for _ in range(repeats))


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


LEVERS = [  # (label, n_devices, batch_size, unroll, carry_transpose); the first differs from the headline
    ("1 device", 1, 16, 1, True),
    ("one device per core (headline setting)", None, 16, 1, True),
    ("batch_size 64", None, 64, 1, True),
    ("batch_size 256", None, 256, 1, True),
    ("fori_loop unroll=4", None, 16, 4, True),
    ("W2ᵀ not carried (b.T @ e)", None, 16, 1, False),
]


# The levers timed again under each other XLA_FLAGS setting (run_all.py): the ones flags act on.
FLAG_LEVERS = ("1 device", "one device per core (headline setting)", "W2ᵀ not carried (b.T @ e)")


def levers(d: int, n: int, steps: int, *, repeats: int, max_wait: float, labels=None, log=print) -> list:
    """Saddle sweep GFLOP/s of the lean cell over n_devices / batch_size / unroll / formulation."""
    impls = {}
    for label, n_dev, bs, unroll, ct in LEVERS:
        if labels is not None and label not in labels:
            continue
        n_dev = n_dev or len(jax.devices())
        cell = lean_cell(d, steps, unroll=unroll, carry_transpose=ct)
        impls[label] = (n_dev, bs, unroll, ct,
                        lambda cell=cell, n_dev=n_dev, bs=bs: saddle_sweep(cell, n, batch_size=bs, n_devices=n_dev))
    timings = round_robin({k: v[-1] for k, v in impls.items()}, repeats, max_wait=max_wait, log=log)
    fl = flops(d, n, steps)
    rows = []
    for label, (n_dev, bs, unroll, ct, _) in impls.items():
        m = timings[label]
        rows.append({"label": label, "n_devices": n_dev, "batch_size": bs, "unroll": unroll, "carry_transpose": ct,
                     "min": min(m["times"]), "median": statistics.median(m["times"]),
                     "gflops_best": fl / min(m["times"]) / 1e9, "gflops_median": fl / statistics.median(m["times"]) / 1e9,
                     "others_max": max(m["others"]), "cores_busy": m["busy"][int(np.argmin(m["times"]))]})
        log(f"    lever {label:50s} {rows[-1]['gflops_best']:7.1f} GFLOP/s best, {rows[-1]['gflops_median']:7.1f} median")
    return rows


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer steps (~1 min)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds (after one warm-up call each)")
    p.add_argument("--loop-flops", type=float, default=None,
                   help="flops the per-model PyTorch loops run (that many nets; time extrapolated to all); "
                   "default 6e9, 1e9 with --quick")
    p.add_argument("--batch-size", type=int, default=16, help="run_sweep batch_size (cells per vmap)")
    p.add_argument("--n-devices", type=int, default=len(jax.devices()), help="run_sweep n_devices")
    p.add_argument("--wait-idle", type=float, default=10.0, help="max seconds to wait for ≥ 90%% idle CPU before a timed call")
    p.add_argument("--wait-budget", type=float, default=60.0, help="max seconds of such waiting in the whole run")
    p.add_argument("--steps", type=int, help="GD steps on every grid (default 1000; 50 and 100 with --quick)")
    p.add_argument("--levers", action="store_true", help="also time the lean cell's levers on grid 1 (fewer steps)")
    p.add_argument("--levers-only", action="store_true",
                   help="only time the levers XLA flags act on (FLAG_LEVERS) on grid 1")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(os.cpu_count())
    # run_sweep builds a new jit per call; JAX's persistent cache lets the timed
    # calls reuse the warm-up's compiled program (the warm-up, compile included,
    # is reported as "first call").
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="saddle-bench-jax-cache-"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    timing._WAIT_BUDGET[0] = args.wait_budget
    start = time.perf_counter()
    grids_spec = [(d, n, args.steps or steps) for d, n, steps in GRIDS["quick" if args.quick else "full"]]
    result = {"eta": ETA, "init_scale": INIT_SCALE, "jax_devices": len(jax.devices()),
              "torch_threads": torch.get_num_threads(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
              "batch_size": args.batch_size, "n_devices": args.n_devices, "repeats": args.repeats}
    if not args.levers_only:
        log(f"peak matmul (2048², float32, best of 5) on {len(jax.devices())} JAX CPU devices ...")
        result["peak"] = matmul_peak(max_wait=args.wait_idle)
        log(f"  {result['peak']}")
        loop_flops = args.loop_flops or (1e9 if args.quick else 6e9)
        result["grids"] = [
            run_grid(d, n, steps, repeats=args.repeats, loop_nets=max(1, round(loop_flops / flops(d, 1, steps))),
                     batch_size=args.batch_size, n_devices=args.n_devices, max_wait=args.wait_idle, log=log)
            for d, n, steps in grids_spec]
        result["dot_bounds"] = {d: dot_bounds(d, args.batch_size, args.n_devices, iters=100 if args.quick else 300,
                                              max_wait=args.wait_idle) for d, _, _ in grids_spec}
        log(f"  dot bounds: {result['dot_bounds']}")
        result["sweep_call_cost"] = {d: sweep_call_cost(d, n, batch_size=args.batch_size, n_devices=args.n_devices)
                                     for d, n, _ in grids_spec}
        log(f"  run_sweep's cost besides training (1-step cell): {result['sweep_call_cost']}")
    if args.levers or args.levers_only:
        d, n, _ = grids_spec[0]
        steps = args.steps or (100 if args.quick else 200)
        log(f"  levers (lean cell, d={d}, n={n}, {steps} steps; XLA_FLAGS={result['xla_flags']!r})")
        result["levers"] = {"d": d, "n": n, "steps": steps,
                            "rows": levers(d, n, steps, repeats=args.repeats, max_wait=args.wait_idle, log=log,
                                           labels=FLAG_LEVERS if args.levers_only else None)}
        result["levers"]["census"] = {
            name: step_census(make(d, 1000), 1000, args.batch_size) for name, make in
            [("lean cell, W2ᵀ carried", lambda d, s: lean_cell(d, s, carry_transpose=True)), ("lean cell", lean_cell),
             ("dynamics.descend", descend_cell)]}
        log(f"  per-step XLA ops: {result['levers']['census']}")
    if not args.levers_only:
        # Peak again at the end; the machine is shared, the better of the two counts.
        again = matmul_peak(max_wait=args.wait_idle)
        result["peak"] = {k: max(v, again[k]) for k, v in result["peak"].items()}
        log(f"  peak (best of start and end): {result['peak']}")
    return finish(result, start, args.json)


if __name__ == "__main__":
    main()
