"""Timing on a shared machine: wait for idle CPUs, time calls round-robin, and
record how much CPU other processes took meanwhile (from /proc/stat)."""
from __future__ import annotations

import json
import os
import time

import numpy as np


def _cpu_ticks():
    """(busy, total) jiffies of the whole machine from /proc/stat (None off Linux)."""
    try:
        with open("/proc/stat") as fh:
            vals = [int(v) for v in fh.readline().split()[1:9]]
    except OSError:
        return None
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


_WAIT_BUDGET = [600.0]  # seconds of waiting left for the whole run (set by main)


def wait_idle(max_wait: float, threshold: float = 0.9, window: float = 0.25) -> float:
    """Wait until the machine is ≥ threshold idle over `window` s (at most max_wait s,
    and at most what is left of the run's waiting budget); return the idle fraction."""
    start = time.monotonic()
    deadline = start + min(max_wait, _WAIT_BUDGET[0])
    try:
        return _wait_idle(deadline, threshold, window)
    finally:
        _WAIT_BUDGET[0] = max(0.0, _WAIT_BUDGET[0] - (time.monotonic() - start))


def _wait_idle(deadline: float, threshold: float, window: float) -> float:
    while True:
        a = _cpu_ticks()
        if a is None:
            return float("nan")
        time.sleep(window)
        b = _cpu_ticks()
        idle = 1.0 - (b[0] - a[0]) / max(b[1] - a[1], 1)
        if idle >= threshold or time.monotonic() >= deadline:
            return idle


def timed(fn):
    """(result, seconds, share of the machine's CPU other processes used meanwhile,
    cores this process kept busy on average)."""
    t_a, own_a = _cpu_ticks(), os.times()
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    t_b, own_b = _cpu_ticks(), os.times()
    own_s = own_b.user + own_b.system - own_a.user - own_a.system
    others = float("nan")
    if t_a is not None:
        own = own_s * os.sysconf("SC_CLK_TCK")
        others = max(0.0, ((t_b[0] - t_a[0]) - own) / max(t_b[1] - t_a[1], 1))
    return result, seconds, others, own_s / seconds


def round_robin(impls: dict, repeats: int, *, max_wait: float, log=print) -> dict:
    """Warm each up once, then `repeats` rounds of one timed call each."""
    out = {}
    for name, fn in impls.items():
        result, seconds, _, _ = timed(fn)
        out[name] = {"first": seconds, "times": [], "others": [], "busy": [], "idle_before": [], "result": result}
    for r in range(repeats):
        for name, fn in impls.items():
            idle = wait_idle(max_wait)
            result, seconds, others, busy = timed(fn)
            rec = out[name]
            rec["times"].append(seconds)
            rec["others"].append(others)
            rec["busy"].append(busy)
            rec["idle_before"].append(idle)
            rec["result"] = result
        log(f"    round {r + 1}/{repeats} done")
    return out


def matmul_peak(size: int = 2048, repeats: int = 5, max_wait: float = 30) -> dict:
    """Best float32 GFLOP/s of a size × size matmul in NumPy, PyTorch and JAX (all cores)."""
    import jax
    import jax.numpy as jnp
    import torch

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(2))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    ja, jb = jax.device_put(a, jax.devices()[0]), jax.device_put(b, jax.devices()[0])
    jdot = jax.jit(jnp.dot)
    fns = {"np.matmul": lambda: a @ b, "torch.mm": lambda: ta @ tb,
           "jnp.dot": lambda: jdot(ja, jb).block_until_ready()}
    out = {}
    for name, fn in fns.items():
        fn()
        wait_idle(max_wait)
        best = min(timed(fn)[1] for _ in range(repeats))
        out[name] = 2.0 * size**3 / best / 1e9
    out["peak"] = max(out.values())
    return out


def finish(result: dict, start: float, json_path=None) -> dict:
    """Stamp ``result["seconds"]`` (wall time since ``start``, a perf_counter reading) and write
    ``result`` as JSON to ``json_path`` when one is given (how run_all.py collects each benchmark)."""
    result["seconds"] = time.perf_counter() - start
    if json_path:
        json_path.write_text(json.dumps(result, indent=1))
    return result
