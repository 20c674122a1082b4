"""Data- vs init-induced saddles in a 1-D ReLU net: plateau count and escape time
over a grid of init scales σ and two target structures (Zhang, Saxe & Latham,
arXiv 2512.20607; Jacot et al. 2021, arXiv 2106.15933; Maennel et al. 2018,
arXiv 1803.08367).

The net is a plain two-layer ReLU net (f = Σᵢ aᵢ relu(wᵢx + bᵢ), no affine
skip, h units, balanced init of scale σ, full-batch GD with step η, time
t = step·η in units of τ) and the target convex with K kinks,
y = Σ_k c₁ r^−(k−1) relu(x − p_k), p_k evenly in [−0.6, 0.6] (``convex_target``). One jit-compiled ``jax.vmap`` over
seeds × σ runs every cell of a target at once; ``detect_plateaus`` reads the
plateaus and transitions of each loss curve.

Prediction 1 (small σ). The loss visits K + 1 plateaus (the zero function and one
saddle per learned kink): count = K + 1 for every seed. (That the plateaus are
the best k-unit nets is verified in ``relu_kinks``, on the net with a free
affine part; for this plain net and these targets see its docstring.)

Prediction 2 (escape rate). Near f = 0 a unit (u, a), u = (w, b), obeys the
linearised flow (L = (1/2P)Σ(y − f)², x̃ = (x, 1))

    du/dt = a g(û),   da/dt = G(u),   G(u) = (1/P) Σ_p y_p relu(u·x̃_p),   g = ∇G.

G is 1-homogeneous, so with balanced a = s‖u‖ (s = ±1, kept by the flow)

    d‖u‖/dt = s G(û) ‖u‖,     dû/dt = s (g(û) − G(û) û)   (ascent of sG on the circle),

so each unit's direction settles at a local maximum of sG and its norm then
grows as e^{λt}. The leading unit's rate is λ = max_{θ, s} s G(cos θ, sin θ)
(``growth_rate``), and since ‖u‖ must grow from O(σ) to O(1), the first escape
time is t₁ = ln(1/σ)/λ + O(1). GD with step η multiplies ‖u‖ by 1 + ηλ per step,
i.e. rate λ_η = ln(1 + ηλ)/η (``theory.relu.gd_rate``, exact for the linearised map; 21%
below λ for K = 2 at η = 0.2, so the comparison must use it). Verified: the
slope of the median t₁ against ln(1/σ) over σ ≤ ``fit_max_scale`` equals 1/λ_η
within ``slope_tolerance`` (the O(1) term — alignment of û, the nonlinear drop — is
σ-independent to leading order, each seed's directions being the same at every σ;
its σ-dependence enters at O(σ²) ≤ 4e-4; what is left is reading t₁ off the
recorded grid: half a log-step h of the grid in ln t at each end of the fit range,
slope error ≤ h t₁(σ_min) / (Δ ln(1/σ) / λ_η) — 6-7% for the default run, 13% for
the smoke; measured 0.05-0.8%).

Prediction 3 (large σ). At σ = 0.1 the first escape, ln(1/σ)/λ ≈ 1 (K = 2),
is over before any plateau forms: the init-induced saddle at f = 0 is gone, so
the count is < K + 1 (one-sided row), and no seed's first plateau lies at L₀
(second row). With h = 128 the data-induced plateaus go too (count 1: many units
start spread over the data and fit all kinks at once).

The run is made of h = 128 units: with h = 32 (relu_kinks' width) and σ = 1e-4,
2 of 3 seeds stay on the L*_1 plateau past t = 6e4 — every right-facing unit had
rotated onto the leader's direction during the (longer) first plateau, so no unit
is left to grow the second kink; one slow unit in the second kink's basin is
what ends the data-induced plateau. More units make such a straggler likely.

    saddle run relu-plateau-grid           # 2 targets × 3 seeds × 5 σ: 21-33 s on 2 (loaded) CPU cores
    saddle run relu-plateau-grid --smoke   # 2 targets × 2 seeds × 3 σ: 10 s

Measured (2026-11-30, σ = 1e-4…1e-1, 3 seeds): K = 2: λ = 2.936, λ_η = 2.310,
slope of t₁ 0.4327 vs 1/λ_η = 0.4329 (0.05%); counts 3 for σ ≤ 1.8e-2, 1 at
σ = 0.1 (loss falls straight to ~1e-6, the staircase is gone). K = 1: λ = 1.241,
λ_η = 1.108, slope 0.8947 vs 0.9023 (0.8%); counts 2, then 1 at σ = 0.1. The
data-induced plateau (K = 2, at L*_1) lasts 4.9 → 6.2 e-folds of time as σ goes
1.8e-2 → 1e-4 (median ln(t₂/t₁); no theory drawn for it). At σ = 1, η = 0.2 GD
was not stable for every seed (h = 32: a K = 2 run stayed at L₀), so σ stops at 0.1.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dynamics
from dynamics.compiling import jit_loop
from dynamics.plateaus import detect_plateaus
from experiments import plotting
from experiments.common import POSITIVE, POSITIVE_INT, bound_row, check, check_fields, field, row
from experiments.relu_kinks import X_RANGE
from theory.relu import gd_rate
from models import relu

NAME = "relu-plateau-grid"
DESCRIPTION = "1-D ReLU net: plateau count and first escape time over init scale σ × seeds, two targets"

# a first plateau this close to L₀ = (1/2P)Σy² is the saddle at f = 0 (the data-induced
# ones, best k-unit nets, sit at L*_1/L₀ = 7e-4 for K = 2 and 0 for K = 1)
INIT_PLATEAU_FRACTION = 0.5


@dataclasses.dataclass(frozen=True)
class Config:
    DEPRECATED_KEYS = {"eta": "learning_rate"}  # old name -> new name, accepted (with a warning) for one release
    n_kinks: Tuple[int, ...] = field((2, 1), (lambda v: len(v) >= 1 and all(1 <= k <= 3 for k in v), "integers in 1..3"), "kinks K of each target (one target structure each)")
    slope: float = field(4.0, POSITIVE, "slope jump c₁ at the first kink")
    ratio: float = field(3.0, (lambda v: v > 1, "a number > 1"), "c_k / c_{k+1}")
    init_scales: Tuple[float, ...] = field((1e-4, 5.62e-4, 3.16e-3, 1.78e-2, 1e-1), (lambda v: len(v) >= 2 and all(0 < s <= 0.3 for s in v), "≥ 2 numbers in (0, 0.3]"), "init scales σ (increasing)")
    fit_max_scale: float = field(2e-2, POSITIVE, "escape-time slope fitted over σ ≤ this")
    n_data: int = field(41, (lambda n: n >= 10, "an integer ≥ 10"), "training points, evenly spaced in [−1, 1]")
    hidden: int = field(128, POSITIVE_INT, "hidden units (32 leaves 2 of 3 seeds stuck at L*_1 at σ = 1e-4, below)")
    learning_rate: float = field(0.2, POSITIVE, "GD learning rate η (τ = 1/η; time t/τ = step × η)")
    n_steps: Tuple[int, ...] = field((60_000, 20_000), (lambda v: all(n >= 100 for n in v), "integers ≥ 100"), "GD steps for each target")
    n_seeds: int = field(3, POSITIVE_INT, "random inits per (target, σ)")
    n_points: int = field(300, (lambda n: n >= 50, "an integer ≥ 50"), "log-spaced recording steps")
    n_angles: int = field(20_001, (lambda n: n >= 100, "an integer ≥ 100"), "grid of directions θ for λ = max s G(θ)")
    seed: int = field(0, None, "PRNG seed")

    def __post_init__(self):
        check_fields(self)
        check("n_steps", self.n_steps, len(self.n_steps) == len(self.n_kinks), f"one value per target ({len(self.n_kinks)})")
        check("init_scales", self.init_scales, list(self.init_scales) == sorted(self.init_scales), "increasing values")
        check("hidden", self.hidden, self.hidden >= max(self.n_kinks), f"≥ the largest K ({max(self.n_kinks)})")
        n_fit = sum(s <= self.fit_max_scale for s in self.init_scales)
        check("fit_max_scale", self.fit_max_scale, n_fit >= 2, "a value with ≥ 2 init_scales at or below it")


def smoke() -> Config:
    return Config(init_scales=(1e-3, 1e-2, 1e-1), n_seeds=2, n_steps=(40_000, 10_000), n_points=250)


def growth_rate(x, y, n_angles: int = 20_001):
    """(λ, θ*): rate of the leading unit at zero init, λ = max_{θ, s=±1} s G(cos θ, sin θ),
    G(u) = (1/P) Σ_p y_p relu(u·(x_p, 1)); x, y: (P,) or (P, 1)."""
    x, y = np.asarray(x, np.float64).reshape(-1), np.asarray(y, np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"x has {x.size} points and y {y.size}; allowed: equal sizes")
    theta = np.linspace(0.0, 2 * np.pi, n_angles, endpoint=False)
    G = np.mean(y[None, :] * np.maximum(np.cos(theta)[:, None] * x[None, :] + np.sin(theta)[:, None], 0.0), axis=1)
    i, j = int(np.argmax(G)), int(np.argmin(G))
    return (float(G[i]), float(theta[i])) if G[i] >= -G[j] else (float(-G[j]), float(theta[j]))


def convex_target(x: jax.Array, n_kinks: int, slope: float, ratio: float) -> jax.Array:
    """y = Σ_k c_k relu(x − p_k), c_k = slope·ratio^−(k−1), p_k evenly in [−0.6, 0.6]; x: (P, 1) → (P, 1)."""
    p = np.linspace(-0.6, 0.6, n_kinks) if n_kinks > 1 else np.zeros(1)
    return sum(slope * ratio ** -k * jax.nn.relu(x - pk) for k, pk in enumerate(p))


def seed_scale_losses(loss, data, steps, key, *, hidden: int, eta: float, n_seeds: int, init_scales) -> np.ndarray:
    """Loss curves (seeds, σ, len(steps)) of 1-D ReLU nets (balanced init) trained by GD
    on ``loss``, from one jit(vmap(vmap)) over seeds × init scales."""

    def run(k, scale):
        # balanced init is 1-homogeneous in σ, so scale a σ = 1 draw (σ may then be traced)
        p0 = relu.init(k, n_in=1, hidden=hidden, n_out=1, scale=1.0, scheme="balanced")
        p0 = jax.tree_util.tree_map(lambda v: scale * v, p0)
        return dynamics.descend(loss, p0, optax.sgd(eta), data, record_steps=steps).loss

    # run time dominates (tens of thousands of steps): compiled with the backend optimiser on
    grid = jit_loop(jax.vmap(jax.vmap(run, (None, 0)), (0, None)))
    return np.asarray(grid(jax.random.split(key, n_seeds), jnp.asarray(init_scales)))


def _runs(cfg: Config, data, n_steps: int, key):
    """Loss curves (seeds, σ, T) of the plain net over seeds × init scales."""
    steps = dynamics.log_steps(n_steps, cfg.n_points)
    losses = seed_scale_losses(dynamics.model_loss(relu.apply), data, steps, key, hidden=cfg.hidden, eta=cfg.learning_rate,
                               n_seeds=cfg.n_seeds, init_scales=cfg.init_scales)
    return steps * cfg.learning_rate, losses


def simulate(cfg: Config, progress: bool = False) -> dict:
    out = {}
    keys = jax.random.split(jax.random.key(cfg.seed), len(cfg.n_kinks))
    for K, n_steps, key in plotting.progress(list(zip(cfg.n_kinks, cfg.n_steps, keys)), progress, desc="target"):
        x = jnp.linspace(*X_RANGE, cfg.n_data)[:, None]
        y = convex_target(x, K, cfg.slope, cfg.ratio)
        t, losses = _runs(cfg, (x, y), n_steps, key)
        lam, theta = growth_rate(x, y, cfg.n_angles)
        out.update({f"t_{K}": t, f"loss_{K}": losses, f"loss0_{K}": np.asarray(0.5 * jnp.mean(y**2)), f"lambda_{K}": np.asarray(lam), f"theta_{K}": np.asarray(theta)})
    return out


def plateau_table(arrays: dict, cfg: Config, K: int) -> dict:
    """Per (seed, σ): plateau count; whether the first plateau is the init-induced one
    at f = 0 (its loss ≥ INIT_PLATEAU_FRACTION·L₀); the escape time t₁ from it (NaN if
    there is none, or no transition); plateau lengths ln(t_k / t_{k−1}) between
    successive transitions (NaN-padded, K−1 wide)."""
    t, losses = arrays[f"t_{K}"], arrays[f"loss_{K}"]
    n_seeds, n_scales = losses.shape[:2]
    count = np.zeros((n_seeds, n_scales), int)
    escape = np.full((n_seeds, n_scales), np.nan)
    at_zero = np.zeros((n_seeds, n_scales), bool)
    lengths = np.full((n_seeds, n_scales, max(K - 1, 1)), np.nan)
    for s in range(n_seeds):
        for j in range(n_scales):
            found = detect_plateaus(t, losses[s, j])
            count[s, j] = found.n_plateaus
            tr = found.transition_times
            at_zero[s, j] = found.plateau_losses[0] >= INIT_PLATEAU_FRACTION * float(arrays[f"loss0_{K}"])
            if tr.size and at_zero[s, j]:
                escape[s, j] = tr[0]
            gaps = np.diff(np.log(tr))[: lengths.shape[-1]]
            lengths[s, j, : gaps.size] = gaps
    return {"count": count, "escape": escape, "lengths": lengths, "at_zero": at_zero}


def escape_slope(cfg: Config, escape: np.ndarray) -> float:
    """Least-squares slope of the median (over seeds) t₁ against ln(1/σ), σ ≤ fit_max_scale."""
    scales = np.asarray(cfg.init_scales)
    keep = scales <= cfg.fit_max_scale
    return float(np.polyfit(np.log(1 / scales[keep]), np.median(escape[:, keep], axis=0), 1)[0])


def slope_tolerance(cfg: Config, K: int) -> float:
    """Relative error of the fitted slope from reading t₁ on the recorded grid (module docstring):
    an error of half a log-step h (in ln t) of t₁ at each end of the fit range, i.e.
    h · t₁(σ_min) / ((ln(1/σ_min) − ln(1/σ_max)) / λ_η) with t₁(σ_min) = ln(1/σ_min)/λ_η."""
    scales = np.asarray(cfg.init_scales)
    fit = scales[scales <= cfg.fit_max_scale]
    h = np.log(cfg.n_steps[list(cfg.n_kinks).index(K)]) / (cfg.n_points - 1)  # log_steps' ln-spacing
    span = np.log(fit.max() / fit.min())
    return h * np.log(1.0 / fit.min()) / span


def verify(arrays: dict, cfg: Config) -> list:
    """Per target K: plateau count at the smallest σ = K + 1 (worst seed, exact);
    slope of t₁ vs ln(1/σ) vs 1/λ_η (``slope_tolerance``: the σ-independent O(1) part
    drops out of the slope; what is left is the grid reading of t₁, bounded from the
    recording grid; measured 0.05-0.8%); plateau count at the largest σ ≤ K
    (one-sided: fails only when the count reaches K + 1)."""
    rows = []
    for K in cfg.n_kinks:
        table = plateau_table(arrays, cfg, K)
        count = table["count"]
        small = count[:, 0]
        worst = small[np.argmax(np.abs(small - (K + 1)))]
        rows.append(row(f"K={K}: plateau count at σ={cfg.init_scales[0]:g} (worst seed)", K + 1, worst, tol=0, relative=False))
        lam_eta = float(gd_rate(float(arrays[f"lambda_{K}"]), cfg.learning_rate))
        if np.all(np.isfinite(table["escape"][:, np.asarray(cfg.init_scales) <= cfg.fit_max_scale])):
            rows.append(row(f"K={K}: slope dt₁/d ln(1/σ) vs 1/λ_η (τ units)", 1 / lam_eta, escape_slope(cfg, table["escape"]),
                            tol=slope_tolerance(cfg, K)))
        else:
            rows.append(row(f"K={K}: slope dt₁/d ln(1/σ) vs 1/λ_η (τ units; a run had no transition)", 1 / lam_eta, np.nan,
                            tol=slope_tolerance(cfg, K)))
        large = int(np.median(count[:, -1]))
        rows.append(bound_row(f"K={K}: plateau count at σ={cfg.init_scales[-1]:g} (median over seeds) ≤ K", large, at_most=K))
        rows.append(row(f"K={K}: fraction of seeds with the init plateau at L₀, σ={cfg.init_scales[-1]:g}",
                        0.0, float(np.mean(table["at_zero"][:, -1])), tol=0, relative=False))
    return rows


def _theory(color) -> dict:
    return {**plotting.THEORY, "color": color}


def plot(arrays: dict, cfg: Config) -> dict:
    with warnings.catch_warnings():  # NaN-only columns (no init plateau at large σ) are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        return _plot(arrays, cfg)


def _plot(arrays: dict, cfg: Config) -> dict:
    scales = np.asarray(cfg.init_scales)
    fig, (ax_count, ax_esc, ax_len, ax_loss) = plotting.figure(4, width=4.4)
    colors = plotting.colors(len(cfg.n_kinks))
    for c, K in zip(colors, cfg.n_kinks):
        table = plateau_table(arrays, cfg, K)
        for s in range(table["count"].shape[0]):
            ax_count.plot(scales, table["count"][s] + 0.04 * s, color=c, marker="o", ms=3,
                          label=f"K = {K} (seeds)" if s == 0 else None, **plotting.SIM)
        ax_count.plot(scales[scales <= cfg.fit_max_scale], np.full((scales <= cfg.fit_max_scale).sum(), K + 1), 
                      label=f"small-σ theory K + 1 = {K + 1}", **_theory(c))
        lam_eta = float(gd_rate(float(arrays[f"lambda_{K}"]), cfg.learning_rate))
        med = np.nanmedian(table["escape"], axis=0)
        ln_inv = np.log(1 / scales)
        ax_esc.plot(ln_inv, med, color=c, marker="o", ms=3, label=f"K = {K} median t₁", **plotting.SIM)
        # theory fixes the slope only; anchored at the smallest σ
        ax_esc.plot(ln_inv, med[0] + (ln_inv - ln_inv[0]) / lam_eta, label=f"slope 1/λ_η = {1 / lam_eta:.3f}", **_theory(c))
        if K >= 2:  # data-induced plateau lengths (between successive transitions)
            for k in range(K - 1):
                ax_len.plot(ln_inv, np.nanmedian(table["lengths"][:, :, k], axis=0), color=c, marker="o", ms=3,
                            label=f"K = {K}: plateau {k + 1} (at L*_{k + 1})", **plotting.SIM)
    ax_len.set(xlabel="ln(1/σ)", ylabel="plateau length ln(t_{k+1}/t_k)  (e-folds of time)",
               title="data-induced plateau length vs σ (median)")
    ax_len.legend(fontsize=7, frameon=False)
    ax_count.set(xscale="log", xlabel="init scale σ", ylabel="plateaus detected", title="plateau count vs σ")
    ax_count.legend(fontsize=7, frameon=False)
    ax_esc.set(xlabel="ln(1/σ)", ylabel="first escape time t₁ (units of τ)", title="escape time vs ln(1/σ)")
    ax_esc.legend(fontsize=7, frameon=False)
    K = cfg.n_kinks[0]
    t, losses = arrays[f"t_{K}"], arrays[f"loss_{K}"]
    lam_eta = float(gd_rate(float(arrays[f"lambda_{K}"]), cfg.learning_rate))
    table = plateau_table(arrays, cfg, K)
    for j, c in enumerate(plotting.colors(scales.size)):
        ax_loss.plot(t, losses[0, j], color=c, label=f"σ = {scales[j]:.2g}", **plotting.SIM)
        ax_loss.axvline(table["escape"][0, 0] + np.log(scales[0] / scales[j]) / lam_eta, **_theory(c))
    ax_loss.plot([], [], label="predicted t₁ (from smallest σ)", **plotting.THEORY)
    ax_loss.set(xscale="log", yscale="log", xlabel=plotting.TIME_LABEL, ylabel="loss L = (1/2P)Σ(y − f)²",
                title=f"K = {K} target, seed 0")
    ax_loss.legend(fontsize=7, frameon=False, loc="lower left")
    fig.tight_layout()
    return {"relu_plateau_grid": fig}


# ------------------------------------------------------------------ sweeps
# `saddle sweep relu-plateau-grid --grid slope=2,4,8 --grid seed=0,1,2`: every cell
# trains the first target's nets at every σ in ``init_scales``; these fields may be traced.
SWEEP_FIELDS = ("slope", "ratio", "learning_rate", "seed")
SWEEP_METRIC = "slope_rel_err"


def cell(cfg: Config, values: dict) -> dict:
    """One seed of the first target (K = n_kinks[0], n_steps[0] GD steps) at every σ
    of ``init_scales``, with (slope, ratio, learning_rate, seed) possibly traced:
    loss curves (σ, T); the escape time t₁ from the init plateau, the first time
    the loss falls below INIT_PLATEAU_FRACTION·L₀ (σ,); the slope of t₁ against
    ln(1/σ) between the smallest σ and the largest σ ≤ fit_max_scale and its
    relative error against 1/λ_η, λ the growth rate at zero init (as ``verify``;
    the σ-independent part of t₁ drops out of the slope)."""
    from experiments.saxe_modes import crossing_time

    eta, K = values["learning_rate"], cfg.n_kinks[0]
    x = jnp.linspace(*X_RANGE, cfg.n_data)[:, None]
    y = convex_target(x, K, values["slope"], values["ratio"])
    theta = jnp.linspace(0.0, 2 * jnp.pi, cfg.n_angles, endpoint=False)
    g = jnp.mean(y[None, :, 0] * jax.nn.relu(jnp.cos(theta)[:, None] * x[None, :, 0] + jnp.sin(theta)[:, None]), axis=1)
    lam = jnp.maximum(jnp.max(g), -jnp.min(g))  # growth_rate, traced
    lam_eta = jnp.log1p(eta * lam) / eta  # theory.relu.gd_rate
    steps = dynamics.log_steps(cfg.n_steps[0], cfg.n_points)
    p1 = relu.init(jax.random.key(values["seed"]), n_in=1, hidden=cfg.hidden, n_out=1, scale=1.0, scheme="balanced")

    def run(scale):  # as seed_scale_losses, for one seed: the balanced init is 1-homogeneous in σ
        p0 = jax.tree_util.tree_map(lambda v: scale * v, p1)
        return dynamics.descend(dynamics.model_loss(relu.apply), p0, optax.sgd(eta), (x, y), record_steps=steps).loss

    losses = jax.vmap(run)(jnp.asarray(cfg.init_scales))
    t = steps * eta
    loss0 = 0.5 * jnp.mean(y**2)
    escape = jax.vmap(lambda l: crossing_time(t, -l, -INIT_PLATEAU_FRACTION * loss0))(losses)
    scales = np.asarray(cfg.init_scales)
    j = max(int(np.flatnonzero(scales <= cfg.fit_max_scale)[-1]), 1) if np.any(scales <= cfg.fit_max_scale) else 1
    slope = (escape[0] - escape[j]) / np.log(scales[j] / scales[0])
    return {"loss": losses, "escape": escape, "escape_slope": slope,
            "slope_rel_err": jnp.abs(slope * lam_eta - 1.0)}
