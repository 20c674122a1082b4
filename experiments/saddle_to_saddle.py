"""Saddle-to-saddle dynamics of deep linear networks from small random init
(Zhang, Saxe & Latham, arXiv 2512.20607, Fig. 2a; Saxe et al. 2014, arXiv 1312.6120;
Jacot et al. 2021, arXiv 2106.15933).

From i.i.d. N(0, σ²) weights, gradient flow visits the rank-k saddles in turn:
the loss sits on plateaus L_k = ½ tr Σyy − ½ Σ_{α≤k} s_α² (fixed by the data)
and drops when mode k is learned, at times fixed by the init: ∝ log(1/σ)/s_k at
depth 2 and ∝ σ^{−(L−2)}/s_k at depth L ≥ 3 (``theory.saddle``). The rank of W
(singular values above half the target's) climbs a staircase. Each depth is
simulated for several seeds (f64 diffrax flow, vmapped); the theory predicts
the median transition time over inits, compared with the median detected one.

    saddle run saddle-to-saddle            # depths 2, 3, 4: ~60 CPU s (~47 with a warm compilation cache)

Depth 4 at σ = 1e-3 is the expensive one: after the first escape the flow is
stiff (fastest rate ≈ L s₁^{2−2/L} = 32) while the last escape comes at
t ≈ 2e4, so the explicit Tsit5 needs ~3e5 steps per seed (1.8e6 gradients, one
seed: 57 CPU s on the shared 2-core machine). ``solver="auto"`` (default) solves
such flows with the stabilised explicit RKC instead (``flow_solver``: where the
theory's λ_max·t_end exceeds STIFF_RATIO; here depths 3 and 4): 5,400 steps,
4.1 CPU s per seed at depth 4 (``dynamics.flow.RKC``; the implicit Kvaerno5
takes 750 steps but 29 CPU s). RKC is second order, so at the same rtol = 1e-6
its transition times are less exact than the fifth-order solvers' (which agree
with each other to 4e-8): each seed's within 1.8e-4 (depth 3) and 6.0e-4
(depth 4) relative of Tsit5's / Kvaerno5's (measured 2026-12-05), far inside
the rows' ≥ 2% recording-grid step.

Seed rules, decided before training from the theory: the horizon is the time by
which all n seeds have learned every mode with probability 0.999
(``last_escape_time``), so every seed counts in every row; the transition-time
rows allow 3 standard errors of the median of n seeds, from the theory's spread
of ln t over inits (``theory.saddle.transition_time_spread``), so the rows do
not depend on one machine's rounding near the saddles (a run on another CPU is
another draw of the same law). ``tests/test_saddle_theory.py`` checks the times
over ≥ 32 seeds within 5% at depths 2-5 (slow set).
    saddle run saddle-to-saddle --smoke    # depths 2, 3 (σ = 1e-4, 1e-3): ~30 CPU s, compile included
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

import dynamics
import tasks
from dynamics.plateaus import detect_plateaus, rise_times
from experiments import plotting
from experiments.common import POSITIVE, POSITIVE_INT, POSITIVE_TUPLE, check, check_fields, field, row
from models import linear
from theory.saddle import (off_mode_bound, plateau_loss_bias, plateau_losses, theory_relative_error, transition_time_spread,
                           transition_times, transition_times_from_init)

NAME = "saddle-to-saddle"
DESCRIPTION = "deep linear nets from small random init: plateaus and escape times (arXiv 2512.20607, Fig. 2a)"

_INTS = (lambda v: all(x >= 1 for x in v), "comma-separated integers ≥ 1")


@dataclasses.dataclass(frozen=True)
class Config:
    DEPRECATED_KEYS = {"widths": "hidden", "horizon": "horizon_escapes"}  # old name -> new name, accepted (with a warning) for one release
    s: Tuple[float, ...] = field((4.0, 2.0, 1.0), POSITIVE_TUPLE, "singular values of Σyx (white inputs)")
    n_io: int = field(8, POSITIVE_INT, "input = output dimension")
    depths: Tuple[int, ...] = field((2, 3, 4), (lambda v: all(x >= 2 for x in v), "integers ≥ 2"), "weight layers per run")
    hidden: Tuple[int, ...] = field((8, 32, 32), _INTS, "hidden width (units per hidden layer) for each depth")
    init_scales: Tuple[float, ...] = field((1e-4, 1e-4, 1e-3), POSITIVE_TUPLE, "init std σ for each depth")
    n_seeds: Tuple[int, ...] = field((6, 8, 4), _INTS, "random inits for each depth")
    horizon_escapes: float = field(1.2, POSITIVE, "simulated time in multiples of the time by which every seed "
                                   "has learned every mode (theory: all n seeds with probability 0.999)")
    n_points: int = field(300, (lambda n: n >= 50, "an integer ≥ 50"), "log-spaced recording times")
    solver: str = field("auto", (lambda v: v in ("auto", "tsit5", "rkc", "kvaerno5"), "auto, tsit5, rkc or kvaerno5"),
                        "ODE solver of the flows: tsit5 (explicit), rkc (stabilised explicit, for stiff flows), "
                        "kvaerno5 (implicit), or auto: rkc where the theory's stiffness ratio λ_max·t_end exceeds "
                        "STIFF_RATIO, else tsit5")
    seed: int = field(0, None, "PRNG seed (task basis and inits)")

    def __post_init__(self):
        check_fields(self)
        n = len(self.depths)
        for name in ("hidden", "init_scales", "n_seeds"):
            check(name, getattr(self, name), len(getattr(self, name)) == n, f"one value per depth ({n})")
        check("s", self.s, list(self.s) == sorted(self.s, reverse=True), "non-increasing values")
        check("s", self.s, len(self.s) <= self.n_io, f"at most n_io = {self.n_io} values")
        check("init_scales", self.init_scales, max(self.init_scales) <= 1e-2, "σ ≤ 1e-2 (the small-init regime)")


def smoke() -> Config:
    # depth 3 at σ = 1e-3: transition times ∝ 1/σ, so 10× shorter than at 1e-4 and ~10× fewer explicit
    # steps (the flow is stiff after the first escape); every row still passes with the same tolerances
    return Config(depths=(2, 3), hidden=(8, 32), init_scales=(1e-4, 1e-3), n_seeds=(6, 8), n_points=200)


ALL_FINISH = 0.999  # probability, from the theory, that every seed has escaped by the horizon


def last_escape_time(s, depth, width, sigma, n_seeds):
    """The (ALL_FINISH^{1/n})-quantile over inits of the time the last mode is 99% learned:
    by it all n seeds have learned every mode with probability ALL_FINISH
    (``transition_times`` with ``quantile`` and ``fraction``), decided from the theory
    before training."""
    q = ALL_FINISH ** (1.0 / n_seeds)
    return float(np.max(np.asarray(transition_times(s, init_scale=sigma, depth=depth, width=width, quantile=q, fraction=0.99))))


# λ_max·t_end above which the stabilised explicit RKC is cheaper than Tsit5. Measured (one seed, CPU
# seconds of the solve, BENCHMARKS.md (e)): depth 3 (ratio 6e4) tsit5 2.7 s, rkc 1.2 s, kvaerno5 19 s;
# depth 4 (ratio 8e5) tsit5 57 s, rkc 4.1 s, kvaerno5 29 s. Below ~1e3 a flow is not stiff (depth 2: 1e2).
STIFF_RATIO = 1e3


def stiffness_ratio(s, depth, end):
    """λ_max · t_end. Once mode 1 is learned, the flow's fastest rate is the Hessian's
    largest eigenvalue at the balanced rank-1 point, λ_max = L s₁^{2−2/L} (our derivation:
    u = a^L with a per-layer scale a, ∂u/∂a_l = u/a for every layer, so the Hessian of
    ½(s₁ − u)² is s₁^{2−2/L} times the all-ones L × L matrix); an explicit solver's step is
    bounded by ~3.5/λ_max up to t_end, an implicit one's by accuracy only."""
    return depth * float(s[0]) ** (2.0 - 2.0 / depth) * end


