"""Range, not independence, decides whether a nonnegative, energy-efficient code
modularises (Dorrell, Hsu et al., ICLR 2025, arXiv 2410.06232, Thm 2.1, Figs 1-2).

Sources: two variables on an n × n grid over [−½, ½]² with the corners where both
are low or both high cut off, |s_1 + s_2| ≤ δ (``tasks.sources``); δ = 1 is the
independent square, and cutting deeper makes the sources more (negatively)
correlated *and* removes their joint extremes. Theory (``theory.modularisation``):
the optimal nonnegative, energy-efficient linear code is modular iff the sample's
margin is ≥ 0; for this family it switches at δ* ≈ 0.726 (continuous strip).
Simulation: for every δ and seed, a linear autoencoder and a ReLU MLP autoencoder
(``models.autoencoder``) trained with Adam on reconstruction + activity energy +
nonnegativity + weight energy; the modularity of the learned code is the share of
each active neuron's variance its main source drives, and a code counts as modular
when even its most mixed neuron has share ≥ ¾ (halfway between a single-source
neuron, 1, and a neuron along the cut facet's normal (1, 1), ½).

The theorem compares activity energies; weight energy favours modular codes (an
unmixing readout costs weight), so its weight λ_w is kept far below λ_act (we
measured λ_w/λ_act = 10⁻² to move the switch down by a grid step). Adam, not GD:
the claim is about the optimum, not the path.

    saddle run modularisation            # ~3-5 min on 2 loaded CPU cores
    saddle run modularisation --smoke    # ~15 s
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dynamics
from experiments import plotting
from experiments.common import POSITIVE, POSITIVE_INT, bound_row, check, check_fields, field, row
from models import autoencoder
from tasks import sources
from theory import modularisation as theory

NAME = "modularisation"
DESCRIPTION = "nonnegative energy-efficient autoencoders modularise iff the sources' support is spread (Dorrell, Hsu et al. 2025)"

KINDS = ("linear", "mlp")
MIXED_SHARE = 0.75  # a neuron with share below this mixes (module docstring)

NONNEG = (lambda v: v >= 0, "a number ≥ 0")


@dataclasses.dataclass(frozen=True)
class Config:
    deltas: Tuple[float, ...] = field((0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
                                      (lambda v: all(0 < d <= 1 for d in v), "numbers in (0, 1]"),
                                      "strip half-widths δ: keep |s_1 + s_2| ≤ δ (1 = independent square)")
    n_values: int = field(11, (lambda n: n >= 3, "an integer ≥ 3"), "grid values per source")
    n_latent: int = field(6, (lambda n: n >= 2, "an integer ≥ 2"), "code width (neurons)")
    hidden: int = field(16, POSITIVE_INT, "hidden width of the MLP encoder and decoder")
    n_seeds: int = field(4, POSITIVE_INT, "networks per δ and kind (seeds seed, seed+1, ...)")
    seed: int = field(0, None, "first PRNG seed")
    steps: int = field(20000, POSITIVE_INT, "Adam steps (full batch)")
    learning_rate: float = field(3e-3, POSITIVE, "Adam learning rate")
    init_scale: float = field(0.3, POSITIVE, "init: weights N(0, init_scale²/fan_in)")
    lam_act: float = field(1e-2, POSITIVE, "activity energy weight λ_act")
    lam_neg: float = field(1.0, POSITIVE, "nonnegativity penalty weight λ_neg (on relu(−z))")
    lam_w: float = field(1e-6, NONNEG, "weight energy weight λ_w of the linear AE (≪ λ_act; module docstring)")
    mlp_lam_w: float = field(1e-4, NONNEG, "weight energy weight of the MLP AE (the authors' low-d config)")
    claim_margin: float = field(0.3, POSITIVE, "verify claims the side only for δ with |margin| ≥ this")
    kinds: Tuple[str, ...] = field(KINDS, (lambda v: set(v) <= set(KINDS), "a subset of linear,mlp"),
                                   "autoencoders to train")

    def __post_init__(self):
        check_fields(self)
        check("deltas", self.deltas, list(self.deltas) == sorted(set(self.deltas)), "increasing, distinct values")


def smoke() -> Config:
    return Config(deltas=(0.25, 0.625, 1.0), n_values=9, n_seeds=1, steps=3000, learning_rate=1e-2, kinds=("linear",),
                  claim_margin=1.1)


def _train(cfg: Config, kind: str):
    """Train every (δ, seed) network of one kind in one compiled program.
    Returns (score, most_mixed_share, reconstruction), each (n_δ, n_seeds)."""
    loss = autoencoder.make_loss(cfg.lam_act, cfg.lam_neg, cfg.lam_w if kind == "linear" else cfg.mlp_lam_w)

    def one(delta, seed):
        s, weight = sources.corner_cut_square(cfg.n_values, delta)
        key = jax.random.key(seed)
        if kind == "linear":
            params = autoencoder.init_linear(key, 2, cfg.n_latent, init_scale=cfg.init_scale)
        else:
            params = autoencoder.init_mlp(key, 2, cfg.n_latent, cfg.hidden, init_scale=cfg.init_scale)
        traj = dynamics.descend(loss, params, optax.adam(cfg.learning_rate), (s, weight),
                                record_steps=jnp.array([cfg.steps]))
        score, share, active = autoencoder.modularity(traj.params, s, weight)
        return score, jnp.min(jnp.where(active, share, 1.0)), autoencoder.loss_terms(traj.params, (s, weight))[0]

    seeds = jnp.arange(cfg.seed, cfg.seed + cfg.n_seeds)
    grid = jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))
    return [np.asarray(a) for a in grid(jnp.asarray(cfg.deltas), seeds)]


def simulate(cfg: Config, progress: bool = False) -> dict:
    out = {"deltas": np.asarray(cfg.deltas)}
    for kind in plotting.progress(cfg.kinds, progress, "train autoencoders (δ × seeds)"):
        out[f"{kind}_score"], out[f"{kind}_share"], out[f"{kind}_rec"] = _train(cfg, kind)
    h = 1 / (cfg.n_values - 1)
    diagonals = np.arange(1, cfg.n_values) * h                          # where the grid sample changes
    out["margin"] = np.array([theory.modularisation_margin(sources.kept_points(cfg.n_values, d)) for d in cfg.deltas])
    out["diagonals"] = diagonals
    out["diagonal_margin"] = np.array([theory.modularisation_margin(sources.kept_points(cfg.n_values, d))
                                       for d in diagonals])
    dense = np.linspace(0.05, 1.0, 200)
    out["dense_delta"], out["dense_margin"] = dense, theory.strip_margin(dense)
    out["switch"] = np.array(theory.strip_switch())
    return out


def _grid_switch(arrays) -> float:
    """The δ where the grid sample turns modular: the first grid diagonal above the
    last mixed one (the kept set, and so the margin, only changes at diagonals)."""
    d, m = arrays["diagonals"], arrays["diagonal_margin"]
    first = int(np.flatnonzero(m < 0).max()) + 1 if np.any(m < 0) else 0
    return float(d[min(first, len(d) - 1)])


def verify(arrays: dict, cfg: Config) -> list:
    """Rows. (1) The grid sample's switch against the continuous strip's δ*: the
    sample's support moves in steps of h = 1/(n_values − 1), so tol h. (2) Linear
    AE, for each δ with |margin| ≥ claim_margin: the fraction of seeds whose code is
    on the predicted side (modular: most mixed neuron's share ≥ ¾). The theorem is
    about the global optimum of a non-convex problem, so the claim is at least half
    of the seeds; nearer the switch the energy gap is ∝ |margin| and the weight
    energy the theorem leaves out, with finite training, may tip it. (3) MLP AE: the
    paper's claim for nonlinear networks is qualitative (their Fig. 2: cutting
    corners lowers modularity), so the row is median modularity at the largest δ
    minus at the smallest, at least 0."""
    h = 1 / (cfg.n_values - 1)
    rows = [row("switch delta*: continuous strip (Thm 2.1) vs grid sample", float(arrays["switch"]),
                _grid_switch(arrays), tol=h, relative=False)]
    if "linear" in cfg.kinds:
        share = arrays["linear_share"]
        for i, (d, m) in enumerate(zip(cfg.deltas, arrays["margin"])):
            if abs(m) < cfg.claim_margin:
                continue
            modular = share[i] >= MIXED_SHARE
            agree = float(np.mean(modular if m >= 0 else ~modular))
            side = "modular" if m >= 0 else "mixed"
            rows.append(bound_row(f"linear AE delta={d:g} (margin {m:+.2f}, {side}): fraction of seeds on that side",
                                  agree, at_least=0.5))
    if "mlp" in cfg.kinds and len(cfg.deltas) > 1:
        med = np.median(arrays["mlp_score"], axis=1)
        rows.append(bound_row(f"MLP AE: median modularity at delta={cfg.deltas[-1]:g} minus at delta={cfg.deltas[0]:g}",
                              float(med[-1] - med[0]), at_least=0.0))
    return rows


def plot(arrays: dict, cfg: Config) -> dict:
    deltas = arrays["deltas"]
    fig, axes = plotting.figure(len(cfg.kinds) + 1)
    grid_switch = _grid_switch(arrays)
    for ax, kind in zip(axes, cfg.kinds):
        score = arrays[f"{kind}_score"]
        for j in range(score.shape[1]):
            ax.plot(deltas, score[:, j], "o", color="C0", alpha=0.4, ms=4)
        ax.plot(deltas, np.median(score, axis=1), color="C0", label="trained codes (median over seeds)", **plotting.SIM)
        ax.axvspan(0, grid_switch, color="0.9", zorder=0, label="theory: optimum mixes")
        ax.axvline(grid_switch, label="theory: switch of the grid sample", **plotting.THEORY)
        ax.axvline(float(arrays["switch"]), ls=":", color="k", lw=1.0, label="theory: δ* of the continuous strip")
        ax.set(xlabel="strip half-width δ (keep |s₁ + s₂| ≤ δ)", ylabel="modularity of the code (1 = one source per neuron)",
               title=f"{kind} autoencoder", xlim=(deltas.min() - 0.05, 1.02))
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    ax = axes[-1]
    ax.plot(arrays["dense_delta"], arrays["dense_margin"], label="continuous strip (closed form)", **plotting.THEORY)
    ax.plot(arrays["diagonals"], arrays["diagonal_margin"], "s", color="C1", ms=4, label=f"{cfg.n_values}×{cfg.n_values} grid sample")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set(xlabel="strip half-width δ", ylabel="margin m (≥ 0: modular)", title="Thm 2.1 margin of the sources")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return {"modularisation": fig}


SWEEP_UNSUPPORTED = ("each run is already one vmapped δ × seed program, and its claim (where the family switches) "
                     "needs the whole family; vary fields with `saddle run --set`")
