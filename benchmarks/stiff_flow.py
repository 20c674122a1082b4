"""Stiff gradient flow: explicit Tsit5 vs implicit Kvaerno5 (Newton–Krylov) on saddle-to-saddle (issue 15, item 1).

The flows of ``saddle run saddle-to-saddle`` (default config: depths 2, 3, 4;
same task, inits, recording times and tolerances rtol = 1e-6, atol = 1e-6 σ²),
set up here exactly as the experiment does, solved by ``dynamics.gradient_flow``
with ``solver="tsit5"`` (explicit) and ``solver="kvaerno5"`` (implicit ESDIRK,
chord iterations, GMRES on Hessian-vector products). Per depth and solver:
CPU seconds of the jitted, vmapped solve (compile excluded: a first call at
the same shapes compiles; no counting callbacks in it), then, in a second
solve of the first seed, gradient evaluations (∇L, counted by a
``jax.debug.callback`` in a custom VJP, as flow_vs_euler.py does) and GMRES
iterations (each one Hessian-vector product, ≈ 2 gradients of work), and the accuracy: the median over seeds of each mode's half-learning
time against ``theory.saddle.transition_times`` (the verify rows of the
experiment, 10 %), and the largest difference between the two solvers' mode
strengths at the recording times.

Default: tsit5 (the old solver of every depth) at each depth, plus rkc
(stabilised explicit Runge–Kutta–Chebyshev) where the experiment's
``solver="auto"`` picks it, and kvaerno5 at depth 4 (the same rule, repeated
here since benchmarks do not import experiments: λ_max·t_end > STIFF_RATIO,
λ_max = L s₁^{2−2/L}); ``--cli`` also times one whole ``saddle run
saddle-to-saddle --no-progress`` process (CPU seconds, empty compilation cache).

    python benchmarks/stiff_flow.py --cli --json out.json             # ~5 min on 2 idle cores
    python benchmarks/stiff_flow.py --solvers tsit5,kvaerno5 --depths 2,3   # both solvers at every depth given
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import lineax  # noqa: E402
import numpy as np  # noqa: E402

import dynamics  # noqa: E402
from counting import counted_identity  # noqa: E402
import tasks  # noqa: E402
from dynamics.flow import make_solver  # noqa: E402
from dynamics.plateaus import rise_times  # noqa: E402
from models import linear  # noqa: E402
from theory.saddle import transition_times  # noqa: E402

# saddle-to-saddle's default Config (experiments/saddle_to_saddle.py; benchmarks do not import experiments)
S, N_IO, DEPTHS, WIDTHS, SIGMAS, N_SEEDS = (4.0, 2.0, 1.0), 8, (2, 3, 4), (8, 32, 32), (1e-4, 1e-4, 1e-3), (6, 8, 4)
HORIZON, N_POINTS, SEED, ALL_FINISH = 1.2, 300, 0, 0.999
STIFF_RATIO = 1e3  # experiments/saddle_to_saddle.py's STIFF_RATIO

COUNT = {"grad": 0, "matvec": 0}


def _bump_grad(_):
    COUNT["grad"] += 1


def _bump_matvec(n):
    COUNT["matvec"] += int(np.sum(n))


# Under vmap a callback with a batched argument runs once per seed, so both
# counts are summed over the seeds (finished seeds of a vmapped while loop keep
# evaluating until the last one is done: that work is real and counted).


_counted = counted_identity(_bump_grad)


class CountingGMRES(lineax.GMRES):
    """lineax GMRES that reports its iterations (Hessian-vector products)."""

    def compute(self, state, vector, options):
        sol, result, stats = super().compute(state, vector, options)
        jax.debug.callback(_bump_matvec, stats["num_steps"])
        return sol, result, stats


def setup(depth_index: int):
    key_task, key_init = jax.random.split(jax.random.key(SEED))
    task = tasks.teacher(key_task, n_in=N_IO, n_out=N_IO, s=S)
    depth, width, sigma, n_seeds = DEPTHS[depth_index], WIDTHS[depth_index], SIGMAS[depth_index], N_SEEDS[depth_index]
    key = jax.random.split(key_init, len(DEPTHS))[depth_index]
    sizes = (N_IO,) + (width,) * (depth - 1) + (N_IO,)
    predicted = np.asarray(transition_times(S, init_scale=sigma, depth=depth, width=width))
    # the experiment's horizon (its last_escape_time): all n seeds 99% learned with probability ALL_FINISH
    last = transition_times(S, init_scale=sigma, depth=depth, width=width, quantile=ALL_FINISH ** (1.0 / n_seeds),
                            fraction=0.99)
    times = np.concatenate([[0.0], np.geomspace(0.02 * predicted[0], HORIZON * float(np.max(np.asarray(last))), N_POINTS)])
    return task, depth, sigma, n_seeds, key, sizes, predicted, times


def _flow(depth_index: int, solver: str, n_seeds: int, counted: bool):
    """jit(vmap(flow)) over n_seeds inits and their keys; ``counted``: gradients and GMRES iterations
    reported to COUNT by host callbacks (which cost more than a gradient here, so never timed)."""
    task, depth, sigma, _, key, sizes, _, times = setup(depth_index)
    rtol, atol = 1e-6, 1e-6 * sigma**2  # the experiment's tolerances
    wrap = _counted if counted else (lambda p: p)

    def loss(params, _):
        return dynamics.linear_loss_from_stats(linear.end_to_end(wrap(params)), task.sigma_xx, task.sigma_yx,
                                               task.trace_yy)

    def observe(params):
        return linear.mode_strengths(params, task.u, task.v)

    diffrax_solver = make_solver(solver, rtol, atol, gmres=CountingGMRES if counted else lineax.GMRES)

    def run(k):
        traj = dynamics.gradient_flow(loss, linear.init_gaussian(k, sizes, std=sigma), None, times=times,
                                      observe=observe, rtol=rtol, atol=atol, solver=diffrax_solver)
        return traj.stats

    return jax.jit(jax.vmap(run)), jax.random.split(key, n_seeds)


def solve(depth_index: int, solver: str, seeds=None, count: bool = True) -> dict:
    """CPU seconds of the uncounted solve over the seeds (compile apart); gradients and Hessian-vector
    products from a second, counted solve of the first seed only (``count``)."""
    task, depth, sigma, n_seeds, key, sizes, predicted, times = setup(depth_index)
    n_seeds = seeds or n_seeds
    f, keys = _flow(depth_index, solver, n_seeds, counted=False)
    c0 = time.process_time()
    f.lower(keys).compile()
    compile_cpu = time.process_time() - c0
    c0, t0 = time.process_time(), time.perf_counter()
    modes = np.asarray(f(keys))
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    COUNT.update(grad=0, matvec=0)
    if count:
        g, k1 = _flow(depth_index, solver, 1, counted=True)
        jax.block_until_ready(g(k1))
    each = np.asarray(rise_times(times, np.moveaxis(modes, 1, 0), np.asarray(task.s) / 2))  # (seeds, modes)
    sim_t = np.median(each, axis=0)
    return {"depth": depth, "solver": solver, "seeds": n_seeds, "cpu_s": cpu, "wall_s": wall,
            "compile_cpu_s": compile_cpu, "grads": COUNT["grad"] if count else None,
            "matvecs": COUNT["matvec"] if count else None,
            "transition_sim": sim_t.tolist(), "transition_theory": predicted.tolist(),
            "max_rel_err_vs_theory": float(np.max(np.abs(sim_t - predicted) / predicted)), "modes": modes,
            "each": each}


def auto_solver(depth_index: int) -> str:
    """The solver ``saddle run saddle-to-saddle`` (solver="auto") uses at this depth."""
    _, depth, _, _, _, _, _, times = setup(depth_index)
    return "rkc" if depth * S[0] ** (2.0 - 2.0 / depth) * times[-1] > STIFF_RATIO else "tsit5"


def time_cli() -> dict:
    """CPU seconds (user + system) of one whole `saddle run saddle-to-saddle` process, empty cache."""
    import resource
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SADDLE_CACHE_DIR": str(Path(tmp) / "cache"), "PYTHONPATH": str(root)}
        env.pop("SADDLE_NO_CACHE", None)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        python = os.environ.get("SADDLE_BENCH_CLI_PYTHON", sys.executable)  # as cache_timing.py
        proc = subprocess.run([python, "-m", "experiments.cli", "run", "saddle-to-saddle", "--no-progress",
                               "--out", str(Path(tmp) / "run")], env=env, cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"saddle run saddle-to-saddle failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    # exit 0: every verify row passed, 1: some row failed
    return {"cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, "wall_s": wall,
            "all_rows_passed": proc.returncode == 0}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--solvers", help="solvers at every depth (default: tsit5, plus kvaerno5 where solver=auto picks it)")
    p.add_argument("--cli", action="store_true", help="also time one whole `saddle run saddle-to-saddle` process")
    p.add_argument("--no-count", action="store_true", help="skip the counted one-seed solves (gradients, HVPs)")
    p.add_argument("--depths", default=",".join(map(str, DEPTHS)))
    p.add_argument("--seeds", type=int, help="seeds per depth (default: the experiment's 6, 8, 4)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rows = []
    for d in (int(x) for x in args.depths.split(",")):
        by_solver = {}
        auto = auto_solver(DEPTHS.index(d))
        # the implicit solver only at the stiffest depth: minutes of CPU per depth, and slower than rkc
        default = ["tsit5"] if auto == "tsit5" else ["tsit5", "rkc"] + (["kvaerno5"] if d == max(DEPTHS) else [])
        for solver in (args.solvers.split(",") if args.solvers else default):
            r = solve(DEPTHS.index(d), solver, args.seeds, count=not args.no_count)
            r["auto"] = solver == auto
            by_solver[solver] = r
            print(f"depth {d} {solver:9s}: {r['cpu_s']:8.1f} CPU s ({r['wall_s']:.1f} wall, compile {r['compile_cpu_s']:.1f}), "
                  f"{r['grads']} gradients + {r['matvecs']} Hessian-vector products (first seed); transition times "
                  f"{np.round(r['transition_sim'], 1)} vs theory {np.round(r['transition_theory'], 1)} "
                  f"(max rel err {r['max_rel_err_vs_theory']:.3f})", file=sys.stderr, flush=True)
        ref = by_solver.get("tsit5")
        for name, r in by_solver.items():
            if ref is not None and name != "tsit5":
                r["max_mode_diff_between_solvers"] = float(np.max(np.abs(r["modes"] - ref["modes"])))
                r["max_time_diff_between_solvers"] = float(np.max(np.abs(r["each"] - ref["each"]) / ref["each"]))
                print(f"  {name} vs tsit5: max |Δ mode strength| {r['max_mode_diff_between_solvers']:.2e}, max rel Δ "
                      f"of a seed's transition time {r['max_time_diff_between_solvers']:.2e}", file=sys.stderr, flush=True)
        for r in by_solver.values():
            r.pop("modes"), r.pop("each")
            rows.append(r)
    result = {"rows": rows, "loadavg": os.getloadavg(), "cores": os.cpu_count(), "stiff_ratio": STIFF_RATIO}
    if args.cli:
        result["cli"] = time_cli()
        print(f"saddle run saddle-to-saddle: {result['cli']['cpu_s']:.1f} CPU s ({result['cli']['wall_s']:.1f} wall), "
              f"all verify rows passed: {result['cli']['all_rows_passed']}", file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
