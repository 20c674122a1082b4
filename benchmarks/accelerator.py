"""Nets × steps per second on whatever JAX runs on (GPU if there is one), issue 15 item 4.

Workloads (float32 full-batch GD, the same on every backend):

* ``linear-32``, ``linear-64``: the two-layer linear nets of sweep_throughput.py
  (d = h = 32 / 64, W2ᵀ kept in the carry), 6 d³ flops per net per step;
* ``relu``, ``attention``: the cells of cells.py (two-layer ReLU net,
  multi-head linear attention on in-context regression).

For each workload and each number of nets (default 10⁴ and 10⁵) the saddle
sweep (``dynamics.sweep.run_sweep``, cells vmapped ``batch_size`` at a time,
one device per accelerator) trains every net from its seed; the step count is
a traced cell value, so one compiled program serves the warm-up (2 steps) and
the timed call. The steps of each timed call are chosen so that it lasts about
``--budget`` seconds (at least ``--min-steps``), from the rate of a short probe.
Batched PyTorch (hand-written gradients, torch.bmm / einsum) runs the same
updates on the same device, timed the same way. Then 10⁵ nets × 10⁴ steps of
``linear-32`` and ``relu`` in one call each (the issue's "10⁵ two-layer
networks × 10⁴ steps"), unless the measured rate says it would take longer
than ``--long-max`` seconds, in which case the time is extrapolated and marked
so. Final losses of the first nets are checked against a float64 CPU run.

Matmuls run in full float32 on both sides (``jax_default_matmul_precision =
"highest"``; torch's default disallows TF32), so the losses agree with float64
to float32 rounding.

    python benchmarks/accelerator.py --json out.json          # ~3-4 min on an H100/H200
    python benchmarks/accelerator.py --nets 1000,10000 --budget 2 --long-nets 0   # CPU, ~2 min on 2 cores
"""
from __future__ import annotations

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX and torch share the device

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import baselines  # noqa: E402
import cells  # noqa: E402
from dynamics.sweep import run_sweep  # noqa: E402

LIN_ETA, LIN_SCALE = 0.05, 0.1  # as sweep_throughput.py
WORKLOADS = ("linear-32", "linear-64", "relu", "attention")
LONG = ("linear-32", "relu")
CHECK_NETS = 8


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def backend() -> dict:
    dev = jax.devices()[0]
    info = {"platform": dev.platform, "device_kind": getattr(dev, "device_kind", "?"), "n_devices": len(jax.devices()),
            "jax": jax.__version__}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_device"] = "cuda" if (dev.platform == "gpu" and torch.cuda.is_available()) else "cpu"
        if info["torch_device"] == "cuda":
            info["torch_device_name"] = torch.cuda.get_device_name(0)
    except ImportError:
        info["torch"] = None
    return info


# ------------------------------------------------------------- linear nets

def linear_problem(seed, d):
    k_star, k1, k2 = jax.random.split(jax.random.key(seed), 3)
    w_star = jax.random.normal(k_star, (d, d), jnp.float32) / np.sqrt(d)
    w1 = (LIN_SCALE / np.sqrt(d)) * jax.random.normal(k1, (d, d), jnp.float32)
    w2 = (LIN_SCALE / np.sqrt(d)) * jax.random.normal(k2, (d, d), jnp.float32)
    return w1, w2, w_star


def linear_cell(d: int):
    """sweep_throughput's headline cell (W2ᵀ carried) with a traced step count."""

    def cell(values):
        w1, w2, w_star = linear_problem(values["seed"], d)

        def step(_, carry):
            a, b, bt = carry
            e = b @ a - w_star
            gb = e @ a.T
            return a - LIN_ETA * (bt @ e), b - LIN_ETA * gb, bt - LIN_ETA * gb.T

        a, b, _ = jax.lax.fori_loop(0, values["steps"], step, (w1, w2, w2.T))
        return {"loss": 0.5 * jnp.sum((b @ a - w_star) ** 2)}

    return cell