def flow_solver(cfg: "Config", depth: int, end: float) -> str:
    """The diffrax solver of one depth's flows: cfg.solver, or for "auto" rkc
    where ``stiffness_ratio`` exceeds STIFF_RATIO, decided before training."""
    if cfg.solver != "auto":
        return cfg.solver
    return "rkc" if stiffness_ratio(cfg.s, depth, end) > STIFF_RATIO else "tsit5"


FLOW_RTOL = 1e-6  # relative tolerance of the diffrax flows


def seed_time_rtol(t, s, predicted, depth):
    """Relative accuracy of each seed's own predicted half-learning times, (n, r): one
    recording-grid step in ln t (the measured crossing is interpolated between records),
    + τ/(s_k t_k) at depth ≥ 3 (matched at the blow-up only, so the transition's own
    O(τ/s_k) duration is not) — the tolerance of the per-seed transition-time rows."""
    grid = float(np.log(t[2] / t[1]))
    extra = 0.0 if depth == 2 else 1.0 / (np.asarray(s)[None, :] * predicted)
    return grid + extra * np.ones_like(predicted)


def plateau_tolerances(t, s, predicted, eps, k, *, depth, init_scale, init_offset, trace_yy, n_io):
    """Where to read plateau k of one seed and how far its loss may sit from L_k there.

    Candidates: the recorded times strictly between the seed's own predicted
    half-learning times t_k and t_{k+1} (``transition_times_from_init``; t_0 = 0,
    t_{r+1} = ∞), decided before training. At each, the bound is

        tol = max(excess, deficit) + off_mode + init_offset + n_io² ε_mach ½ tr Σyy,

    excess/deficit from ``theory.saddle.plateau_loss_bias`` (the learned modes' remaining
    gap, the next modes' growth; the seed's times known to ``eps``, ODE rtol FLOW_RTOL),
    off_mode from ``theory.saddle.off_mode_bound`` (the init's other rows/columns carried
    into W along the open paths; 0.999 confidence per seed),
    init_offset = Σ_α s_α |u_α(0)| + ½‖W(0)‖² the loss change of the init's own random
    weights (cross-talk and off-mode parts the aligned modes leave out, O(σ^L h)), and
    the float64 rounding of the loss's cancellation (sums of n_io² products, each of
    size ≤ ½ tr Σyy). The reading is at the candidate with the smallest bound (from the
    theory only). Returns (index into t, tol); index −1 when no record falls in between.
    t: (T,), s, predicted, eps: (r,).
    """
    lo = 0.0 if k == 0 else predicted[k - 1]
    hi = np.inf if k == len(s) else predicted[k]
    idx = np.nonzero((t > lo) & (t < hi))[0]
    if idx.size == 0:
        return -1, np.inf
    # on the whole grid (one shape: one compilation per depth), then the candidates
    excess, deficit = (np.asarray(b)[idx] for b in plateau_loss_bias(t, s, predicted, k, depth=depth,
                                                                     time_rtol=eps, solver_rtol=FLOW_RTOL))
    off = off_mode_bound(s, k, init_scale=init_scale, depth=depth, n_io=n_io)
    bound = np.maximum(excess, deficit) + off + init_offset + n_io**2 * np.finfo(np.float64).eps * 0.5 * trace_yy
    j = int(np.argmin(bound))
    return int(idx[j]), float(bound[j])


