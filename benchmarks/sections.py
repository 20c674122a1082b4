"""Markdown for run_all.py's issue-15 sections: (d) nonlinear and attention
sweeps, (e) stiff flow, (f) compilation cache, (g) accelerator. Each takes the
JSON its script wrote and appends its targets to ``targets``."""
from __future__ import annotations

TARGET_CELLS_VS_BATCHED = 1.0
TARGET_CELLS_VS_LOOP = 25.0
TARGET_STIFF_CPU_S = 60.0
TARGET_LONG_S = 60.0


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header, rows) -> list:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def _status(best: float, median: float, target: float) -> str:
    if best >= target and median >= target:
        return "**met**"
    return "met on best, missed on median" if best >= target else "**missed**"


def cells_section(cs: dict, targets: list) -> list:
    lines = ["## (d) Nonlinear and attention sweeps: saddle vs PyTorch", ""]
    lines.append(
        "Cells of `benchmarks/cells.py`, each net on its own sampled data set, full-batch float32 GD, "
        "L = (1/2P) Σ (y − ŷ)². *relu*: ŷ = a·relu(W x) (`models.relu.apply`, no biases), n_in = 16, hidden = 32, "
        "P = 128 Gaussian inputs, a 4-unit ReLU teacher. *attention*: multi-head linear attention with merged "
        "key-query (`models.attention.apply`, arXiv 2501.16265), D = 8, 4 heads, in-context linear regression "
        "(`tasks.icl.sample`, Λ = I/D, N = 16 context tokens), loss over 32 sampled sequences. "
        "*saddle sweep*: `run_sweep` over seeds × init scales, `jax.grad` of the model's loss, GD in "
        "`lax.fori_loop`. *batched PyTorch*: the step on (n, …) stacks with torch.bmm / einsum and hand-written "
        "gradients (no autograd graph; S = ZZᵀ precomputed). *per-model loop*: one net at a time, autograd + "
        "`torch.optim.SGD`, timed on its first nets and scaled linearly. Loss err: max |L − L_f64| / L(t=0) over "
        f"the first nets against a float64 run of the same updates. JAX: {cs['jax_devices']} CPU devices, "
        f"XLA_FLAGS=`{cs['xla_flags'] or '(none)'}`; torch {cs['torch_threads']} threads. One warm-up call each, "
        f"then {cs['repeats']} round-robin rounds.")
    lines.append("")
    for k in cs["kinds"]:
        rows = k["rows"]
        head = rows[0]
        lines.append(f"### {k['kind']}: {k['seeds']} seeds × init scales {k['init_scales']} = {k['n']} nets, "
                     f"{k['steps']} steps, η = {k['eta']:g} (load average {' '.join(f'{x:.2f}' for x in k['loadavg'])})")
        lines.append("")
        lines += _table(["implementation", "how", "s (min)", "s (median)", "first call s", "nets × steps / s (best)",
                         "GFLOP/s best", "saddle (first row) is × faster (min / median)", "cores busy",
                         "other procs' CPU", "loss err"],
                        [[r["name"], r["how"], f"{r['min']:.2f}", f"{r['median']:.2f}", f"{r['first']:.2f}",
                          f"{r['nets_steps_per_s']:.3g}", f"{r['gflops_best']:.1f}",
                          f"{r['min'] / head['min']:.2f}× / {r['median'] / head['median']:.2f}×",
                          f"{r['cores_busy']:.2f}", f"{r['others_max']:.0%}", f"{r['max_rel_loss_err']:.0e}"]
                         for r in rows])
        lines.append("")
        for other, target in ((rows[1], TARGET_CELLS_VS_BATCHED), (rows[2], TARGET_CELLS_VS_LOOP)):
            best, med = other["min"] / head["min"], other["median"] / head["median"]
            targets.append((f"(d) {k['kind']}: saddle sweep vs {other['name']}", f"≥ {target:g}×",
                            f"{best:.2f}× best, {med:.2f}× median", _status(best, med, target)))
    return lines


