"""Run every benchmark and write BENCHMARKS.md at the repository root.

    python benchmarks/run_all.py            # ~36 min on 2 idle cores (2026-12-05) → BENCHMARKS.md
    python benchmarks/run_all.py --quick    # 50/100 steps, ~3 min → benchmarks/quick.md (not BENCHMARKS.md)
    python benchmarks/run_all.py --only cells,stiff   # a subset (see --only), → benchmarks/partial.md
    python benchmarks/run_all.py --gpu-only --json gpu.json   # on a GPU machine: section (g) only, ~5 min
    python benchmarks/run_all.py --gpu-json gpu.json          # CPU run, with a saved GPU run beside it

The whole-CLI timings (cache, and stiff's ``--cli``) run ``saddle`` under
``$SADDLE_BENCH_CLI_PYTHON`` when set: an interpreter with every saddle
dependency (blackjax, for ``saddle verify`` of the SLT experiments), if the one
running this script only adds torch to a subset of them.

Times on 2 idle cores (measured 2026-12-05, 36 min in all): throughput, levers,
flow, memory and cells ~10 min together, stiff ~14 min (the old explicit
solver's depth 4 with its counted solve, Kvaerno5, one whole `saddle run
saddle-to-saddle`), cache ~8 min (two smoke verifies of every experiment),
accel (CPU path) ~3 min. On a machine with an accelerator JAX
sees (``jax.default_backend() != "cpu"``) the accel part runs there.

Run it on an otherwise idle machine: it records the load average and, for
every timed call, the CPU share other processes took, so a disturbed run shows
itself, but it cannot undo the disturbance.

Each benchmark runs in its own process (``sweep_throughput.py``,
``flow_vs_euler.py``, ``sweep_memory.py``; each also runs alone, see its
docstring) and hands back JSON; this script adds the machine description and
turns it all into markdown. The throughput benchmark runs with one JAX CPU
device per core (``JAX_NUM_CPU_DEVICES``) and ``XLA_FLAGS=HEADLINE_FLAGS``; the
lever table re-times the settings these act on under ``OTHER_FLAGS``, each in
its own process, so what every setting is worth is measured in the same run.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sections

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EIGEN_FLAG = "--xla_cpu_multi_thread_eigen=false"
YNN_FUSED = "--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,individual_dot"
# The throughput tables run with HEADLINE_FLAGS; the lever table adds the lean
# cell's settings under each of OTHER_FLAGS, each in its own process.
HEADLINE_FLAGS = EIGEN_FLAG
OTHER_FLAGS = ("", f"{EIGEN_FLAG} {YNN_FUSED}")

# Targets (issue 7, item 5).
TARGET_VS_BMM = 1.0
TARGET_VS_NUMPY = 1.5
TARGET_VS_LOOP = 25.0
TARGET_RHS_RATIO = 10.0
TARGET_MEMORY_MIB = 2048.0


PARTS = ("throughput", "flow", "memory", "cells", "stiff", "cache", "accel")


def _accelerator() -> bool:
    """Whether JAX finds an accelerator (in a child process: this one never initialises JAX's backends)."""
    probe = subprocess.run([sys.executable, "-c", "import jax; print(jax.default_backend())"], capture_output=True,
                           text=True, check=False)
    return probe.stdout.strip() not in ("", "cpu")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_json(script: str, args, env_extra=None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        env = {**os.environ, **(env_extra or {})}
        cmd = [sys.executable, str(HERE / script), *args, "--json", str(out)]
        log(f"$ {' '.join(f'{k}={v}' for k, v in (env_extra or {}).items())} {' '.join(cmd[1:])}")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=ROOT, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{script} failed with exit code {proc.returncode}")
        result = json.loads(out.read_text())
        result["wall_seconds"] = time.perf_counter() - t0
        return result


def machine() -> dict:
    import jax
    import jaxlib
    import numpy as np

    info = {"python": platform.python_version(), "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "numpy": np.__version__, "cores": os.cpu_count(), "platform": platform.platform()}
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = "not installed"
    for mod in ("optax", "diffrax"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            pass
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        get = lambda key: next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith(key)), "?")  # noqa: E731
        flags = get("flags").split()
        isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16") if f in flags]
        info["cpu"] = f"{get('model name')} (family {get('cpu family')}, model {get('model')}; {', '.join(isa)})"
        mem = next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
        info["memory_gib"] = int(mem.split()[1]) / 2**20
    except (OSError, StopIteration):
        info["cpu"] = platform.processor() or "?"
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - informational only
        info["numpy_blas"] = "?"
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                        text=True, check=False).stdout.strip() or "?"
    except OSError:
        info["commit"] = "?"
    return info


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# ----------------------------------------------------------------- markdown

# The markdown helpers live in sections.py, which renders the newer sections too.
_row, _table, _status = sections._row, sections._table, sections._status


def _per_core(r: dict) -> str:
    """GFLOP/s per busy core ("—" when the call was too short for the CPU clock's 10 ms ticks)."""
    return f"{r['gflops_best'] / r['cores_busy']:.3g}" if r["cores_busy"] >= 0.05 else "—"


def _missed_note(d, saddle: dict, other: dict, label: str, target: float) -> str:
    """Where the time goes when the headline misses a target: cores kept busy vs work per busy core."""
    per = lambda r: r["gflops_best"] / max(r["cores_busy"], 0.05)  # noqa: E731
    return (f"* d = {d}, vs {label} (wanted ≥ {target:g}×): saddle {saddle['gflops_best']:.3g} GFLOP/s on "
            f"{saddle['cores_busy']:.2f} busy cores = {per(saddle):.3g} per core; {label} "
            f"{other['gflops_best']:.3g} on {other['cores_busy']:.2f} = {per(other):.3g} per core. At this per-core "
            f"rate the target needs {target * other['gflops_best'] / per(saddle):.2f} busy cores; see *What bounds "
            f"the saddle sweep* for the per-step program and the dots-only bound. Other processes took up to "
            f"{max(saddle['others_max'], other['others_max']):.0%} of the CPU during these timings.")


def throughput_section(tp: dict, levers: dict, targets: list) -> list:
    missed: list = []
    peak = tp["peak"]
    lines = ["## (a) Sweep throughput: saddle vs PyTorch vs NumPy", ""]
    lines += [
        "**Problem** (identical for every implementation). Net i has a teacher W*_i (d × d, entries N(0, 1/d)) and "
        "white inputs x ~ N(0, I), so Σxx = I, Σyx = W*_i and the loss is L = ½ E‖W*x − W2W1x‖² = ½‖W2W1 − W*‖²_F. "
        f"W1, W2 (d × d) start with entries N(0, σ²/d), σ = {tp['init_scale']:g} (small: saddle-to-saddle learning). "
        f"Each implementation runs the same full-batch GD in float32 with η = {tp['eta']:g}:",
        "",
        "    E = W2 W1 − W*,   W1 ← W1 − η W2ᵀ E,   W2 ← W2 − η E W1ᵀ",
        "",
        "and returns the final loss ½‖E‖²_F. **Flops**: 3 matmuls of d × d × d per step = **6 d³ flops per net per "
        "step** (the 5 d² elementwise flops are counted for no one). GFLOP/s = 6 d³ · nets · steps / seconds.",
        "",
        "**Implementations.** *saddle sweep*: `dynamics.sweep.run_sweep(cell, {\"seed\": arange(n)}, batch_size, "
        "n_devices)`, i.e. jit(shard_map(lax.map(vmap(cell)))) over one CPU device per core; each cell draws its net "
        "from its seed and trains it. Three cells: *lean cell, W2ᵀ carried* (the headline: the step above under "
        "`lax.fori_loop`, with W2ᵀ kept in the loop carry and updated by the transposed gradient, so every dot has an "
        "untransposed left operand; 3 more d² flops per step, not counted), *lean cell* (the step as written, "
        "`b.T @ e`), *via dynamics.descend* (the library path: `models.linear` params, autodiff of the loss, "
        "`optax.sgd`, `dynamics.descend`). *plain jit(vmap)*: the lean cell vmapped over all nets on one device, "
        "no sweep engine. *torch.bmm* and *NumPy*: the step on stacked (n, d, d) arrays, in place. *per-model "
        "loops*: one net at a time, as a training loop is usually written (autograd + `torch.optim.SGD`) and "
        "hand-written (`torch.mm`, in place); each runs on the faster of 1 and all torch threads (picked by a short "
        "calibration run; 1 usually wins at these sizes) and times the first nets only, scaled linearly to all "
        "nets. Every implementation's final losses agree with a float64 NumPy run of the same updates on the first "
        "nets (column *loss err*: max |L − L_f64| / L(t=0); float32 rounding over 1000 steps gives ~1e-8–1e-6).",
        "",
        f"**Machine peak**, float32 2048² matmul, best of 5: np.matmul {peak['np.matmul']:.0f}, torch.mm "
        f"{peak['torch.mm']:.0f}, jnp.dot {peak['jnp.dot']:.0f} GFLOP/s (each the better of the start and the end "
        f"of the run) → peak = **{peak['peak']:.0f} GFLOP/s**. "
        f"Timing: one warm-up call each (*first call*, JAX compile included), then {tp['repeats']} round-robin "
        "rounds; best = min time, median = median time. JAX runs with "
        f"{tp['jax_devices']} CPU devices and XLA_FLAGS=`{tp['xla_flags'] or '(none)'}`; torch.bmm with "
        f"{tp['torch_threads']} threads.",
        "",
    ]
    for grid in tp["grids"]:
        rows = grid["rows"]
        lean = rows[0]
        lines.append(f"### d = h = {grid['d']}, {grid['n']} nets, {grid['steps']} steps "
                     f"({grid['flops'] / 1e9:.0f} GFLOP per run)")
        lines.append("")
        table = []
        for r in rows:
            table.append([
                r["name"], r["how"], f"{r['gflops_best']:.1f}", f"{r['gflops_median']:.1f}",
                f"{r['gflops_best'] / peak['peak']:.0%}", f"{r['min']:.2f}", f"{r['median']:.2f}", f"{r['first']:.2f}",
                f"{r['min'] / lean['min']:.2f}×", f"{r['cores_busy']:.2f}",
                _per_core(r), f"{r['others_max']:.0%}",
                f"{r['max_rel_loss_err']:.0e}"])
        lines += _table(["implementation", "how", "GFLOP/s best", "GFLOP/s median", "% of peak (best)", "s (min)",
                         "s (median)", "first call s", "saddle (first row) is × faster", "cores busy", "GFLOP/s per busy core",
                         "other procs' CPU",
                         "loss err"], table)
        lines.append("")
        by = {r["name"]: r for r in rows}
        bmm = by["batched PyTorch (torch.bmm)"]
        npy = by["hand-batched NumPy (np.matmul)"]
        loop = by["per-model PyTorch loop (autograd + optim.SGD)"]
        loop_hand = by["per-model PyTorch loop, hand-written (torch.mm, in place)"]
        for saddle in rows[:3]:
            short = saddle["name"].replace("saddle sweep, ", "").replace("saddle sweep ", "")
            for other, target, label in [(bmm, TARGET_VS_BMM, "batched torch.bmm"), (npy, TARGET_VS_NUMPY, "hand-batched NumPy"),
                                         (loop, TARGET_VS_LOOP, "per-model PyTorch loop (autograd)")]:
                best = other["min"] / saddle["min"]
                med = other["median"] / saddle["median"]
                targets.append((f"(a) d={grid['d']}: saddle sweep ({short}) vs {label}", f"≥ {target:g}×",
                                f"{best:.2f}× best, {med:.2f}× median", _status(best, med, target)))
                if saddle is lean and best < target:
                    missed.append(_missed_note(grid["d"], saddle, other, label, target))
        best = loop_hand["min"] / lean["min"]
        med = loop_hand["median"] / lean["median"]
        targets.append((f"(a) d={grid['d']}: saddle sweep ({lean['name'].replace('saddle sweep, ', '')}) vs hand-written "
                        "per-model torch.mm loop", "(no target)", f"{best:.2f}× best, {med:.2f}× median", "—"))
    lev_any = next(iter(levers.values()))
    lines += [f"### Levers (saddle sweep, lean cell, d = {lev_any['d']}, {lev_any['n']} nets, {lev_any['steps']} steps)", "",
              "Each XLA_FLAGS setting runs in its own process (XLA reads the flags once); within one process the "
              "settings are timed round-robin like the table above. The headline setting (first table) is "
              f"`run_sweep(batch_size={tp['batch_size']}, n_devices={tp['jax_devices']})` on the W2ᵀ-carried cell "
              f"with XLA_FLAGS=`{tp['xla_flags'] or '(none)'}`.", ""]
    table = []
    for flags, lev in levers.items():
        for r in lev["rows"]:
            table.append([r["label"], f"`{flags}`" if flags else "(none)", r["n_devices"], r["batch_size"], r["unroll"],
                          "yes" if r["carry_transpose"] else "no", f"{r['gflops_best']:.1f}", f"{r['gflops_median']:.1f}",
                          f"{r['cores_busy']:.2f}", f"{r['others_max']:.0%}"])
    lines += _table(["setting", "XLA_FLAGS", "n_devices", "batch_size", "unroll", "W2ᵀ carried", "GFLOP/s best",
                     "GFLOP/s median", "cores busy (best run)", "other procs' CPU"], table)
    lines.append("")
    lines += bounds_text(tp, levers)
    if missed:
        lines += ["### Missed targets (headline)", "", *missed, ""]
    return lines


def bounds_text(tp: dict, levers: dict) -> list:
    peak = tp["peak"]["peak"]
    head_flags = tp["xla_flags"]
    lev = {r["label"]: r for r in levers[head_flags]["rows"]}
    head = lev["one device per core (headline setting)"]
    one = lev["1 device"]
    plain = lev["W2ᵀ not carried (b.T @ e)"]
    lines = ["### What bounds the saddle sweep", ""]
    lines.append(
        f"* **Cores.** One CPU device: {one['cores_busy']:.2f} cores busy, {one['gflops_best']:.0f} GFLOP/s; one CPU "
        f"device per core (`JAX_NUM_CPU_DEVICES={tp['jax_devices']}`, `run_sweep(n_devices={tp['jax_devices']})`, the "
        f"same shard_map that spreads cells over GPUs, each core running its own cells): {head['cores_busy']:.2f} cores "
        f"busy, {head['gflops_best']:.0f} GFLOP/s ({head['gflops_best'] / one['gflops_best']:.2f}×).")
    flag_txt = "; ".join(f"`{f or '(none)'}` {({r['label']: r for r in lv['rows']})['one device per core (headline setting)']['gflops_best']:.0f}"
                         for f, lv in levers.items())
    lines.append(
        f"* **XLA flags** (headline setting, GFLOP/s best): {flag_txt}. `--xla_cpu_multi_thread_eigen=false` keeps "
        "each Eigen dot on the core that issued it instead of splitting it over the intra-op pool, which the other "
        "device's cells already occupy; `--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,individual_dot` lets "
        "YNNPACK fuse the elementwise update into the dots (fewer passes over the (batch, d, d) arrays).")
    lines.append(
        f"* **Formulation.** W2ᵀE with W2ᵀ carried: {head['gflops_best']:.0f} GFLOP/s; as `b.T @ e`: "
        f"{plain['gflops_best']:.0f}. Operations XLA runs per GD step (the `fori_loop` body of the optimised HLO, "
        f"`jax.jit(jax.vmap(cell)).lower(...).compile().as_text()`, {tp['batch_size']} cells):")
    lines.append("")
    kinds = ["YNNPACK dot", "Eigen dot", "elementwise fusion", "copy"]
    rows = []
    for flags, lv in levers.items():
        for cell, census in lv["census"].items():
            rows.append([cell, f"`{flags}`" if flags else "(none)", *(census.get(k, 0) for k in kinds)])
    lines += ["  " + ln for ln in _table(["cell", "XLA_FLAGS", *kinds], rows)]
    lines.append("")
    lines.append(
        "  Every vmapped dot is one batched dot op (batch dimension first), not a loop over cells. XLA:CPU hands a "
        "dot to YNNPACK only when its left operand needs no transposing (`IsDotSupportedByYnn`, "
        "xla/backends/cpu/ynn_support.cc); written as `b.T @ e`, W2ᵀE is not such a dot: it runs in Eigen, or, "
        "with `--xla_cpu_multi_thread_eigen=false`, after XLA materialises the transpose in an extra elementwise "
        "pass (autodiff's transposed dot in `dynamics.descend` stays in Eigen). Carrying W2ᵀ alongside W2 (updated "
        "with the transposed gradient, so it stays exactly W2ᵀ; 3 more d² flops per step) makes every dot a YNNPACK "
        "dot. The copies are XLA's copies of the loop carry.")
    bs = {r["batch_size"]: r for r in levers[head_flags]["rows"] if r["n_devices"] == head["n_devices"]
          and r["unroll"] == 1 and r["carry_transpose"]}
    lines.append("* **batch_size** (cells per vmap on each device): " + ", ".join(
        f"{k}: {v['gflops_best']:.0f}" for k, v in sorted(bs.items())) + " GFLOP/s. Small micro-batches keep a "
        "step's (batch, d, d) operands in L1/L2.")
    for d, b in sorted(tp["dot_bounds"].items(), key=lambda kv: int(kv[0])):
        kinds_txt = ", ".join(f"{k} {v:.0f}" for k, v in b.items() if k != "3 dots, harmonic")
        grid = next(g for g in tp["grids"] if int(g["d"]) == int(d))
        lean = grid["rows"][0]["gflops_best"]
        bound = b["3 dots, harmonic"]
        text = (f"* **Dots alone, d = {d}** ({tp['batch_size']} nets per vmap, {tp['jax_devices']} devices, a "
                f"chain of dependent dots in a `fori_loop`): {kinds_txt} GFLOP/s (Aᵀ·B is what `b.T @ e` asks for). "
                f"The headline step's three dots (two "
                f"A·B, one A·Bᵀ) run at most at their harmonic mean, **{bound:.0f} GFLOP/s** ({bound / peak:.0%} of "
                f"peak). The whole step "
                f"(headline) runs at {lean:.0f} GFLOP/s, {lean / bound:.0%} of that")
        text += ("; the rest is the step's elementwise passes over (batch, d, d) arrays and carry copies, which move "
                 "memory rather than do flops, and XLA's per-op dispatch." if lean <= bound else
                 " (above 100 %: the dot-only timing was slowed by other processes).")
        lines.append(text)
    cost = tp.get("sweep_call_cost", {})
    if cost:
        lines.append("* **run_sweep's fixed cost per call** (1-step cell: tracing, lowering, loading the program from "
                     "JAX's persistent compilation cache, chunking, host transfers): " + ", ".join(
                         f"d = {d}: {v:.2f} s" for d, v in cost.items()) + "; it is inside every timed saddle call "
                     "above (run_sweep caches the compiled program per cell, so this is chunking and host transfers).")
    lines.append(
        "* **Per busy core** (GFLOP/s ÷ cores busy, tables above) separates the kernels' efficiency from how many "
        "cores an implementation keeps busy: NumPy runs every 32³/64³ product on one core (OpenBLAS stays "
        "single-threaded below m·n·k = 262144), the saddle sweep on one core per device.")
    lines.append(
        "* **Peak.** A 2048² matmul reaches the peak; batched 32³ and 64³ products cannot: each packs small "
        "operands and runs short inner loops, so every implementation stays well below peak at d = 32 and comes "
        "closer at d = 64.")
    lines.append("")
    return lines


def flow_section(fl: dict, targets: list) -> list:
    lines = ["## (b) Gradient flow: adaptive diffrax vs fixed-step Euler", ""]
    lines.append(
        f"Two-layer linear net (in = hidden = out = {fl['width']}), teacher s = {tuple(fl['s'])}, white inputs "
        f"(population statistics), small aligned balanced init u0 = {fl['u0']:g}, horizon t = {fl['horizon']:g} τ. "
        f"Every mode climbs a logistic from one saddle to the next; reference: the closed form "
        f"`theory.linear.mode_strength` (Saxe et al. 2014, arXiv 1312.6120, Eq. 8). Error = max over "
        f"{fl['n_times']} equally spaced times and the 4 modes of |u_α − u_α^theory|, float64. RHS evaluations "
        f"(gradients ∇L) are counted by a `jax.debug.callback` in a custom VJP of the loss: every gradient diffrax "
        f"takes (all stages, rejected steps, the initial step-size guess) and none of the loss-only evaluations at the "
        f"save times. Euler (θ ← θ − dt ∇L, i.e. `dynamics.descend` with `optax.sgd(dt)`) takes one gradient per step "
        f"(the counter saw {fl['counter_check']['counted']} in {fl['counter_check']['steps']} steps).")
    lines.append("")
    lines += _table(["diffrax Tsit5 + PID, rtol (atol = rtol/100)", "RHS evaluations", "max error", "seconds"],
                    [[f"{r['rtol']:.0e}", r["rhs"], f"{r['max_err']:.2e}", f"{r['seconds']:.2f}"] for r in fl["flow"]])
    lines.append("")
    lines += _table(["Euler dt", "RHS evaluations (= steps)", "max error", "seconds"],
                    [[f"{r['dt']:.1e}", r["rhs"], f"{r['max_err']:.2e}", f"{r['seconds']:.2f}"] for r in fl["euler"]])
    lines.append("")
    at = fl["flow_at_target"]
    lines.append(
        f"Euler's error is first order: the measured order between the two finest runs is {fl['euler_order']:.3f}, "
        f"error ≈ {fl['euler_C']:.2f} · dt. Reaching max error {fl['target']:.0e} therefore needs dt = "
        f"{fl['target'] / fl['euler_C']:.1e}, i.e. **{fl['euler_rhs_at_target']:.2e} RHS evaluations (extrapolated "
        f"from the fit, not run)**; diffrax reaches {at['max_err']:.1e} ≤ {fl['target']:.0e} with **{at['rhs']}** "
        f"(rtol {at['rtol']:.0e}): **{fl['ratio_at_target']:.2e}× fewer**.")
    d = fl["direct"]
    if d:
        lines.append("")
        lines.append(
            f"Without extrapolation: the finest Euler run (dt = {d['euler']['dt']:.1e}, {d['euler']['rhs']} RHS) "
            f"reaches {d['euler']['max_err']:.1e}; diffrax does better ({d['flow']['max_err']:.1e}) with "
            f"{d['flow']['rhs']} RHS: {d['ratio']:.0f}× fewer.")
    lines.append("")
    targets.append(("(b) RHS evaluations, Euler / diffrax at max error ≤ 1e-6", f"≥ {TARGET_RHS_RATIO:g}×",
                    f"{fl['ratio_at_target']:.2e}× (Euler extrapolated); {d['ratio']:.0f}× measured at "
                    f"{d['euler']['max_err']:.0e}" if d else f"{fl['ratio_at_target']:.2e}×",
                    "**met**" if fl["ratio_at_target"] >= TARGET_RHS_RATIO else "**missed**"))
    return lines


def memory_section(mem: dict, targets: list) -> list:
    sw, base = mem["sweep"], mem["baseline"]
    lines = ["## (c) Peak memory of a 10,000-cell sweep", ""]
    lines.append(
        f"{sw['cells']:,} cells, each a two-layer linear net (d = h = {mem['width']}) trained for {sw['steps']} GD "
        f"steps through `dynamics.descend`, recording the loss at {sw['recorded_points']} log-spaced steps "
        f"(`dynamics.log_steps`) and its final weight norm; `run_sweep(batch_size={mem['batch_size']})` over every "
        f"CPU device, streaming chunks to disk (`out_dir`). Peak RSS of the child process from "
        f"`resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`.")
    lines.append("")
    lines += _table(["process", "peak RSS (MiB)", "outputs (MiB)", "seconds"], [
        ["baseline: imports + 1-cell sweep", f"{base['children_maxrss_mib']:.0f}", f"{base['output_bytes'] / 2**20:.3f}",
         f"{base['seconds']:.1f}"],
        [f"{sw['cells']:,}-cell sweep", f"{mem['peak_mib']:.0f}", f"{sw['output_bytes'] / 2**20:.2f}", f"{sw['seconds']:.1f}"],
    ])
    lines.append("")
    lines.append(f"The sweep itself adds {mem['sweep_minus_baseline_mib']:.0f} MiB to the runtime's baseline: memory "
                 f"is bounded by one chunk of cells in flight, not by the number of cells.")
    lines.append("")
    targets.append(("(c) peak RSS of a 10,000-cell sweep", f"< {TARGET_MEMORY_MIB / 1024:g} GiB",
                    f"{mem['peak_mib']:.0f} MiB", "**met**" if mem["peak_mib"] < TARGET_MEMORY_MIB else "**missed**"))
    return lines


def render(info: dict, tp: dict = None, levers: dict = None, fl: dict = None, mem: dict = None, *, command: str,
           seconds: float, loads: list, cs: dict = None, st: dict = None, cc: dict = None, gpu: dict = None,
           accel_cpu: dict = None) -> str:
    targets: list = []
    body = []
    if tp:
        body += throughput_section(tp, levers, targets)
    if fl:
        body += flow_section(fl, targets)
    if mem:
        body += memory_section(mem, targets)
    if cs:
        body += sections.cells_section(cs, targets)
    if st:
        body += sections.stiff_section(st, targets)
    if cc:
        body += sections.cache_section(cc, targets)
    if gpu:
        body += sections.accel_section(gpu, accel_cpu, targets)
    elif accel_cpu:
        body += sections.accel_cpu_section(accel_cpu)
    head = ["# Benchmarks", "",
            f"Written by `{command}` on {info['date']} (commit {info['commit']}) in {seconds / 60:.1f} min. "
            "Every number below was measured in that one run; the load average and, per timing, the CPU share "
            "other processes took are recorded, so a run on a busy machine shows itself.", "",
            "## Machine", ""]
    head += _table(["", ""], [
        ["CPU", info["cpu"]], ["cores", info["cores"]], ["memory", f"{info.get('memory_gib', 0):.0f} GiB"],
        ["OS", info["platform"]], ["Python", info["python"]],
        ["jax / jaxlib", f"{info['jax']} / {info['jaxlib']}"], ["optax / diffrax", f"{info.get('optax', '?')} / {info.get('diffrax', '?')}"],
        ["numpy", f"{info['numpy']} ({info['numpy_blas']})"], ["torch", info["torch"]],
        ["load average (1, 5, 15 min) before each benchmark", "; ".join(loads)]])
    head += ["", "## Targets", ""]
    head += _table(["target", "wanted", "measured", "status"], targets)
    head.append("")
    return "\n".join(head + body) + "\n"


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="50/100 GD steps instead of 1000 (~3 min); writes "
                   "benchmarks/quick.md, never BENCHMARKS.md")
    p.add_argument("--out", type=Path, help="markdown file (default: BENCHMARKS.md, or benchmarks/quick.md with --quick)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per implementation after one warm-up call "
                   "(default 3: the full run then takes ~9 min on 2 idle cores)")
    p.add_argument("--steps", type=int, help="development only: GD steps on every throughput grid (implies the "
                   "quick flow and memory runs and benchmarks/quick.md)")
    p.add_argument("--wait-idle", type=float, help="max seconds to wait for a ≥ 90%% idle CPU before each timed call "
                   "(default 10, 2 with --quick)")
    p.add_argument("--json", type=Path, help="also save every measurement here (re-render with --render-from)")
    p.add_argument("--render-from", type=Path, help="write the markdown from a --json file, measuring nothing")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(PARTS)} (default: all); writes "
                   "benchmarks/partial.md unless --out")
    p.add_argument("--gpu-only", action="store_true", help="only the accelerator section, on the accelerator JAX "
                   "finds (benchmarks/accelerator.py); writes benchmarks/gpu.md unless --out")
    p.add_argument("--gpu-json", type=Path, help="a --json file of a --gpu-only run: its section (g) is rendered "
                   "beside this run's CPU figures")
    args = p.parse_args(argv)
    args.quick = args.quick or args.steps is not None
    parts = ["accel"] if args.gpu_only else (args.only.split(",") if args.only else list(PARTS))
    bad = [x for x in parts if x not in PARTS]
    if bad:
        p.error(f"--only {','.join(bad)} is invalid; allowed: {','.join(PARTS)}")
    subset = args.gpu_only or bool(args.only)
    out = args.out or (HERE / "gpu.md" if args.gpu_only else HERE / "partial.md" if subset else
                       HERE / "quick.md" if args.quick else ROOT / "BENCHMARKS.md")
    wait = args.wait_idle if args.wait_idle is not None else (2.0 if args.quick else 10.0)
    quick = ["--quick"] if args.quick else []
    common = [*quick, "--repeats", str(args.repeats), "--wait-idle", str(wait), "--wait-budget", "60"]
    if args.steps is not None:
        common += ["--steps", str(args.steps), "--loop-flops", "1e8"]
    if args.render_from:  # re-render a saved run without measuring again
        saved = json.loads(args.render_from.read_text())
        out.write_text(render(**saved))
        log(f"wrote {out} from {args.render_from}")
        return
    start = time.perf_counter()
    info = machine()
    info["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cores = {"JAX_NUM_CPU_DEVICES": str(os.cpu_count())}
    loads = []
    saved = {"info": info}
    if "throughput" in parts:
        loads.append(f"throughput {loadavg()}")
        tp = run_json("sweep_throughput.py", [*common, "--levers"], {**cores, "XLA_FLAGS": HEADLINE_FLAGS})
        levers = {HEADLINE_FLAGS: tp.pop("levers")}
        for flags in OTHER_FLAGS:
            loads.append(f"levers `{flags or '(none)'}` {loadavg()}")
            levers[flags] = run_json("sweep_throughput.py", [*common, "--levers-only"],
                                     {**cores, "XLA_FLAGS": flags})["levers"]
        saved.update(tp=tp, levers=levers)
    if "flow" in parts:
        loads.append(f"flow {loadavg()}")
        saved["fl"] = run_json("flow_vs_euler.py", quick)
    if "memory" in parts:
        loads.append(f"memory {loadavg()}")
        saved["mem"] = run_json("sweep_memory.py", quick)
    if "cells" in parts:
        loads.append(f"cells {loadavg()}")
        small = ["--seeds", "64", "--steps", "20", "--repeats", "1"] if args.quick else ["--repeats", str(args.repeats)]
        saved["cs"] = run_json("cell_sweeps.py", [*small, "--wait-idle", str(wait)], {**cores, "XLA_FLAGS": HEADLINE_FLAGS})
    if "stiff" in parts:
        loads.append(f"stiff {loadavg()}")
        saved["st"] = run_json("stiff_flow.py", ["--depths", "2", "--solvers", "tsit5,rkc,kvaerno5"] if args.quick else ["--cli"])
        saved["st"]["machine"] = f"{info['cpu']}, {info['cores']} cores"
    if "cache" in parts:
        loads.append(f"cache {loadavg()}")
        saved["cc"] = run_json("cache_timing.py", ["--quick"] if args.quick else [])
    if "accel" in parts:
        loads.append(f"accel {loadavg()}")
        on_gpu = _accelerator()
        cpu_args = ["--nets", "1000,10000" if args.quick else "10000,100000", "--min-steps", "2", "--budget", "3",
                    "--long-nets", "0", "--torch-max-nets", "10000", "--batch-size", "256"]
        acc = run_json("accelerator.py", [] if on_gpu else cpu_args)
        acc["loadavg"] = os.getloadavg()
        if on_gpu:
            saved["gpu"] = acc
        else:
            saved["accel_cpu"] = acc
    if args.gpu_json:
        saved["gpu"] = json.loads(args.gpu_json.read_text())
        saved["gpu"] = saved["gpu"].get("gpu", saved["gpu"])  # a run_all --json file or accelerator.py's own
    command = " ".join(["python benchmarks/run_all.py", *argv])
    saved.update(command=command, seconds=time.perf_counter() - start, loads=loads)
    out.write_text(render(**saved))
    if args.json:
        args.json.write_text(json.dumps(saved, indent=1))
    log(f"wrote {out} ({(time.perf_counter() - start) / 60:.1f} min)")


if __name__ == "__main__":
    main()