def _simulate_depth(task, depth, width, sigma, n_seeds, cfg, key, progress=False):
    sizes = (cfg.n_io,) + (width,) * (depth - 1) + (cfg.n_io,)
    predicted = np.asarray(transition_times(cfg.s, init_scale=sigma, depth=depth, width=width))
    end = cfg.horizon_escapes * last_escape_time(cfg.s, depth, width, sigma, n_seeds)
    times = np.concatenate([[0.0], np.geomspace(0.02 * predicted[0], end, cfg.n_points)])

    def loss(params, _):
        return dynamics.linear_loss_from_stats(linear.end_to_end(params), task.sigma_xx, task.sigma_yx, task.trace_yy)

    def observe(params):
        return {"modes": linear.mode_strengths(params, task.u, task.v),
                "svals": jnp.linalg.svd(linear.end_to_end(params), compute_uv=False)}

    def run(params):
        # rtol 1e-6 suffices: times are compared per seed at ≈ 1%; plateaus enter as N·rtol·s (plateau_tolerances)
        # progress: a live bar over simulated time for this depth's vmapped seeds (minutes at depth 4)
        traj = dynamics.gradient_flow(loss, params, None, times=times, observe=observe, rtol=FLOW_RTOL,
                                      atol=1e-6 * sigma**2, progress=progress, solver=flow_solver(cfg, depth, end))
        return traj.loss, traj.stats

    # each seed's transition times predicted from its own init, before training
    inits = jax.vmap(lambda k: linear.init_gaussian(k, sizes, std=sigma))(jax.random.split(key, n_seeds))
    per_seed = transition_times_from_init([np.asarray(w) for w in inits], task.u, task.v, cfg.s)
    losses, stats = jax.jit(jax.vmap(run))(inits)
    return times, np.asarray(losses), np.asarray(stats["modes"]), np.asarray(stats["svals"]), per_seed