def stiff_section(st: dict, targets: list) -> list:
    # per-seed time differences were added after the 2026-12-05 run: older JSON files render without them
    per_seed = any("max_time_diff_between_solvers" in r for r in st["rows"])
    lines = ["## (e) Stiff gradient flow: saddle-to-saddle, Tsit5 vs RKC vs Kvaerno5", ""]
    lines.append(
        "The flows of the default `saddle run saddle-to-saddle` (depths 2, 3, 4; widths 8, 32, 32; σ = 1e-4, 1e-4, "
        "1e-3; 6, 8, 4 seeds vmapped; rtol 1e-6, atol 1e-6 σ²; horizon 1.2 × the time by which all seeds have "
        "learned every mode), set up as the experiment does and solved by `dynamics.gradient_flow(solver=...)`: "
        "*tsit5* (explicit; the old solver of every depth), *rkc* (stabilised explicit Runge–Kutta–Chebyshev, "
        "`dynamics.flow.RKC`), which the experiment's `solver=\"auto\"` now picks where the theory's stiffness "
        f"ratio L s₁^{{2−2/L}} · t_end exceeds {st.get('stiff_ratio', 1e3):.0e} (*default* column), and *kvaerno5* "
        "(L-stable implicit ESDIRK, chord iterations with the Jacobian linearised once per step, GMRES on "
        "Hessian-vector products). CPU seconds of the compiled solve over all seeds (compile reported apart; no "
        "counting in it); in a second solve of the first seed, gradients counted by a `jax.debug.callback` in a "
        "custom VJP, GMRES iterations (one Hessian-vector product each, ≈ 2 gradients of work) by a counting GMRES "
        "subclass. Accuracy: the median over seeds of each mode's "
        "half-learning time vs `theory.saddle.transition_times` (the experiment's median rows allow 3 standard "
        "errors of the median of its few seeds), "
        + ("the largest relative difference of a seed's transition time from tsit5's (what the per-seed rows "
           "compare, at the ~2% recording grid step), " if per_seed else "")
        + f"and the largest difference in mode strength from tsit5's (large where a mode climbs steeply). Machine: {st.get('machine', '?')}; load average "
        f"{' '.join(f'{x:.2f}' for x in st['loadavg'])}.")
    lines.append("")
    na = lambda v: "—" if v is None else v  # noqa: E731
    diff = lambda r, key: f"{r[key]:.1e}" if key in r else "—"  # noqa: E731
    lines += _table(["depth", "solver", "default", "seeds", "CPU s (solve)", "compile CPU s", "gradients (first seed)",
                     "Hessian-vector products (first seed)", "max rel err of transition times vs theory"]
                    + (["max rel Δ of a seed's transition time vs tsit5"] if per_seed else []) + ["max |Δ mode| vs tsit5"],
                    [[r["depth"], r["solver"], "yes" if r.get("auto") else "", r["seeds"], f"{r['cpu_s']:.1f}",
                      f"{r['compile_cpu_s']:.1f}", na(r["grads"]), na(r["matvecs"]), f"{r['max_rel_err_vs_theory']:.3f}"]
                     + ([diff(r, "max_time_diff_between_solvers")] if per_seed else [])
                     + [diff(r, "max_mode_diff_between_solvers")] for r in st["rows"]])
    lines.append("")
    depths = sorted({r["depth"] for r in st["rows"]})
    old = [r for r in st["rows"] if r["solver"] == "tsit5"]
    new_rows = [r for r in st["rows"] if r.get("auto")]
    if len(old) == len(depths) and len(new_rows) == len(depths):
        tot = lambda rs: sum(r["cpu_s"] + r["compile_cpu_s"] for r in rs)  # noqa: E731
        text = (f"Flows of all {len(depths)} depths, solve + compile CPU s: old (tsit5 everywhere) "
                f"{tot(old):.1f}, new (solver=auto) {tot(new_rows):.1f} ({tot(old) / tot(new_rows):.2f}×)")
        if all(r["grads"] is not None for r in old + new_rows):
            text += (f"; gradients (first seed of each depth) {sum(r['grads'] for r in old)} → "
                     f"{sum(r['grads'] for r in new_rows)} + {sum(r['matvecs'] for r in new_rows)} Hessian-vector "
                     "products")
        lines.append(text + ".")
        lines.append("")
    cli = st.get("cli")
    if cli:
        lines.append(f"The whole `saddle run saddle-to-saddle --no-progress` process (imports, the flows of all depths, "
                     f"theory, verify rows, figures; empty compilation cache): **{cli['cpu_s']:.1f} CPU s** "
                     f"({cli['wall_s']:.1f} s wall); every verify row passed: {cli['all_rows_passed']}.")
        lines.append("")
        targets.append(("(e) whole default `saddle run saddle-to-saddle`, CPU s (empty compilation cache)",
                        f"< {TARGET_STIFF_CPU_S:g} s", f"{cli['cpu_s']:.1f} s",
                        "**met**" if cli["cpu_s"] < TARGET_STIFF_CPU_S else "**missed**"))
    return lines


def cache_section(cc: dict, targets: list) -> list:
    lines = ["## (f) JAX persistent compilation cache (CLI)", ""]
    lines.append(
        "`saddle` turns on JAX's persistent compilation cache (directory `$SADDLE_CACHE_DIR`, default "
        "`~/.cache/saddle/jax`; off with `--no-cache` or `SADDLE_NO_CACHE=1`). Wall and CPU seconds of whole "
        f"CLI processes (`benchmarks/cache_timing.py`), first with an empty cache directory (cold), then again (warm). "
        + (f"Programs cached: those compiling in ≥ {cc['min_compile_seconds']:g} s "
           "(`experiments.jax_cache.MIN_COMPILE_SECONDS`). " if "min_compile_seconds" in cc else
           "Programs cached: those compiling in ≥ 0.1 s (`experiments.jax_cache.MIN_COMPILE_SECONDS` at this "
           "run's commit; it is 0 since, see its comment). ")
        + f"Load average {cc['loadavg']}.")
    lines.append("")
    lines += _table(["command", "cold wall s", "warm wall s", "cold / warm (wall)", "cold CPU s", "warm CPU s",
                     "cold / warm (CPU)", "cache files (MiB)"],
                    [[f"`{r['command']}`", f"{r['cold']:.1f}", f"{r['warm']:.1f}", f"{r['cold'] / r['warm']:.2f}×",
                      f"{r.get('cold_cpu', float('nan')):.1f}", f"{r.get('warm_cpu', float('nan')):.1f}",
                      f"{r.get('cold_cpu', float('nan')) / r.get('warm_cpu', float('nan')):.2f}×",
                      f"{r['cache_files']} ({r['cache_mib']:.1f})"] for r in cc["rows"]])
    lines.append("")
    return lines