def linear_torch(arrays, steps, device):
    return baselines.torch_bmm(arrays["w1"], arrays["w2"], arrays["w_star"], steps, LIN_ETA, device=device)


def linear_reference(arrays, steps):
    a, b, s = (arrays[k].astype(np.float64) for k in ("w1", "w2", "w_star"))
    for _ in range(steps):
        e = b @ a - s
        a, b = a - LIN_ETA * (b.transpose(0, 2, 1) @ e), b - LIN_ETA * (e @ a.transpose(0, 2, 1))
    return 0.5 * np.sum((b @ a - s) ** 2, axis=(1, 2)), 0.5 * np.sum((arrays["w2"].astype(np.float64) @ arrays["w1"]
                                                                       - s) ** 2, axis=(1, 2))


# ---------------------------------------------------------------- workloads

class Workload:
    def __init__(self, name: str):
        self.name = name
        if name.startswith("linear"):
            d = int(name.split("-")[1])
            self.flops = 6.0 * d**3
            self.cell = linear_cell(d)
            self._stack = jax.jit(jax.vmap(lambda s: linear_problem(s, d)))
        else:
            self.flops = cells.flops_per_step(name)
            self.cell = cells.cell(name)

    def values(self, n: int, steps: int) -> dict:
        v = {"seed": np.arange(n), "steps": np.full(n, steps, np.int32)}
        if not self.name.startswith("linear"):
            scales = np.asarray(cells.INIT_SCALES[self.name], np.float32)
            v["init_scale"] = scales[np.arange(n) % len(scales)]  # seeds × init scales, interleaved
        return v

    def arrays(self, n: int) -> dict:
        """Host copies of the first n nets (params and data), as the baselines take them."""
        if self.name.startswith("linear"):
            return dict(zip(("w1", "w2", "w_star"), (np.array(x) for x in self._stack(jnp.arange(n)))))
        v = self.values(n, 0)
        return cells.stacked(self.name, v["seed"], v["init_scale"])

    def torch(self, arrays, steps, device):
        if self.name.startswith("linear"):
            return linear_torch(arrays, steps, device)
        return cells.torch_batched(self.name, arrays, steps, device=device)

    def reference(self, arrays, steps):
        """(final, initial) float64 losses of these nets."""
        if self.name.startswith("linear"):
            return linear_reference(arrays, steps)
        return (cells.torch_batched(self.name, arrays, steps, device="cpu", dtype="float64"),
                cells.initial_loss(self.name, arrays))


def saddle(w: Workload, n: int, steps: int, batch_size: int) -> np.ndarray:
    out, failed = run_sweep(w.cell, w.values(n, steps), batch_size=min(batch_size, n))
    if failed.any():
        raise RuntimeError(f"{w.name}: {int(failed.sum())} of {n} cells diverged")
    return out["loss"]


def _sync():
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    except ImportError:
        pass


def timed(fn):
    _sync()
    t0 = time.perf_counter()
    out = fn()
    _sync()
    return out, time.perf_counter() - t0


def rate_at(fn, n: int, *, budget: float, min_steps: int, max_steps: int) -> dict:
    """Warm up (2 steps), probe, then one call of enough steps to last ~budget s."""
    _, first = timed(lambda: fn(n, 2))
    probe_steps = min_steps
    _, t_probe = timed(lambda: fn(n, probe_steps))
    per_step = max(t_probe / probe_steps, 1e-9)
    steps = int(np.clip(budget / per_step, min_steps, max_steps))
    losses, secs = timed(lambda: fn(n, steps))
    return {"n": n, "steps": steps, "seconds": secs, "first_call_s": first,
            "nets_steps_per_s": n * steps / secs, "losses": losses}


