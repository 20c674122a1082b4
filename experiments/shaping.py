"""Shaping: RL-perceptron students of a compositional task, simulated at N = 1000 against the
exact order-parameter ODEs (Lee, Sarao Mannelli & Saxe, ICML 2024, arXiv 2402.18361;
``theory.shaping``, ``models.rl_perceptron``).

1. One primitive, T = 1, 2, 4 decisions per episode (reward only if all are right): R(α),
   mean over seeds (vmapped, ``dynamics.sweep.run_sweep`` over (T, seed) cells, T masked so one
   program serves every T) against the ODE, and the plateau against R*(T, η).
2. The composite task (K primitives, readout v), vanilla (from R = 0) and shaped (primitives
   pre-trained alone to R* − margin first): ρ̃(α) and R_k(α), simulation vs ODE.
3. Theory sweep (``dynamics.sweep.run_sweep`` over T = 1..t_max): R*(T) and the α to reach
   ρ̃ = R* − margin, vanilla vs shaped; the paper's headline: shaping helps more as T grows.

Time is α = episodes / N. Tolerances: the seed mean has Monte-Carlo standard error
SE(α) = sd(α)/√S (sd across seeds, ~c/√N); rows allow 4 SE (max over ~25 record times) plus
2/N for the O(1/N) drift of a discrete-episode process from its N → ∞ ODE.

    saddle run shaping            # 225 s wall (~4 min) on 2 CPU cores shared by ~8 jobs (load ~15)
    saddle run shaping --smoke    # ~20 s CPU (16-90 s wall under that load)

Paper vs saddle. Our stored copy of arXiv 2402.18361 held only its abstract ("a complex interplay
between task complexity and the efficacy of shaping strategies ... faster and more robust
learning"); the numbers the authors' code computes are what we compare with:
  * R*(T) from the authors' ``func_max_overlap`` (η = 1) — ``theory.shaping.fixed_point`` agrees to
    1e-12 (tests/test_shaping.py); R* = 0.645, 0.783, 0.877, 0.933 for T = 1, 2, 4, 8.
  * saddle measures (full config, N = 1000, 8 seeds): R(α) within 0.006, 0.008, 0.009 of the ODE
    for T = 1, 2, 4 (tol 4 SE + 2/N = 0.027, 0.023, 0.034); the plateaus 0.646, 0.788, 0.875 against
    R* 0.645, 0.783, 0.877; composite ρ̃(α) within 0.003 (vanilla) and 0.002 (shaped).
  * learning time to ρ̃ = R* − 0.01 (theory, K = 4, v* ∝ 1, v(0) ∝ (.4, .3, .2, .1), η = η_v = 1),
    vanilla / shaped (pre-training + composite): 22.5/9.0, 37.9/13.1, 81.1/24.0, 434/109, 1195/291
    for T = 1, 2, 4, 8, 10: a speed-up of 2.50, 2.89, 3.38, 4.00, 4.11 that grows with T — the
    issue's headline (shaping helps more as T grows). Both times grow roughly like 2^T (the
    initial reward rate is P^T = 2^−T at R = 0).
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

from dynamics.episodes import run_episodes
from dynamics.sweep import run_sweep
from experiments import plotting
from experiments.common import POSITIVE, POSITIVE_INT, POSITIVE_TUPLE, bound_row, check, check_fields, field, row
from models import rl_perceptron as rl
from theory import shaping

NAME = "shaping"
DESCRIPTION = "RL perceptron on a compositional task: ODE vs N=1000 simulation, shaping vs vanilla (Lee et al. 2024)"

_INT_TUPLE = (lambda v: len(v) > 0 and all(int(x) == x and x >= 1 for x in v), "comma-separated integers ≥ 1")


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = field(1000, (lambda n: n >= 100, "an integer ≥ 100"), "input dimension N")
    Ts: Tuple[int, ...] = field((1, 2, 4), _INT_TUPLE, "decisions per episode T of the single-primitive runs")
    learning_rate: float = field(1.0, POSITIVE, "η of the primitive weights w (paper's units: α = episodes/N)")
    v_learning_rate: float = field(1.0, POSITIVE, "η_v of the composite readout v")
    n_seeds: int = field(8, (lambda n: n >= 3, "an integer ≥ 3 (a spread needs seeds)"), "seeds (vmapped)")
    alpha_factor: float = field(2.0, POSITIVE, "simulated α per T, in multiples of the primitive's predicted learning time")
    n_records: int = field(24, (lambda n: n >= 4, "an integer ≥ 4"), "recording times per run")
    v_teacher: Tuple[float, ...] = field((1.0, 1.0, 1.0, 1.0), POSITIVE_TUPLE, "teacher readout v* (K primitives)")
    v0: Tuple[float, ...] = field((0.4, 0.3, 0.2, 0.1), POSITIVE_TUPLE, "student readout at the start of the composite task")
    composite_T: int = field(2, POSITIVE_INT, "T of the simulated composite task")
    composite_alpha: float = field(8.0, POSITIVE, "simulated α of the composite phase")
    t_max: int = field(10, POSITIVE_INT, "theory sweep: T = 1..t_max")
    margin: float = field(0.01, POSITIVE, "learning-time threshold ρ̃ = R* − margin (the authors' choice)")
    seed: int = field(0, None, "PRNG seed")

    def __post_init__(self):
        check_fields(self)
        check("v0", self.v0, len(self.v0) == len(self.v_teacher), f"{len(self.v_teacher)} values (one per primitive)")


def smoke() -> Config:
    return Config(n=400, Ts=(1, 2), n_seeds=4, alpha_factor=1.0, n_records=8, v_teacher=(1.0, 1.0),
                  v0=(0.8, 0.2), composite_T=1, composite_alpha=2.0, t_max=4)


def _learning_times(cfg: Config, T, learning_rate):
    common = dict(learning_rate=learning_rate, v_learning_rate=cfg.v_learning_rate, v_teacher=jnp.asarray(cfg.v_teacher),
                  v0=jnp.asarray(cfg.v0), margin=cfg.margin)
    return shaping.learning_time(T, shaped=False, **common), shaping.learning_time(T, shaped=True, **common)


def _primitive_time(cfg: Config, T) -> np.ndarray:
    """Predicted α for one primitive to reach R* − margin from R = 0 (sets each run's length)."""
    f = jax.vmap(lambda t: shaping.primitive_learning_time(t, learning_rate=cfg.learning_rate, margin=cfg.margin))
    with jax.ensure_compile_time_eval():  # concrete even when called inside a sweep cell's trace
        return np.asarray(f(jnp.atleast_1d(jnp.asarray(T, float)))).reshape(np.shape(T))


def _primitive_cell(cfg: Config, max_T: int):
    """(T, seed, every) → R(α) of one primitive at the records, one program for every T ≤ max_T."""
    def cell(values):
        kt, ks, kr = jax.random.split(jax.random.key(values["seed"]), 3)
        teacher = rl.init_teacher(kt, cfg.n, jnp.ones(1))
        student = rl.init_student(ks, teacher, r0=0.0, v0=jnp.ones(1))
        lr = values.get("learning_rate", cfg.learning_rate)
        ep = lambda s, k: rl.primitive_episode(s, teacher, k, T=values["T"], learning_rate=lr, max_T=max_T)  # noqa: E731
        rec = run_episodes(ep, student, kr, n_records=cfg.n_records, every=values["every"].astype(int),
                           observe=lambda s: rl.overlaps(s, teacher)[0])
        return {"r": rec.observed, "episodes": rec.episodes}
    return cell


def _composite_cell(cfg: Config):
    """(seed, pre_episodes) → ρ̃, R_k, v over the composite phase; pre_episodes = 0 is vanilla."""
    T, every = cfg.composite_T, max(1, int(round(cfg.composite_alpha * cfg.n / cfg.n_records)))

    def observe(teacher):
        return lambda s: {"rho": rl.composite_overlap(s, teacher), "r": rl.overlaps(s, teacher), "v": s.v}

    def cell(values):
        kt, ks, kr = jax.random.split(jax.random.key(values["seed"]), 3)
        teacher = rl.init_teacher(kt, cfg.n, jnp.asarray(cfg.v_teacher))
        student = rl.init_student(ks, teacher, r0=0.0, v0=jnp.asarray(cfg.v0))
        n_pre = values["pre_episodes"].astype(int)
        pre = run_episodes(lambda s, k: rl.primitive_episode(s, teacher, k, T=T, learning_rate=cfg.learning_rate),
                           student, kr, n_records=1, every=n_pre, observe=lambda s: 0.0)
        comp = run_episodes(lambda s, k: rl.composite_episode(s, teacher, k, T=T, learning_rate=cfg.learning_rate,
                                                              v_learning_rate=cfg.v_learning_rate),
                            pre.final, kr, n_records=cfg.n_records, every=every, observe=observe(teacher), start=n_pre)
        return {**comp.observed, "episodes": comp.episodes - n_pre}
    return cell


def simulate(cfg: Config, progress: bool = False) -> dict:
    out = {}
    # 3. theory sweep over T: R*, learning times vanilla vs shaped (one compiled program over T)
    t_grid = np.arange(1, cfg.t_max + 1, dtype=float)

    def theory_cell(values):
        van, sh = _learning_times(cfg, values["T"], cfg.learning_rate)
        return {"r_star": shaping.fixed_point(values["T"], cfg.learning_rate), "vanilla": van.total,
                "shaped": sh.total, "shaped_pretrain": sh.pretrain, "shaped_composite": sh.composite}

    th, _ = run_sweep(theory_cell, {"T": t_grid}, progress=progress, batch_size=len(t_grid))
    out.update({"T_grid": t_grid, **{f"lt_{k}": v for k, v in th.items() if k != "r_star"}, "r_star": th["r_star"]})

    # 1. one primitive, T in Ts: (T, seed) cells
    ts = np.asarray(cfg.Ts, dtype=float)
    # one evaluation (one compiled shape) for the Ts and the composite task's pre-training
    prim_times = _primitive_time(cfg, np.append(ts, cfg.composite_T))
    every = np.maximum(1, np.round(cfg.alpha_factor * prim_times[:-1] * cfg.n / cfg.n_records)).astype(int)
    seeds = cfg.seed * 1000 + np.arange(cfg.n_seeds)
    cells = {"T": np.repeat(ts, cfg.n_seeds), "seed": np.tile(seeds, len(ts)), "every": np.repeat(every, cfg.n_seeds)}
    prim, _ = run_sweep(_primitive_cell(cfg, int(max(cfg.Ts))), cells, progress=progress, batch_size=cfg.n_seeds)
    alpha = np.asarray(prim["episodes"]).reshape(len(ts), cfg.n_seeds, -1)[:, 0] / cfg.n  # (nT, R+1)
    out["prim_alpha"] = alpha
    out["prim_r"] = np.asarray(prim["r"]).reshape(len(ts), cfg.n_seeds, -1)
    out["prim_r_theory"] = np.stack([np.asarray(shaping.overlap(a, T=int(T), learning_rate=cfg.learning_rate))
                                     for a, T in zip(alpha, cfg.Ts)])
    out["prim_r_star"] = np.asarray(shaping.fixed_point(ts, cfg.learning_rate))

    # 2. composite task at composite_T, vanilla vs shaped
    T = cfg.composite_T
    n_pre = int(round(float(prim_times[-1]) * cfg.n))
    cells = {"seed": np.tile(seeds, 2), "pre_episodes": np.repeat([0, n_pre], cfg.n_seeds)}
    comp, _ = run_sweep(_composite_cell(cfg), cells, progress=progress, batch_size=cfg.n_seeds)
    alpha_c = np.asarray(comp["episodes"])[0] / cfg.n
    r_pre = float(shaping.overlap(np.asarray([n_pre / cfg.n]), T=T, learning_rate=cfg.learning_rate)[0])
    for i, (name, r0) in enumerate([("vanilla", 0.0), ("shaped", r_pre)]):
        sl = slice(i * cfg.n_seeds, (i + 1) * cfg.n_seeds)
        ode = shaping.composite(alpha_c, T=T, learning_rate=cfg.learning_rate, v_learning_rate=cfg.v_learning_rate,
                                v_teacher=jnp.asarray(cfg.v_teacher), r0=r0, v0=jnp.asarray(cfg.v0))
        out[f"{name}_rho"], out[f"{name}_r"] = np.asarray(comp["rho"])[sl], np.asarray(comp["r"])[sl]
        out[f"{name}_rho_theory"] = np.asarray(shaping.composite_overlap(ode.r, ode.v, jnp.asarray(cfg.v_teacher)))
        out[f"{name}_r_theory"] = np.asarray(ode.r)
    out["comp_alpha"] = alpha_c
    out["comp_pre_alpha"] = np.float64(n_pre / cfg.n)
    return out


def _tol(sim, n):
    """4 standard errors of the seed mean (sim: (S, ...)) plus 2/N (O(1/N) finite-N drift)."""
    return 4.0 * np.max(np.std(sim, axis=0, ddof=1)) / np.sqrt(sim.shape[0]) + 2.0 / n


def verify(arrays: dict, cfg: Config) -> list:
    """Seed means against the ODEs (tol: 4 SE + 2/N, module docstring); the plateau over the
    last quarter of each run against R* (tol adds the ODE's own remaining gap there); the headline
    as one-sided rows: shaped is faster at every T and its advantage grows from T = 1 to t_max."""
    rows = []
    n = cfg.n
    for j, T in enumerate(cfg.Ts):
        sim, th = arrays["prim_r"][j], arrays["prim_r_theory"][j]
        i = int(np.argmax(np.abs(sim.mean(0) - th)))
        rows.append(row(f"R(alpha) of one primitive, T={T}, worst record (seed mean)", th[i], sim.mean(0)[i],
                        tol=_tol(sim, n), relative=False))
        q = slice(-max(2, cfg.n_records // 4), None)
        gap = abs(float(np.mean(th[q])) - arrays["prim_r_star"][j])
        rows.append(row(f"R* plateau, T={T} (last quarter of the run)", arrays["prim_r_star"][j], sim[:, q].mean(),
                        tol=_tol(sim[:, q].mean(1, keepdims=True), n) + gap, relative=False))
    for name in ("vanilla", "shaped"):
        sim, th = arrays[f"{name}_rho"], arrays[f"{name}_rho_theory"]
        i = int(np.argmax(np.abs(sim.mean(0) - th)))
        rows.append(row(f"composite overlap rho(alpha), {name}, T={cfg.composite_T}", th[i], sim.mean(0)[i],
                        tol=_tol(sim, n), relative=False))
        sim, th = arrays[f"{name}_r"], arrays[f"{name}_r_theory"]
        i = np.unravel_index(np.argmax(np.abs(sim.mean(0) - th)), th.shape)
        rows.append(row(f"primitive overlaps R_k(alpha) in the composite task, {name}, worst k", th[i], sim.mean(0)[i],
                        tol=_tol(sim, n), relative=False))
    ratio = arrays["lt_vanilla"] / arrays["lt_shaped"]
    rows.append(bound_row("learning time vanilla/shaped, min over T (theory)", ratio.min(), at_least=1.0))
    rows.append(bound_row(f"speed-up of shaping at T={cfg.t_max} over T=1 (theory)", ratio[-1] / ratio[0], at_least=1.0))
    return rows


def plot(arrays: dict, cfg: Config) -> dict:
    fig, (ax_r, ax_star, ax_lt, ax_c) = plotting.figure(4)
    cs = plotting.colors(len(cfg.Ts))
    for j, T in enumerate(cfg.Ts):
        a, sim = arrays["prim_alpha"][j], arrays["prim_r"][j]
        ax_r.plot(a, sim.mean(0), color=cs[j], label=f"T={T}", **plotting.SIM)
        ax_r.fill_between(a, *np.percentile(sim, [10, 90], axis=0), color=cs[j], alpha=0.15, lw=0)
        ax_r.plot(a, arrays["prim_r_theory"][j], zorder=3, **plotting.THEORY)
    ax_r.plot([], [], label="ODE", **plotting.THEORY)
    ax_r.set(xlabel="time α = episodes / N", ylabel="overlap R = w·w*/N", title=f"one primitive, N={cfg.n}")
    ax_r.legend(fontsize=8, frameon=False)
    tg = arrays["T_grid"]
    ax_star.plot(tg, arrays["r_star"], marker="o", zorder=3, **plotting.THEORY, label="R*(T) (theory)")
    q = slice(-max(2, cfg.n_records // 4), None)
    ax_star.errorbar(cfg.Ts, [arrays["prim_r"][j][:, q].mean() for j in range(len(cfg.Ts))],
                     yerr=[arrays["prim_r"][j][:, q].mean(1).std(ddof=1) for j in range(len(cfg.Ts))],
                     fmt="s", color="C1", label="simulation (last quarter)")
    ax_star.set(xlabel="decisions per episode T", ylabel="asymptotic overlap R*", title=f"η={cfg.learning_rate:g}")
    ax_star.legend(fontsize=8, frameon=False)
    ax_lt.plot(tg, arrays["lt_vanilla"], color="C3", marker="o", label="vanilla", **plotting.SIM)
    ax_lt.plot(tg, arrays["lt_shaped"], color="C0", marker="s", label="shaped (pre-train + composite)", **plotting.SIM)
    ax_lt.plot(tg, arrays["lt_shaped_composite"], color="C0", marker="^", ls=":", lw=1.4, label="shaped, composite phase")
    ax_lt.set(xlabel="decisions per episode T", ylabel="α to reach ρ̃ = R* − margin", yscale="log",
              title="learning time (theory)")
    ax_lt.legend(fontsize=8, frameon=False)
    a = arrays["comp_alpha"]
    for name, c in (("vanilla", "C3"), ("shaped", "C0")):
        ax_c.plot(a, arrays[f"{name}_rho"].mean(0), color=c, label=name, **plotting.SIM)
        ax_c.plot(a, arrays[f"{name}_rho_theory"], zorder=3, **plotting.THEORY)
    ax_c.plot([], [], label="ODE", **plotting.THEORY)
    ax_c.set(xlabel="time α = episodes / N (composite phase)", ylabel="composite overlap ρ̃",
             title=f"composite task, K={len(cfg.v_teacher)}, T={cfg.composite_T}")
    ax_c.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return {"shaping": fig}


# ------------------------------------------------------------------ sweeps
# `saddle sweep shaping --grid learning_rate=0.5,1,2 --grid seed=0,1,2`: one cell is one seed of the
# single-primitive runs, every T in ``Ts`` (masked: one program), against the ODE at that rate.
SWEEP_FIELDS = ("seed", "learning_rate")
SWEEP_METRIC = "r_err"


def cell(cfg: Config, values: dict) -> dict:
    """R(α) for each T in ``Ts`` at (seed, learning_rate) (T, records), the final R, the
    probability of an unrewarded episode 1 − P(R)^T as "loss", and the worst |R_sim − R_ODE|
    over T and α (one seed: a finite-N error of order 1/√N)."""
    ts = np.asarray(cfg.Ts, dtype=float)
    every = np.maximum(1, np.round(cfg.alpha_factor * _primitive_time(cfg, ts) * cfg.n / cfg.n_records)).astype(int)
    run = _primitive_cell(cfg, int(max(cfg.Ts)))
    lr = values["learning_rate"]
    out = [run({"T": jnp.asarray(T), "seed": values["seed"], "every": jnp.asarray(e), "learning_rate": lr})
           for T, e in zip(ts, every)]
    r = jnp.stack([o["r"] for o in out])
    alpha = np.stack([e * np.arange(cfg.n_records + 1) / cfg.n for e in every])
    ode = jnp.stack([shaping.overlap(a, T=T, learning_rate=lr) for a, T in zip(alpha, ts)])
    # "loss": the probability that an episode goes unrewarded, 1 − P(R)^T (P = 1 − arccos(R)/π)
    loss = 1.0 - shaping.success_probability(r) ** jnp.asarray(ts)[:, None]
    return {"r": r, "final_r": r[:, -1], "loss": loss, "r_err": jnp.max(jnp.abs(r - ode))}