def accel_section(gpu: dict, cpu: dict, targets: list) -> list:
    info = gpu["backend"]
    lines = [f"## (g) Accelerator: {info.get('torch_device_name') or info['device_kind']}", ""]
    lines.append(
        "`python benchmarks/run_all.py --gpu-only` (`benchmarks/accelerator.py`) on one "
        f"{info.get('torch_device_name') or info['device_kind']} (jax {info['jax']}, torch {info.get('torch')}), "
        "float32 with full-precision matmuls on both sides (`jax_default_matmul_precision=\"highest\"`, no TF32). "
        "Workloads: the linear grids of (a) (d = h = 32, 64; W2ᵀ carried) and the cells of (d). The saddle sweep "
        "is `run_sweep` with all nets in one vmap on the one device, the step count a traced cell value (one "
        "compiled program for warm-up and timed call); batched PyTorch runs the same updates on the same device. "
        f"Each timed call lasts about {gpu['budget_s']:g} s (steps chosen from a short probe); loss err as in (d) "
        "on the first 8 nets. The CPU column is `benchmarks/accelerator.py` on this document's CPU machine"
        + (f" (load average {' '.join(f'{x:.2f}' for x in cpu['loadavg'])})" if cpu and "loadavg" in cpu else "")
        + "; its 10⁵-net torch rows are skipped (memory).")
    lines.append("")
    cpu_rate = {}
    for name, rec in (cpu or {}).get("workloads", {}).items():
        for r in rec["rows"]:
            cpu_rate[(name, r["n"], r["impl"].split(" (")[0])] = r["nets_steps_per_s"]
    rows = []
    for name, rec in gpu["workloads"].items():
        for r in rec["rows"]:
            c = cpu_rate.get((name, r["n"], r["impl"].split(" (")[0]))
            rows.append([name, f"{r['n']:,}", r["impl"], r["steps"], f"{r['seconds']:.2f}", f"{r['nets_steps_per_s']:.3g}",
                         f"{r['tflops']:.2f}", f"{r['first_call_s']:.1f}", f"{r['loss_err']:.0e}",
                         f"{c:.3g}" if c else "—", f"{r['nets_steps_per_s'] / c:.0f}×" if c else "—"])
    lines += _table(["workload", "nets", "implementation", "steps", "s", "nets × steps / s", "TFLOP/s", "first call s",
                     "loss err", "CPU nets × steps / s", "GPU / CPU"], rows)
    lines.append("")
    for name, lg in gpu.get("long", {}).items():
        how = "extrapolated from the rate above, not run" if lg["extrapolated"] else "one call, measured"
        lines.append(f"* {lg['n']:,} {name} networks × {lg['steps']:,} GD steps: **{lg['seconds']:.1f} s** ({how}).")
        targets.append((f"(g) {lg['n']:,} two-layer {name} nets × {lg['steps']:,} steps on the GPU",
                        f"< {TARGET_LONG_S:g} s", f"{lg['seconds']:.1f} s" + (" (extrapolated)" if lg["extrapolated"] else ""),
                        "**met**" if lg["seconds"] < TARGET_LONG_S else "**missed**"))
    lines.append("")
    return lines


def accel_cpu_section(cpu: dict) -> list:
    """(g) without an accelerator run: the CPU figures ``accelerator.py`` measured, so they are in the
    document (``--gpu-json`` puts a GPU run's figures beside them)."""
    lines = ["## (g) Accelerator: no GPU run in this document", ""]
    lines.append(
        "No accelerator was measured for this document (`python benchmarks/run_all.py --gpu-only --json gpu.json` "
        "on a GPU machine, then `--gpu-json gpu.json` here, puts its figures beside these). The CPU figures "
        "`benchmarks/accelerator.py` measured on this machine"
        + (f" (load average {' '.join(f'{x:.2f}' for x in cpu['loadavg'])})" if "loadavg" in cpu else "")
        + f": the same workloads, each timed call about {cpu['budget_s']:g} s.")
    lines.append("")
    rows = [[name, f"{r['n']:,}", r["impl"], r["steps"], f"{r['seconds']:.2f}", f"{r['nets_steps_per_s']:.3g}",
             f"{r['first_call_s']:.1f}", f"{r['loss_err']:.0e}"]
            for name, rec in cpu.get("workloads", {}).items() for r in rec["rows"]]
    lines += _table(["workload", "nets", "implementation", "steps", "s", "nets × steps / s", "first call s", "loss err"],
                    rows)
    lines.append("")
    return lines