def run(args) -> dict:
    def save():  # after every workload, so a run stopped at its time limit keeps what it measured
        result["seconds"] = time.perf_counter() - start
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))

    info = backend()
    log(f"backend: {info}")
    jax.config.update("jax_default_matmul_precision", "highest")
    dev = info.get("torch_device")
    result = {"backend": info, "budget_s": args.budget, "batch_size": args.batch_size, "workloads": {}}
    nets = [int(x) for x in args.nets.split(",")]
    start = time.perf_counter()
    for name in args.workloads.split(","):
        w = Workload(name)
        rec = {"flops_per_net_step": w.flops, "rows": []}
        check = w.arrays(CHECK_NETS)
        refs = {}
        for n in nets:
            impls = {"saddle sweep (run_sweep)": lambda n_, s_, w=w: saddle(w, n_, s_, args.batch_size)}
            with_torch = dev and not args.no_torch and n <= args.torch_max_nets
            if with_torch:
                arrays = w.arrays(n)
                impls[f"batched PyTorch ({dev})"] = lambda n_, s_, w=w, arrays=arrays: w.torch(
                    {k: v[:n_] for k, v in arrays.items()}, s_, dev)
            for impl, fn in impls.items():
                r = rate_at(fn, n, budget=args.budget, min_steps=args.min_steps, max_steps=args.max_steps)
                if r["steps"] not in refs:
                    refs[r["steps"]] = w.reference(check, r["steps"])
                ref, init = refs[r["steps"]]
                r["loss_err"] = float(np.max(np.abs(np.asarray(r.pop("losses")[:CHECK_NETS], np.float64) - ref) / init))
                r["impl"] = impl
                r["tflops"] = r["nets_steps_per_s"] * w.flops / 1e12
                rec["rows"].append(r)
                log(f"  {name:10s} n={n:>7d} {impl:28s} {r['nets_steps_per_s']:.3e} nets·steps/s "
                    f"({r['steps']} steps in {r['seconds']:.2f} s, {r['tflops']:.2f} TFLOP/s, first call "
                    f"{r['first_call_s']:.2f} s, loss err {r['loss_err']:.1e})")
            if with_torch:
                del arrays
        result["workloads"][name] = rec
        save()
    if args.long_nets:
        result["long"] = {}
        for name in LONG:
            w = Workload(name)
            n, steps = args.long_nets, args.long_steps
            rate = max((r["nets_steps_per_s"] for r in result["workloads"].get(name, {"rows": []})["rows"]
                        if r["impl"].startswith("saddle") and r["n"] == max(nets)), default=None)
            predicted = n * steps / rate if rate else float("inf")
            if predicted > args.long_max:
                result["long"][name] = {"n": n, "steps": steps, "seconds": predicted, "extrapolated": True}
                log(f"  long {name}: {n} nets × {steps} steps would take ~{predicted:.0f} s (> --long-max); extrapolated")
                continue
            saddle(w, n, 2, args.batch_size)  # compiled already at this size; warm the chunking path
            _, secs = timed(lambda w=w: saddle(w, n, steps, args.batch_size))
            result["long"][name] = {"n": n, "steps": steps, "seconds": secs, "extrapolated": False}
            log(f"  long {name}: {n} nets × {steps} steps in {secs:.1f} s")
            save()
    save()
    return result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="10000,100000", help="comma-separated numbers of nets (default 10000,100000)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated subset of {','.join(WORKLOADS)}")
    p.add_argument("--budget", type=float, default=3.0, help="seconds each timed call should last (default 3)")
    p.add_argument("--min-steps", type=int, default=20)
    p.add_argument("--max-steps", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=100_000, help="cells per vmap (default: all at once)")
    p.add_argument("--long-nets", type=int, default=100_000, help="nets of the long run (0: skip it)")
    p.add_argument("--long-steps", type=int, default=10_000)
    p.add_argument("--long-max", type=float, default=100.0, help="extrapolate the long run if it would take longer")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows")
    p.add_argument("--torch-max-nets", type=int, default=10**9, help="skip the PyTorch rows above this many nets")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    main()
