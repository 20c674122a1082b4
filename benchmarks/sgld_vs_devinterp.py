"""SGLD chain-steps per second: saddle (``dynamics.sgld.sample``, JAX, chains under
vmap) vs devinterp (PyTorch) on the same reduced-rank regression problem.

Problem: ``tasks.reduced_rank`` (n_in, n_hidden, n_out) = (6, 4, 6), true rank 2,
n = 1000 samples, full-batch SGLD (batch = n), nβ = n/log n, γ = 1, step 1e-4
(a step both accept), ``--chains`` chains × ``--steps`` steps, float32 on both sides,
one process each, compile / warm-up excluded (one untimed run first). A chain-step is
one SGLD update of one chain (one full-batch gradient).

    python benchmarks/sgld_vs_devinterp.py --torch-python /work/venv-bench/bin/python

prints a markdown section for BENCHMARKS.md (and writes it to ``--out``). devinterp
and torch==2.13.0 live only in the benchmark environment given by --torch-python
(``python -m venv /work/venv-bench && /work/venv-bench/bin/pip install torch==2.13.0 &&
/work/venv-bench/bin/pip install devinterp``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES, RANK, N, STEP = (6, 4, 6), 2, 1000, 1e-4


def _task():
    # loaded from its file: the tasks package imports jax, absent from the torch environment
    import importlib.util

    spec = importlib.util.spec_from_file_location("reduced_rank", ROOT / "tasks" / "reduced_rank.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reduced_rank = module.reduced_rank
    return reduced_rank(0, n_in=SIZES[0], n_hidden=SIZES[1], n_out=SIZES[2], rank=RANK, n=N)


def time_saddle(chains: int, steps: int, repeats: int) -> dict:
    import jax
    import numpy as np

    from dynamics import sgld
    from tasks.reduced_rank import loss

    task = _task()
    params = {k: np.asarray(v, np.float32) for k, v in task.params.items()}
    data = (task.x.astype(np.float32), task.y.astype(np.float32))
    run = lambda k: sgld.sample(loss, params, data, key=jax.random.key(k), step_size=STEP, num_chains=chains,
                                num_steps=steps, gamma=1.0)
    np.asarray(run(0).loss)  # compile
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        out = run(r + 1)
        np.asarray(out.loss)
        times.append(time.perf_counter() - start)
    return {"best_s": min(times), "chain_steps_per_s": chains * steps / min(times)}


def time_devinterp(chains: int, steps: int, repeats: int) -> dict:
    """devinterp 2.x samples a HuggingFace Dataset with an "input_ids" column and a per-token
    loss; a regression toy goes in as rows input_ids = [i, i] (sample index i) with a
    loss_fn that looks up (x_i, y_i) and returns the per-sample loss as one "token"."""
    import datasets
    import torch
    from devinterp.slt.llc import llc

    torch.set_num_threads(os.cpu_count() or 1)
    task = _task()
    x, y = torch.tensor(task.x, dtype=torch.float32), torch.tensor(task.y, dtype=torch.float32)

    class RRR(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(SIZES[0], SIZES[1], bias=False)
            self.b = torch.nn.Linear(SIZES[1], SIZES[2], bias=False)
            with torch.no_grad():
                self.a.weight.copy_(torch.tensor(task.params["a"], dtype=torch.float32))
                self.b.weight.copy_(torch.tensor(task.params["b"], dtype=torch.float32))

        def forward(self, inp):
            return self.b(self.a(inp))

    def loss_fn(model, input_ids):
        idx = input_ids[:, 0].long()
        return 0.5 * ((y[idx] - model(x[idx])) ** 2).sum(dim=-1, keepdim=True)  # (batch, seq − 1 = 1)

    dataset = datasets.Dataset.from_dict({"input_ids": [[i, i] for i in range(N)]}).with_format("torch")
    n_beta = N / math.log(N)

    def run(seed):
        return llc(RRR(), dataset, {}, lr=STEP, n_beta=n_beta, loss_fn=loss_fn, localization=1.0,
                   num_chains=chains, num_draws=steps, batch_size=N, num_burnin_steps=0, num_init_loss_batches=1,
                   init_seed=seed, device="cpu")

    run(0)
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        run(r + 1)
        times.append(time.perf_counter() - start)
    return {"best_s": min(times), "chain_steps_per_s": chains * steps / min(times)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--devinterp-chains", type=int, default=2, help="fewer: devinterp runs ~10 chain-steps/s here")
    parser.add_argument("--devinterp-steps", type=int, default=100)
    parser.add_argument("--torch-python", default=None, help="python of the environment with torch==2.13.0 + devinterp")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "sgld_vs_devinterp.md"))
    parser.add_argument("--only", choices=["saddle", "devinterp"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.only:
        fn = time_saddle if args.only == "saddle" else time_devinterp
        print(json.dumps(fn(args.chains, args.steps, args.repeats)))
        return 0
    if args.torch_python is None:
        print("saddle: error: --torch-python (the benchmark venv with devinterp) is required", file=sys.stderr)
        return 2
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    common = [__file__, "--chains", str(args.chains), "--steps", str(args.steps), "--repeats", str(args.repeats)]
    saddle = json.loads(subprocess.run([sys.executable, *common, "--only", "saddle"], env=env, check=True,
                                       capture_output=True, text=True).stdout.strip().splitlines()[-1])
    common_devi = [__file__, "--chains", str(args.devinterp_chains), "--steps", str(args.devinterp_steps),
                   "--repeats", str(args.repeats)]
    devi = json.loads(subprocess.run([args.torch_python, *common_devi, "--only", "devinterp"], env=env, check=True,
                                     capture_output=True, text=True).stdout.strip().splitlines()[-1])
    versions = subprocess.run([args.torch_python, "-c", "import torch, importlib.metadata as m; "
                               "print(torch.__version__, m.version('devinterp'))"], capture_output=True, text=True).stdout.split()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = f"""## SGLD: saddle vs devinterp (chain-steps per second)

`python benchmarks/sgld_vs_devinterp.py --torch-python /work/venv-bench/bin/python` on {platform.machine()},
{os.cpu_count()} CPU cores, load average {load:.1f} at the end. Reduced-rank regression {SIZES}, true rank
{RANK}, n = {N}, full batch, float32, best of {args.repeats} (compile/warm-up excluded); saddle
{args.chains} chains × {args.steps} steps, devinterp {args.devinterp_chains} chains × {args.devinterp_steps} steps
(it is too slow for more). devinterp {versions[1] if len(versions) > 1 else '?'} on torch
{versions[0] if versions else '?'} (its `llc` with a custom `loss_fn`; the toy goes in as a dataset of `input_ids`).

| sampler | best wall time (s) | chain-steps / s |
|---|---|---|
| saddle `dynamics.sgld.sample` (JAX, vmapped chains) | {saddle['best_s']:.3f} | {saddle['chain_steps_per_s']:.0f} |
| devinterp `slt.llc.llc` (PyTorch) | {devi['best_s']:.3f} | {devi['chain_steps_per_s']:.0f} |

Ratio saddle / devinterp: **{saddle['chain_steps_per_s'] / devi['chain_steps_per_s']:.1f}×**.
"""
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