def simulate(cfg: Config, progress: bool = False) -> dict:
    key_task, key_init = jax.random.split(jax.random.key(cfg.seed))
    task = tasks.teacher(key_task, n_in=cfg.n_io, n_out=cfg.n_io, s=cfg.s)
    out = {"s": np.asarray(task.s), "trace_yy": np.asarray(task.trace_yy)}
    runs = zip(cfg.depths, cfg.hidden, cfg.init_scales, cfg.n_seeds, jax.random.split(key_init, len(cfg.depths)))
    for depth, width, sigma, n_seeds, key in plotting.progress(list(runs), progress, desc="depths"):
        t, loss, modes, svals, per_seed = _simulate_depth(task, depth, width, sigma, n_seeds, cfg, key, progress)
        out.update({f"t_{depth}": t, f"loss_{depth}": loss, f"modes_{depth}": modes, f"svals_{depth}": svals,
                    f"predicted_{depth}": per_seed})
    return out


def verify(arrays: dict, cfg: Config) -> list:
    """Per depth, every seed counts (the horizon is set so that all seeds finish,
    ``last_escape_time``): the number of seeds with r + 1 plateaus (all of them,
    ``detect_plateaus``); each plateau loss L_k read, per seed, at the record between
    the seed's own predicted half-learning times t_k and t_{k+1}
    (``transition_times_from_init``, before training) where the theory's bias bound is
    smallest, against that bound (``plateau_tolerances``: the learned modes' remaining
    gap, the next mode's growth, the init's off-mode weights, rounding; absolute; the
    row shows the seed farthest in units of its own bound); the median over all seeds of each mode's half-learning time vs
    ``transition_times``, within 3 standard errors of the median, computed before
    training from the theory's spread of ln t over inits (1.2533 · spread/√n,
    ``transition_time_spread``) and the theory's own Monte-Carlo error, plus one
    recording-grid step in ln t (the crossing is interpolated between records); and
    every seed's time against the prediction from its own init
    (``transition_times_from_init``, computed before training), within the grid
    step (+ τ/(s_k t_k) at depth ≥ 3, the unmatched duration of the transition)."""
    s, trace_yy = arrays["s"], float(arrays["trace_yy"])
    theory_pl = np.asarray(plateau_losses(s, trace_yy=trace_yy))
    rows = []
    for depth, width, sigma in zip(cfg.depths, cfg.hidden, cfg.init_scales):
        t, losses = arrays[f"t_{depth}"], arrays[f"loss_{depth}"]
        n = len(losses)
        found = [detect_plateaus(t, loss) for loss in losses]
        good = [p for p in found if p.n_plateaus == len(theory_pl)]
        rows.append(row(f"depth {depth}: seeds with {len(theory_pl)} plateaus (of {n})", n, len(good), tol=0, relative=False))
        pred, modes, svals = arrays[f"predicted_{depth}"], arrays[f"modes_{depth}"], arrays[f"svals_{depth}"]
        eps = seed_time_rtol(t, s, pred, depth)
        for k, th in enumerate(theory_pl):
            read = []  # (|deviation| / tol, seed, record, tol) per seed
            for i in range(n):
                offset = float(np.sum(np.asarray(s) * np.abs(modes[i, 0])) + 0.5 * np.sum(svals[i, 0] ** 2))
                j, tol = plateau_tolerances(t, s, pred[i], eps[i], k, depth=depth, init_scale=sigma, init_offset=offset,
                                            trace_yy=trace_yy, n_io=cfg.n_io)
                read.append((abs(losses[i, j] - th) / tol if j >= 0 else np.inf, i, j, tol))
            _, i, j, tol = max(read)
            rows.append(row(f"depth {depth}: plateau {k} loss at its least-biased record between the seed's own "
                            f"predicted times (seed farthest in units of its bound, {n} seeds; absolute)",
                            float(th), float(losses[i, j]) if j >= 0 else np.nan, tol=tol, relative=False))
        theory_t = np.asarray(transition_times(s, init_scale=sigma, depth=depth, width=width))
        spread = transition_time_spread(s, init_scale=sigma, depth=depth, width=width)
        se = np.sqrt((1.2533 * spread / np.sqrt(n)) ** 2 + theory_relative_error(s, depth=depth, width=width) ** 2)
        grid = float(np.log(t[2] / t[1]))
        each = rise_times(t, np.moveaxis(arrays[f"modes_{depth}"], 1, 0), np.asarray(s) / 2)  # (n, r)
        sim_t = np.median(each, axis=0)
        for k in range(len(s)):
            rows.append(row(f"depth {depth}: mode {k + 1} transition time (median of {n} seeds, sigma={sigma:g})",
                            theory_t[k], sim_t[k], tol=float(3 * se[k] + grid)))
            # per seed against its own init's prediction, within ``seed_time_rtol``
            i = int(np.argmax(np.abs(each[:, k] / pred[:, k] - 1)))
            rows.append(row(f"depth {depth}: mode {k + 1} transition time, seed farthest from its own init's prediction "
                            f"(all {n} seeds)", pred[i, k], each[i, k], tol=float(eps[i, k])))
    return rows


