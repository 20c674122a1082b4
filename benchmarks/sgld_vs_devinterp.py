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
    sys.path.insert(0, str(ROOT))
    from tasks.reduced_rank import reduced_rank

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
    import torch
    from devinterp.optim import SGLD
    from devinterp.slt.sampler import sample
    from devinterp.slt.llc import LLCEstimator
    from torch.utils.data import DataLoader, TensorDataset

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

    loader = DataLoader(TensorDataset(x, y), batch_size=N, shuffle=False)
    n_beta = N / math.log(N)

    def evaluate(model, batch):
        inp, target = batch
        out = model(inp)
        return 0.5 * ((target - out) ** 2).sum(dim=-1).mean(), {}

    def run(seed):
        model = RRR()
        llc = LLCEstimator(num_chains=chains, num_draws=steps, nbeta=n_beta, init_loss=evaluate(model, (x, y))[0].item())
        sample(model, loader, evaluate=evaluate, sampling_method=SGLD,
               optimizer_kwargs=dict(lr=STEP, localization=1.0, nbeta=n_beta), num_chains=chains, num_draws=steps,
               num_burnin_steps=0, num_steps_bw_draws=1, cores=1, seed=seed, callbacks=[llc], verbose=False)
        return llc.get_results()

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
    devi = json.loads(subprocess.run([args.torch_python, *common, "--only", "devinterp"], env=env, check=True,
                                     capture_output=True, text=True).stdout.strip().splitlines()[-1])
    versions = subprocess.run([args.torch_python, "-c", "import torch, importlib.metadata as m; "
                               "print(torch.__version__, m.version('devinterp'))"], capture_output=True, text=True).stdout.split()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = f"""## SGLD: saddle vs devinterp (chain-steps per second)

`python benchmarks/sgld_vs_devinterp.py --torch-python /work/venv-bench/bin/python` on {platform.machine()},
{os.cpu_count()} CPU cores, load average {load:.1f} at the end. Reduced-rank regression {SIZES}, true rank
{RANK}, n = {N}, full batch, {args.chains} chains × {args.steps} steps, float32, best of {args.repeats}
(compile/warm-up excluded). devinterp {versions[1] if len(versions) > 1 else '?'} on torch
{versions[0] if versions else '?'} (`cores=1`: chains in sequence, devinterp's default).

| sampler | best wall time (s) | chain-steps / s |
|---|---|---|
| saddle `dynamics.sgld.sample` (JAX, vmapped chains) | {saddle['best_s']:.3f} | {saddle['chain_steps_per_s']:.0f} |
| devinterp `sample` + `LLCEstimator` (PyTorch) | {devi['best_s']:.3f} | {devi['chain_steps_per_s']:.0f} |

Ratio saddle / devinterp: **{saddle['chain_steps_per_s'] / devi['chain_steps_per_s']:.1f}×**.
"""
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
