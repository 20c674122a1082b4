"""Peak memory of a 10,000-cell sweep that records log-spaced statistics.

Each cell is one two-layer linear net (in = hidden = out = 16, the problem of
``sweep_throughput.py``) trained by full-batch GD through the library path
(``models.linear`` + ``optax.sgd`` + ``dynamics.descend``), recording the loss
at 61 log-spaced steps (``dynamics.log_steps(steps, 60)``) plus its final
weights' norm. ``dynamics.sweep.run_sweep`` runs the 10,000 cells over every
CPU device, streaming finished chunks to a temporary folder, as ``saddle
sweep`` does.

The sweep runs in a child process and its peak resident set size is read
with ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` after it exits. A
baseline child that imports the same modules and runs a 1-cell sweep is
measured first, so the sweep's own footprint is the difference.

    python benchmarks/sweep_memory.py --json out.json    # ~30 s on 2 cores
    python benchmarks/sweep_memory.py --quick            # ~15 s
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 16
N_POINTS = 60


def child(n_cells: int, steps: int, batch_size: int) -> dict:
    """Run the sweep in this process; return what it produced."""
    os.environ.setdefault("JAX_NUM_CPU_DEVICES", str(os.cpu_count()))
    sys.path.insert(0, str(ROOT))
    import jax.numpy as jnp
    import numpy as np
    import optax

    import dynamics
    from dynamics.sweep import run_sweep
    from sweep_throughput import ETA, population_loss, problem

    record = dynamics.log_steps(steps, N_POINTS)

    def cell(values):
        w1, w2, w_star = problem(values["seed"], WIDTH)
        traj = dynamics.descend(population_loss, [w1, w2], optax.sgd(ETA), w_star, record_steps=record)
        return {"loss": traj.loss, "final_norm": jnp.sqrt(sum(jnp.sum(w**2) for w in traj.params))}

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        outputs, failed = run_sweep(cell, {"seed": np.arange(n_cells)}, out_dir=out, batch_size=batch_size)
    return {"cells": n_cells, "steps": steps, "recorded_points": int(outputs["loss"].shape[1]),
            "output_bytes": int(sum(v.nbytes for v in outputs.values())), "failed": int(failed.sum()),
            "seconds": time.perf_counter() - t0,
            "self_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(n_cells: int, steps: int, batch_size: int) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n_cells), str(steps), str(batch_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"sweep child failed:\n{proc.stderr[-3000:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    # ru_maxrss of RUSAGE_CHILDREN: the largest peak RSS among the waited-for children (KiB on Linux).
    info["children_maxrss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return info


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100 GD steps per cell instead of 1000 (~15 s)")
    p.add_argument("--cells", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--json", type=Path)
    p.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return {}
    steps = 100 if args.quick else 1000
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    baseline = run_child(1, steps, 1)
    log(f"  baseline (imports + 1-cell sweep): peak RSS {baseline['children_maxrss_mib']:.0f} MiB")
    sweep = run_child(args.cells, steps, args.batch_size)
    log(f"  {args.cells}-cell sweep: peak RSS {sweep['children_maxrss_mib']:.0f} MiB "
        f"(child's own {sweep['self_maxrss_mib']:.0f} MiB), {sweep['seconds']:.1f} s")
    result = {"width": WIDTH, "batch_size": args.batch_size, "baseline": baseline, "sweep": sweep,
              "peak_mib": sweep["children_maxrss_mib"],
              "sweep_minus_baseline_mib": sweep["self_maxrss_mib"] - baseline["self_maxrss_mib"]}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
