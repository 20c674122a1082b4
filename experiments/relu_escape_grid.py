"""How long each plateau of a 1-D ReLU net lasts, over a grid of init scales σ:
every escape time is ln(1/σ) times a number fixed by the data (Zhang, Saxe &
Latham, arXiv 2512.20607; the ReLU analogue of Pesme & Flammarion, arXiv
2304.00488).

The net and targets are ``relu_kinks``' (f = Σᵢ aᵢ relu(wᵢx + bᵢ) with its affine
part fitted exactly, h units, balanced init of scale σ, full-batch GD with step
η, t = step·η in units of τ; y with K kinks from ``relu_kinks.TARGETS``). One
jit-compiled ``jax.vmap(jax.vmap)`` over seeds × σ runs every cell of a target.

Prediction 1 (small σ, ``theory.relu.incremental_escapes``). The loss sits on
K + 1 plateaus and the k-th escape comes at t_k = T_k ln(1/σ) + O(1), with
T_k the σ → 0 escape sequence for ln(1/σ) = 1 (GD rates ln(1 + ηλ)/η),
computed from the narrow optima's residuals alone. Verified: count = K + 1 for
every seed at every σ ≤ ``fit_max_scale``, and the slope of the median t_k
against ln(1/σ) over those σ equals T_k within 5% (the O(1) part — initial norms,
alignment, the drop itself — is σ-independent to leading order, so it leaves
the slope; measured error ≤ 1%). Every plateau's length ln(t_{k+1}/t_k) thus
tends to ln(T_{k+1}/T_k), set by the data: init-induced saddles whose duration
the target's structure fixes.

Prediction 2 (large σ). At σ = 0.1 the units start too large for the
small-unit picture: all kinks are fitted in one drop, count ≤ K (one-sided).

h = 128 units (``relu_kinks`` uses 32): with 32, some seeds have no unit of the
right sign in some lobe's basin (``theory.relu.lobe_occupancy``, 1 in 8 for
K = 4) and stall; with 128 that is rare, and the slope rows need every seed.

    saddle run relu-escape-grid            # K = 2, 4 × 3 seeds × 6 σ: ~45 s on 2 CPU cores
    saddle run relu-escape-grid --smoke    # K = 2 × 2 seeds × 4 σ: ~7 s

Measured (2026-12-02, h = 128, 3 seeds): K = 2: T = 25.5, 52.1, slopes within
0.15%; K = 4: T = 58.2, 101.9, 193.1, 372.3, slopes within 0.8%. The median t_k
sit below T_k ln(1/σ) by offsets that do not move with σ (K = 2: 25-26 and
50-52, about T_k: as if ln(1/σ) were ln(1/σ) − 1, the leading unit of a lobe
starting above σ; K = 4: 28-119). At σ = 1e-2 the K = 4 staircase has 3
plateaus, at 0.1 one drop (2) for both targets.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Tuple

import jax
import numpy as np

from dynamics.plateaus import detect_plateaus
from experiments import plotting, relu_kinks
from experiments.common import POSITIVE, POSITIVE_INT, bound_row, check, check_fields, field, row
from experiments.relu_plateau_grid import seed_scale_losses
from theory import relu as theory_relu

NAME = "relu-escape-grid"
DESCRIPTION = "1-D ReLU net: every escape time t_k = T_k ln(1/σ) over a vmapped seeds × σ grid, T_k from the σ→0 limit"


@dataclasses.dataclass(frozen=True)
class Config:
    DEPRECATED_KEYS = {"eta": "learning_rate", "horizon": "horizon_escapes"}  # old name -> new name, accepted (with a warning) for one release
    n_kinks: Tuple[int, ...] = field((2, 4), (lambda v: all(k in relu_kinks.TARGETS for k in v), f"integers in {sorted(relu_kinks.TARGETS)}"), "kinks K of each target (relu_kinks.TARGETS)")
    init_scales: Tuple[float, ...] = field((1e-12, 1e-9, 1e-6, 1e-4, 1e-2, 1e-1), (lambda v: len(v) >= 3 and all(0 < s <= 0.3 for s in v), "≥ 3 numbers in (0, 0.3]"), "init scales σ (increasing)")
    fit_max_scale: float = field(1e-4, POSITIVE, "escape-time slopes fitted over σ ≤ this")
    n_data: int = field(41, (lambda n: n >= 10, "an integer ≥ 10"), "training points, evenly spaced in [−1, 1]")
    hidden: int = field(128, POSITIVE_INT, "hidden units")
    learning_rate: float = field(0.2, POSITIVE, "GD learning rate η (τ = 1/η; time t/τ = step × η)")
    horizon_escapes: float = field(2.5, (lambda v: v > 1, "a number > 1"), "simulated time in multiples of the predicted last escape at the smallest σ")
    n_seeds: int = field(3, POSITIVE_INT, "random inits per (target, σ)")
    n_points: int = field(300, (lambda n: n >= 50, "an integer ≥ 50"), "log-spaced recording steps")
    narrow_inits: int = field(128, POSITIVE_INT, "inits per narrow width k (best kept)")
    narrow_steps: int = field(4000, (lambda n: n >= 100, "an integer ≥ 100"), "Adam steps per narrow net")
    seed: int = field(0, None, "PRNG seed")

    def __post_init__(self):
        check_fields(self)
        check("init_scales", self.init_scales, list(self.init_scales) == sorted(self.init_scales), "increasing values")
        check("hidden", self.hidden, self.hidden >= 2 * max(self.n_kinks), f"≥ 2 × the largest K ({2 * max(self.n_kinks)})")
        n_fit = sum(s <= self.fit_max_scale for s in self.init_scales)
        check("fit_max_scale", self.fit_max_scale, n_fit >= 2, "a value with ≥ 2 init_scales at or below it")


def smoke() -> Config:
    return Config(n_kinks=(2,), init_scales=(1e-12, 1e-8, 1e-4, 1e-1), n_seeds=2, hidden=64,
                  n_points=200, narrow_inits=32, narrow_steps=2000)


def _runs(cfg: Config, data, t_end: float, key):
    """Loss curves (seeds, σ, T) from one jit(vmap(vmap)) over seeds × init scales."""
    steps = relu_kinks.recording_steps(cfg, t_end)
    losses = seed_scale_losses(relu_kinks.LOSS, data, steps, key, hidden=cfg.hidden, eta=cfg.learning_rate,
                               n_seeds=cfg.n_seeds, init_scales=cfg.init_scales)
    return steps * cfg.learning_rate, losses


def simulate(cfg: Config, progress: bool = False) -> dict:
    out = {}
    keys = jax.random.split(jax.random.key(cfg.seed), len(cfg.n_kinks))
    for K, key in plotting.progress(list(zip(cfg.n_kinks, keys)), progress, desc="target"):
        k_wide, k_narrow = jax.random.split(key)
        x, y = data = relu_kinks._data(cfg, K)
        narrow_loss, narrow_params = relu_kinks._narrow_optima(cfg, data, K, k_narrow)
        residuals = relu_kinks.stage_residuals(x, y, narrow_params)
        per_log = theory_relu.incremental_escapes(x, residuals, log_inv_scale=1.0, eta=cfg.learning_rate).times
        t, losses = _runs(cfg, data, cfg.horizon_escapes * per_log[-1] * np.log(1 / cfg.init_scales[0]), k_wide)
        out.update({f"t_{K}": t, f"loss_{K}": losses, f"escape_per_log_{K}": per_log, f"narrow_loss_{K}": narrow_loss})
    return out


def escape_table(arrays: dict, K: int):
    """(counts (seeds, σ), escape times (seeds, σ, K), NaN where a run has not K + 1 plateaus)."""
    t, losses = arrays[f"t_{K}"], arrays[f"loss_{K}"]
    counts = np.zeros(losses.shape[:2], int)
    times = np.full(losses.shape[:2] + (K,), np.nan)
    for s in range(losses.shape[0]):
        for j in range(losses.shape[1]):
            found = detect_plateaus(t, losses[s, j])
            counts[s, j] = found.n_plateaus
            if found.n_plateaus == K + 1:
                times[s, j] = found.transition_times
    return counts, times


def escape_slopes(cfg: Config, times: np.ndarray) -> np.ndarray:
    """(K,) least-squares slopes of the median (over seeds) t_k against ln(1/σ), σ ≤ fit_max_scale."""
    scales = np.asarray(cfg.init_scales)
    keep = scales <= cfg.fit_max_scale
    med = np.median(times[:, keep], axis=0)  # (σ, K)
    return np.polyfit(np.log(1 / scales[keep]), med, 1)[0]


def verify(arrays: dict, cfg: Config) -> list:
    """Per target K: plateau count K + 1 at every σ ≤ fit_max_scale (worst seed and σ);
    slope of each t_k vs ln(1/σ) vs T_k (5%); plateau count at the largest σ ≤ K (median)."""
    rows = []
    keep = np.asarray(cfg.init_scales) <= cfg.fit_max_scale
    for K in cfg.n_kinks:
        counts, times = escape_table(arrays, K)
        small = counts[:, keep].ravel()
        rows.append(row(f"K={K}: plateau count, every seed and σ ≤ {cfg.fit_max_scale:g} (worst)", K + 1,
                        small[np.argmax(np.abs(small - K - 1))], tol=0, relative=False))
        slopes = escape_slopes(cfg, times) if np.all(np.isfinite(times[:, keep])) else np.full(K, np.nan)
        for k, (want, got) in enumerate(zip(arrays[f"escape_per_log_{K}"], slopes), start=1):
            rows.append(row(f"K={K}: slope dt_{k}/d ln(1/σ) vs T_{k} of the σ→0 limit", want, got, tol=0.05))
        rows.append(bound_row(f"K={K}: plateau count at σ={cfg.init_scales[-1]:g} (median over seeds) ≤ K",
                              int(np.median(counts[:, -1])), at_most=K))
    return rows


def plot(arrays: dict, cfg: Config) -> dict:
    with warnings.catch_warnings():  # NaN-only columns (no staircase at large σ) are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        return _plot(arrays, cfg)


def _plot(arrays: dict, cfg: Config) -> dict:
    scales = np.asarray(cfg.init_scales)
    ln_inv = np.log(1 / scales)
    fig, (ax_count, ax_esc, ax_loss) = plotting.figure(3, width=4.6)
    for c, K in zip(plotting.colors(len(cfg.n_kinks)), cfg.n_kinks):
        counts, times = escape_table(arrays, K)
        for s in range(counts.shape[0]):
            ax_count.plot(scales, counts[s] + 0.04 * s, color=c, marker="o", ms=3, label=f"K = {K} (seeds)" if s == 0 else None, **plotting.SIM)
        keep = scales <= cfg.fit_max_scale
        ax_count.plot(scales[keep], np.full(keep.sum(), K + 1), label=f"small-σ theory K + 1 = {K + 1}", **dict(plotting.THEORY, color=c))
        med = np.nanmedian(times, axis=0)
        for k, per_log in enumerate(arrays[f"escape_per_log_{K}"]):
            ax_esc.plot(ln_inv, med[:, k], color=c, marker="o", ms=3, label=f"K = {K} (median t_k)" if k == 0 else None, **plotting.SIM)
            ax_esc.plot(ln_inv[keep], per_log * ln_inv[keep], label="T_k ln(1/σ), σ→0 limit" if (k == 0 and K == cfg.n_kinks[0]) else None,
                        **dict(plotting.THEORY, color=c))
    ax_count.set(xscale="log", xlabel="init scale σ", ylabel="plateaus detected", title="plateau count vs σ")
    ax_count.legend(fontsize=7, frameon=False)
    ax_esc.set(xlabel="ln(1/σ)", ylabel="escape time t_k (units of τ)", yscale="log", title="every escape time vs ln(1/σ)")
    ax_esc.legend(fontsize=7, frameon=False)
    K = cfg.n_kinks[-1]
    t, losses = arrays[f"t_{K}"], arrays[f"loss_{K}"]
    for j, c in enumerate(plotting.colors(scales.size)):
        ax_loss.plot(t[1:], losses[0, j, 1:], color=c, label=f"σ = {scales[j]:.0e}", **plotting.SIM)
        if scales[j] <= cfg.fit_max_scale:
            for te in arrays[f"escape_per_log_{K}"] * ln_inv[j]:
                ax_loss.axvline(te, **dict(plotting.THEORY, color=c, lw=0.8))
    ax_loss.plot([], [], label="T_k ln(1/σ)", **plotting.THEORY)
    ax_loss.set(xscale="log", yscale="log", xlabel=plotting.TIME_LABEL, ylabel="loss L = (1/2P)‖P⊥(y − f)‖²",
                ylim=(0.1 * float(arrays[f"narrow_loss_{K}"][-2]) if K > 1 else None, None), title=f"K = {K} target, seed 0")
    ax_loss.legend(fontsize=6, frameon=False, loc="lower left")
    fig.tight_layout()
    return {"relu_escape_grid": fig}


# ------------------------------------------------------------------ sweeps
# `saddle sweep` refuses this experiment with this reason (issue 16, item 5).
SWEEP_UNSUPPORTED = ("it is already a vmapped seeds × σ grid in one program, and its run length comes from narrow-net optima (Adam, best init picked in NumPy) and theory.relu on concrete arrays; vary fields with `saddle run --set`")
