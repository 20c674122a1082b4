"""Cold vs warm JAX compilation cache for the CLI (issue 15, item 3).

Runs whole ``saddle`` processes (``python -m experiments.cli``) with
``SADDLE_CACHE_DIR`` pointing at a fresh temporary directory: each command
first with the directory empty (cold: every program compiled and written),
then again (warm: programs loaded from disk). Wall and CPU (user +
system) seconds per process, imports and everything included: wall is what a
user waits for, CPU what the process did (less sensitive to other load).

    python benchmarks/cache_timing.py --json out.json   # saxe-modes smoke + smoke verify of all: ~4 min on 2 cores
    python benchmarks/cache_timing.py --quick           # saxe-modes smoke only

The CLI runs under ``$SADDLE_BENCH_CLI_PYTHON`` if set (an interpreter with all of
saddle's dependencies, e.g. blackjax for the SLT experiments' verify, when the
benchmark's own has torch but not those), else this interpreter.
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


def timed_cli(args, cache: Path, out_root: Path) -> tuple:
    """(wall seconds, CPU seconds user + system) of one CLI process."""
    env = {k: v for k, v in os.environ.items() if k != "SADDLE_NO_CACHE"}
    env.update(SADDLE_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    cmd = [os.environ.get("SADDLE_BENCH_CLI_PYTHON", sys.executable), "-m", "experiments.cli", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=out_root, capture_output=True, text=True, check=False)
    secs = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if proc.returncode not in (0, 1):  # verify exits 1 when a row fails; that is not this benchmark's business
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return secs, cpu


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="only `saddle run saxe-modes --smoke`")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    commands = [["run", "saxe-modes", "--smoke", "--no-progress"]]
    if not args.quick:
        commands.append(["verify"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, cmd in enumerate(commands):
            cache = tmp / f"cache{i}"
            times, cpus = [], []
            for attempt in ("cold", "warm"):
                extra = ["--out", str(tmp / f"run{i}-{attempt}")] if cmd[0] == "run" else []
                wall, cpu = timed_cli([*cmd, *extra], cache, tmp)
                times.append(wall)
                cpus.append(cpu)
                print(f"saddle {' '.join(cmd)} ({attempt}): {wall:.1f} s wall, {cpu:.1f} CPU s", file=sys.stderr,
                      flush=True)
            n_files = sum(1 for _ in cache.rglob("*") if _.is_file())
            size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
            rows.append({"command": "saddle " + " ".join(cmd), "cold": times[0], "warm": times[1],
                         "cold_cpu": cpus[0], "warm_cpu": cpus[1],
                         "cache_files": n_files, "cache_mib": size / 2**20})
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from experiments.jax_cache import MIN_COMPILE_SECONDS  # no jax import: only the CLI's threshold

    result = {"rows": rows, "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
              "min_compile_seconds": MIN_COMPILE_SECONDS}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