def plot(arrays: dict, cfg: Config) -> dict:
    s, trace_yy = arrays["s"], float(arrays["trace_yy"])
    theory_pl = np.asarray(plateau_losses(s, trace_yy=trace_yy))
    fig, grid = plotting.plt.subplots(2, len(cfg.depths), figsize=(4.3 * len(cfg.depths), 6.4), squeeze=False, sharex="col")
    threshold = 0.5 * float(np.min(s))
    for j, (depth, width, sigma) in enumerate(zip(cfg.depths, cfg.hidden, cfg.init_scales)):
        ax_loss, ax_rank = grid[0, j], grid[1, j]
        t = arrays[f"t_{depth}"][1:]
        theory_t = np.asarray(transition_times(s, init_scale=sigma, depth=depth, width=width))
        for i, loss in enumerate(arrays[f"loss_{depth}"]):
            ax_loss.plot(t, loss[1:], color="C0", lw=1.2, alpha=0.5, label="simulation (seeds)" if i == 0 else None)
            rank = np.sum(arrays[f"svals_{depth}"][i, 1:] > threshold, axis=1)
            ax_rank.plot(t, rank + 0.03 * (i - len(arrays[f"loss_{depth}"]) / 2), color="C0", lw=1.2, alpha=0.5)
        floor = 1e-4 * trace_yy
        for k, level in enumerate(theory_pl):
            if level > floor:
                ax_loss.axhline(level, label="plateau theory" if k == 0 else None, **plotting.THEORY)
            else:  # below the log axis (0 without noise): say so, never draw it at the floor
                ax_loss.annotate(f"plateau {k} theory: L = 0 ↓" if level <= 1e-9 * trace_yy  # zero up to rounding, as in verify
                                 else f"plateau {k} theory: L = {level:.2g} (below axis) ↓",
                                 xy=(0.98, 0.01), xycoords="axes fraction", ha="right", va="bottom", fontsize=8,
                                 bbox=dict(fc="white", ec="none", alpha=0.85))
        for k, tk in enumerate(theory_t):
            for ax in (ax_loss, ax_rank):
                ax.axvline(tk, color="C3", ls=":", lw=1.2, label="transition theory" if (k == 0 and ax is ax_loss) else None)
        ax_rank.step(np.concatenate([[t[0]], theory_t, [t[-1]]]), np.arange(len(s) + 2).clip(max=len(s)),
                     where="post", label="theory", **plotting.THEORY)
        ax_loss.set(xscale="log", yscale="log", ylim=(floor / 2, trace_yy), ylabel="loss L = ½E‖y − ŷ‖²",
                    title=f"depth {depth}, width {width}, σ = {sigma:g}")
        ax_rank.set(xscale="log", xlabel="time t/τ (log)", ylabel=f"rank of W (σ_i > {threshold:g})")
        ax_loss.legend(fontsize=7, frameon=False, loc="lower left")
        ax_rank.legend(fontsize=7, frameon=False, loc="upper left")
    fig.tight_layout()
    return {"saddle_to_saddle": fig}


