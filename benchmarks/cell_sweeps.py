"""Nonlinear and attention sweeps: saddle vs batched PyTorch vs a per-model loop (issue 15, item 2).

The two cells of ``cells.py`` (a two-layer ReLU net and multi-head linear
attention on in-context regression, each on its own sampled data set), swept
over ``--seeds`` seeds × the 4 init scales of ``cells.INIT_SCALES``, trained by

* saddle's sweep engine ``dynamics.sweep.run_sweep`` (one CPU device per core;
  autodiff of the model's loss, GD in ``lax.fori_loop``);
* hand-batched PyTorch (``cells.torch_batched``: torch.bmm / einsum on the
  stacked nets, hand-written gradients, all torch threads);
* a per-model PyTorch loop (``cells.torch_loop``: one net at a time, autograd +
  torch.optim.SGD, the faster of 1 and all threads), timed on its first nets
  and scaled linearly to all;

round-robin in one process (``timing.round_robin``), on the same data for the
same steps. Every implementation's final losses are compared with a float64
run of the same updates (``cells.torch_batched(dtype="float64")``) on the
first nets: max |L − L_f64| / L(t=0).

    python benchmarks/cell_sweeps.py --json out.json            # 1024 seeds × 4 scales, 100 steps: ~2 min on 2 cores
    python benchmarks/cell_sweeps.py --seeds 16 --steps 5 --repeats 1   # smoke test of the code
"""
from __future__ import annotations

import os

os.environ.setdefault("JAX_NUM_CPU_DEVICES", str(os.cpu_count()))

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402

import cells  # noqa: E402
import timing  # noqa: E402
from timing import finish  # noqa: E402
from dynamics.sweep import product_grid, run_sweep  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _loop_threads(kind, arrays, steps) -> int:
    """1 or all torch threads, whichever runs the per-model loop faster on 2 nets."""
    import torch

    secs = {}
    for t in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(t)
        two = {k: v[:2] for k, v in arrays.items()}
        secs[t] = min(timing.timed(lambda: cells.torch_loop(kind, two, steps))[1] for _ in range(2))
    torch.set_num_threads(os.cpu_count())
    return min(secs, key=secs.get)


def run_kind(kind: str, *, seeds: int, steps: int, repeats: int, loop_nets: int, batch_size: int,
             max_wait: float) -> dict:
    import torch

    grid = product_grid({"seed": np.arange(seeds), "init_scale": list(cells.INIT_SCALES[kind])})
    n = len(grid["seed"])
    arrays = cells.stacked(kind, grid["seed"], grid["init_scale"])
    k = min(loop_nets, n)
    head = {key: v[:k] for key, v in arrays.items()}
    initial = cells.initial_loss(kind, head)
    reference = cells.torch_batched(kind, head, steps, dtype="float64")
    threads = _loop_threads(kind, arrays, max(1, steps // 10))
    cell = cells.cell(kind, steps)

    def sweep():
        out, failed = run_sweep(cell, grid, batch_size=batch_size)
        if failed.any():
            raise RuntimeError(f"{kind}: {int(failed.sum())} cells diverged")
        return out["loss"]

    def loop():
        torch.set_num_threads(threads)
        try:
            return cells.torch_loop(kind, head, steps)
        finally:
            torch.set_num_threads(os.cpu_count())

    impls = {
        "saddle sweep (run_sweep, autodiff)": (f"run_sweep(batch_size={batch_size}, n_devices={len(jax.devices())}); "
                                               "jax.grad of the model's loss, lax.fori_loop", 1.0, sweep),
        "batched PyTorch (bmm/einsum, manual grads)": (f"{torch.get_num_threads()} threads, hand-written gradients",
                                                        1.0, lambda: cells.torch_batched(kind, arrays, steps)),
        "per-model PyTorch loop (autograd + optim.SGD)": (f"{threads} thread(s), the faster of 1 and {os.cpu_count()}; "
                                                          f"{k} of {n} nets timed, × {n / k:.1f}", n / k, loop),
    }
    log(f"  {kind}: {seeds} seeds × {len(cells.INIT_SCALES[kind])} init scales = {n} nets, {steps} steps")
    timings = timing.round_robin({name: v[2] for name, v in impls.items()}, repeats, max_wait=max_wait, log=log)
    rows = []
    work = cells.flops_per_step(kind) * n * steps
    for name, (how, scale, _) in impls.items():
        m = timings[name]
        times = [t * scale for t in m["times"]]
        losses = np.asarray(m["result"][:k], np.float64)
        row = {"name": name, "how": how, "min": min(times), "median": statistics.median(times),
               "first": m["first"] * scale, "nets_steps_per_s": n * steps / min(times),
               "gflops_best": work / min(times) / 1e9, "others_max": max(m["others"]),
               "cores_busy": m["busy"][int(np.argmin(m["times"]))],
               "max_rel_loss_err": float(np.max(np.abs(losses - reference) / initial))}
        rows.append(row)
        log(f"    {name:46s} {row['min']:8.2f} s min, {row['median']:8.2f} median (first {row['first']:.2f} s; "
            f"others ≤{row['others_max']:.0%} CPU; loss err {row['max_rel_loss_err']:.1e})")
    return {"kind": kind, "n": n, "seeds": seeds, "init_scales": list(cells.INIT_SCALES[kind]), "steps": steps,
            "eta": cells.ETA[kind], "flops_per_step": cells.flops_per_step(kind), "rows": rows, "checked_nets": k,
            "loss_ratio_median": float(np.median(reference / initial)), "loadavg": os.getloadavg()}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=1024, help="seeds per init scale (default 1024; 4 scales)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--loop-nets", type=int, default=16, help="nets the per-model loop runs (time scaled to all)")
    p.add_argument("--batch-size", type=int, default=16, help="run_sweep batch_size")
    p.add_argument("--kinds", default=",".join(cells.KINDS))
    p.add_argument("--wait-idle", type=float, default=10.0)
    p.add_argument("--wait-budget", type=float, default=60.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(os.cpu_count())
    # run_sweep compiles once per cell; the persistent cache keeps the timed calls from recompiling
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="saddle-bench-jax-cache-"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    timing._WAIT_BUDGET[0] = args.wait_budget
    start = time.perf_counter()
    result = {"xla_flags": os.environ.get("XLA_FLAGS", ""), "jax_devices": len(jax.devices()), "repeats": args.repeats,
              "torch_threads": torch.get_num_threads(), "kinds": [
                  run_kind(kind, seeds=args.seeds, steps=args.steps, repeats=args.repeats, loop_nets=args.loop_nets,
                           batch_size=args.batch_size, max_wait=args.wait_idle) for kind in args.kinds.split(",")]}
    return finish(result, start, args.json)


if __name__ == "__main__":
    main()