# ------------------------------------------------------------------ sweeps
# `saddle sweep saddle-to-saddle --grid seed=0,...,63`: every cell is one init of the
# first depth. Its width, σ and depth are per-depth tuples (one run each), so
# only the seed is traced; sweep the others with `saddle run --set`.
SWEEP_FIELDS = ("seed",)
SWEEP_METRIC = "half_time_rel_err"


def cell(cfg: Config, values: dict) -> dict:
    """One random init of the first depth (depths[0], hidden[0], init_scales[0])
    with the seed traced, by gradient flow on the recording grid of ``simulate``:
    the loss, each mode's half-learning time (mode strength reaches s_α/2), and
    its worst relative error against ``transition_times`` (a median over inits:
    one seed's error includes the init-to-init spread, ~20% at width 8)."""
    from experiments.saxe_modes import crossing_time

    key_task, key_init = jax.random.split(jax.random.key(values["seed"]))
    depth, width, sigma = cfg.depths[0], cfg.hidden[0], cfg.init_scales[0]
    task = tasks.teacher(key_task, n_in=cfg.n_io, n_out=cfg.n_io, s=cfg.s)
    sizes = (cfg.n_io,) + (width,) * (depth - 1) + (cfg.n_io,)
    with jax.ensure_compile_time_eval():  # static config: the theory runs on concrete values while tracing
        predicted = np.asarray(transition_times(cfg.s, init_scale=sigma, depth=depth, width=width))
        end = cfg.horizon_escapes * last_escape_time(cfg.s, depth, width, sigma, 1)  # the seed rule of simulate
    times = np.concatenate([[0.0], np.geomspace(0.02 * predicted[0], end, cfg.n_points)])

    def loss(params, _):
        return dynamics.linear_loss_from_stats(linear.end_to_end(params), task.sigma_xx, task.sigma_yx, task.trace_yy)

    traj = dynamics.gradient_flow(loss, linear.init_gaussian(key_init, sizes, std=sigma), None, times=times,
                                  observe=lambda p: linear.mode_strengths(p, task.u, task.v), rtol=FLOW_RTOL,
                                  atol=1e-6 * sigma**2, solver=flow_solver(cfg, depth, end))
    half = jax.vmap(crossing_time, in_axes=(None, 1, 0))(jnp.asarray(times), traj.stats, task.s / 2)
    return {"loss": traj.loss, "half_time": half, "half_time_rel_err": jnp.max(jnp.abs(half / predicted - 1.0))}
