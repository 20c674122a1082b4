"""Stagewise data attribution on the semantic hierarchy (Lee et al. 2025, arXiv
2510.12071): a two-layer linear net learns the tree levels one after another
(Saxe, McClelland & Ganguli 2019, arXiv 1810.10531); at checkpoints along training
the local learning coefficient (``dynamics.sgld.estimate_llc``, automatic step) and
the Bayesian influence between items (``dynamics.influence``) are measured.

Task and training as ``semantic-hierarchy`` (P = 2^D one-hot items, N sampled ±1
features, balanced aligned init of strength u0, full-batch GD), with per-sample loss
ℓ_i = ½‖y_i − W2W1e_i‖² (the house loss is their mean). Local posterior at a
checkpoint w_t: exp(−nβ L(w) − γ‖w − w_t‖²/2), nβ and γ fixed (config; n = P is too
small for n/log n to mean anything): γ > nβ·max_α s_α keeps it proper at every
saddle (the unlearned modes' curvature is −s_α), checked at every checkpoint.

Theory: transition times of each level from ``theory.linear.mode_time`` at the
sampled singular values (dotted verticals); the influence from the Laplace
approximation of the same local posterior (``theory.slt.laplace_influence``, our
derivation: Isserlis' theorem for the second-order expansion around w_t with the
exact per-sample gradients and Hessians and the posterior mean shift). Items that
share a branch have correlated residuals before their level is learned and
anti-correlated ones after the parent level alone is learned, so the influence of a
pair at tree distance k flips sign and peaks around the transitions of levels ≤ k.

Off a minimum the "LLC" nβ(E[L] − L(w_t)) is no learning coefficient: approaching a
saddle's escape it turns negative (the posterior finds lower loss downhill); the
staircase is read on the plateaus (one checkpoint per plateau, ``verify``).

    saddle run stagewise-influence            # ~4 min wall on 2 heavily loaded cores (~1 min CPU)
    saddle run stagewise-influence --smoke    # ~45 s CPU (8 checkpoints)
"""
from __future__ import annotations

import dataclasses
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

import dynamics
import tasks
from dynamics import influence, sgld
from experiments import plotting
from experiments.common import POSITIVE, POSITIVE_INT, bound_row, check, check_fields, field, row
from models import linear
from theory import hierarchy, slt
from theory.linear import mode_time

NAME = "stagewise-influence"
DESCRIPTION = "LLC steps and item-item Bayesian influence flipping sign at the hierarchy's transitions (Lee et al. 2025)"


@dataclasses.dataclass(frozen=True)
class Config:
    depth: int = field(2, (lambda d: 2 <= d <= 4, "an integer in [2, 4]"), "tree depth D (P = 2^D items)")
    flip_prob: float = field(0.1, (lambda e: 0 < e < 0.5, "a number in (0, 0.5)"), "ε, sign-flip probability per tree edge")
    n_features: int = field(40, POSITIVE_INT, "N sampled features")
    u0: float = field(1e-3, (lambda u: 0 < u <= 0.1, "a number in (0, 0.1]"), "initial mode strength")
    learning_rate: float = field(0.01, POSITIVE, "GD rate η (τ = 1/η)")
    num_checkpoints: int = field(14, (lambda v: v >= 4, "an integer ≥ 4"), "checkpoints, log-spaced in time")
    n_beta: float = field(4.0, POSITIVE, "nβ of the local posterior")
    gamma: float = field(100.0, POSITIVE, "localization γ (must exceed nβ·s_max)")
    num_chains: int = field(8, (lambda v: v >= 2, "an integer ≥ 2"), "SGLD chains")
    ladder_size: int = field(7, (lambda v: v >= 2, "an integer ≥ 2"), "estimate_llc step sizes (largest ε / 2^(k))")
    llc_steps: int = field(100, (lambda v: v >= 20, "an integer ≥ 20"), "estimate_llc steps at the largest ε")
    influence_steps: int = field(2000, (lambda v: v >= 100, "an integer ≥ 100"), "SGLD steps for the influence")
    seed: int = field(0, None, "PRNG seed (features, init, chains)")

    def __post_init__(self):
        check_fields(self)
        s0 = float(hierarchy.singular_values(depth=self.depth, flip_prob=self.flip_prob, n_features=self.n_features).values[0])
        check("gamma", self.gamma, self.gamma > 1.5 * self.n_beta * s0,
              f"> 1.5·nβ·s₀ = {1.5 * self.n_beta * s0:.3g} (a proper local posterior at the saddles)")
        check("learning_rate", self.learning_rate, self.learning_rate * s0 <= 0.05, f"≤ 0.05/s₀ = {0.05 / s0:.3g}")


def smoke() -> Config:
    return Config(num_checkpoints=8, num_chains=4, llc_steps=60, ladder_size=6, influence_steps=800)


def _per_sample(params, x, y):
    return 0.5 * jnp.sum((y - linear.apply(params, x[None])[0]) ** 2)


def _level_times(s, mult, cfg):
    """(D+1,) GD half-learning time of each level's leading mode (theory.linear.mode_time, λ_x = 1/P)."""
    p = 2**cfg.depth
    first = np.concatenate([[0], np.cumsum(mult)[:-1]])
    s_lead = np.asarray(s)[first]
    return np.asarray(mode_time(cfg.u0, p * s_lead / 2, s=s_lead, lam_x=1.0 / p))


@functools.lru_cache(maxsize=4)
def _task(cfg):
    p = 2**cfg.depth
    y = tasks.tree_features(jax.random.key(cfg.seed), depth=cfg.depth, flip_prob=cfg.flip_prob, n_features=cfg.n_features)
    return tasks.from_data(jnp.eye(p, dtype=y.dtype), y)


def _laplace(params, x, y, cfg):
    """Laplace influence (theory.slt) at a checkpoint, and the smallest eigenvalue of its precision."""
    flat, unravel = ravel_pytree(params)
    each = lambda v, xi, yi: _per_sample(unravel(v), xi, yi)
    grads = jax.vmap(jax.grad(each), in_axes=(None, 0, 0))(flat, x, y)
    hessians = jax.vmap(jax.hessian(each), in_axes=(None, 0, 0))(flat, x, y)
    precision = cfg.n_beta * jnp.mean(hessians, axis=0) + cfg.gamma * jnp.eye(flat.size)
    shift = -jnp.linalg.solve(precision, cfg.n_beta * jnp.mean(grads, axis=0))
    return slt.laplace_influence(grads, hessians, precision, shift), jnp.linalg.eigvalsh(precision)[0]


def simulate(cfg: Config, progress: bool = False) -> dict:
    p = 2**cfg.depth
    task = _task(cfg)
    x, y = np.asarray(task.x), np.asarray(task.y)
    mult = np.asarray(hierarchy.singular_values(depth=cfg.depth, flip_prob=cfg.flip_prob, n_features=cfg.n_features).multiplicities)
    t_level = _level_times(task.s, mult, cfg)
    times = np.geomspace(t_level[0] / 3, t_level[-1] * 1.6, cfg.num_checkpoints)
    steps = np.unique(np.round(times / cfg.learning_rate).astype(int))
    fine = np.unique(np.concatenate([np.round(np.geomspace(1, steps[-1], 150)).astype(int), steps]))
    params0 = linear.init_aligned(jax.random.key(cfg.seed + 1), (p, p, cfg.n_features), u=task.u, v=task.v, u0=cfg.u0)
    gd = dynamics.descend(dynamics.model_loss(linear.apply), params0, optax.sgd(cfg.learning_rate), (task.x, task.y),
                          record_steps=fine, observe=lambda w: {"w1": w[0], "w2": w[1]})
    at = np.searchsorted(fine, steps)
    mean_loss = lambda w, batch: jnp.mean(jax.vmap(_per_sample, in_axes=(None, 0, 0))(w, *batch))
    laplace = jax.jit(functools.partial(_laplace, cfg=cfg))
    out = {k: [] for k in ("llc", "llc_se", "step_size", "trusted", "bif", "bif_se", "bif_chains", "bif_theory",
                           "min_precision")}
    key = jax.random.key(cfg.seed + 2)
    for k in plotting.progress(range(len(steps)), progress, "stagewise-influence checkpoints"):
        w = [jnp.asarray(gd.stats["w1"][at[k]]), jnp.asarray(gd.stats["w2"][at[k]])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # trusted is recorded and verified
            est = sgld.estimate_llc(mean_loss, w, (x, y), key=jax.random.fold_in(key, 2 * k), n_beta=cfg.n_beta,
                                    gamma=cfg.gamma, num_chains=cfg.num_chains, num_steps=cfg.llc_steps, ladder_size=cfg.ladder_size)
        bif = influence.bayesian_influence(_per_sample, w, (x, y), key=jax.random.fold_in(key, 2 * k + 1),
                                           step_size=est.step_size, num_chains=cfg.num_chains,
                                           num_steps=cfg.influence_steps, n_beta=cfg.n_beta, gamma=cfg.gamma)
        theory_bif, min_prec = laplace(w, x, y)
        for name, value in (("llc", est.llc_mean), ("llc_se", est.llc_se), ("step_size", est.step_size),
                            ("trusted", est.trusted), ("bif", bif.matrix), ("bif_se", bif.se), ("bif_chains", bif.per_chain),
                            ("bif_theory", theory_bif), ("min_precision", min_prec)):
            out[name].append(np.asarray(value, dtype=np.float64))
    out = {k: np.stack(v) for k, v in out.items()}
    out.update(t=steps * cfg.learning_rate, t_fine=fine * cfg.learning_rate, loss=np.asarray(gd.loss),
               t_level=t_level, s=np.asarray(task.s),
               distance=np.asarray(hierarchy.common_ancestor_distance(cfg.depth)),
               modes=np.asarray(jax.vmap(lambda a, b: linear.mode_strengths([a, b], task.u, task.v))(
                   jnp.asarray(gd.stats["w1"]), jnp.asarray(gd.stats["w2"]))))
    return out


def _by_distance(mat, distance, k):
    """(T, ...) mean over item pairs i < j at tree distance k of mat (T, ..., P, P)."""
    iu = np.triu_indices(distance.shape[0], 1)
    sel = distance[iu] == k
    return mat[..., iu[0][sel], iu[1][sel]].mean(axis=-1)


def _pair_curves(arrays, k):
    """(theory, SGLD, SGLD standard error) of the influence averaged over the pairs at
    distance k; the error from the spread of the per-chain averages (/√chains)."""
    th = _by_distance(arrays["bif_theory"], arrays["distance"], k)
    chains = _by_distance(arrays["bif_chains"], arrays["distance"], k)  # (T, chains)
    return th, chains.mean(axis=1), chains.std(axis=1, ddof=1) / np.sqrt(chains.shape[1])


def _sign_changes(curve, resolved):
    """Sign changes along a curve, counting only points where it is resolved."""
    signs = np.sign(curve[resolved])
    return int(np.sum(signs[1:] != signs[:-1]))


def _plateau_checkpoints(arrays):
    """Checkpoint indices nearest the geometric midpoints between successive level
    transitions, plus the first and the last: one per plateau of the staircase."""
    t, tl = arrays["t"], arrays["t_level"]
    targets = [t[0]] + list(np.sqrt(tl[:-1] * tl[1:])) + [t[-1]]
    return [int(np.argmin(np.abs(np.log(t) - np.log(x)))) for x in targets]


def verify(arrays: dict, cfg: Config) -> list:
    """Rows: the local posterior is proper at every checkpoint (min eigenvalue of
    nβ∇²L + γI > 0); every checkpoint's step size trusted; the LLC staircase — the LLC
    on each plateau exceeds the previous plateau's by more than 3 combined standard
    errors; and per tree distance k (influence averaged over the pairs at distance k),
    theory flips sign at least once, the SGLD influence has theory's sign wherever
    theory exceeds 3 SGLD standard errors (at most one disagreement, allowed at a
    crossing), and flips as often as theory over those resolved checkpoints."""
    rows = [bound_row("min eigenvalue of nβ∇²L + γI over checkpoints (proper local posterior)",
                      float(np.min(arrays["min_precision"])), at_least=0.0),
            bound_row("checkpoints whose SGLD step size passed the rule", float(np.sum(arrays["trusted"])),
                      at_least=float(len(arrays["t"])))]
    idx = _plateau_checkpoints(arrays)
    llc, se = arrays["llc"], arrays["llc_se"]
    for a, b in zip(idx[:-1], idx[1:]):
        rows.append(bound_row(f"LLC step t/tau {arrays['t'][a]:.3g} -> {arrays['t'][b]:.3g} (minus 3 SE)",
                              float(llc[b] - llc[a] - 3 * np.hypot(se[a], se[b])), at_least=0.0))
    for k in range(1, cfg.depth + 1):
        th, sim, sim_se = _pair_curves(arrays, k)
        resolved = np.abs(th) > 3 * sim_se
        disagree = int(np.sum(np.sign(th[resolved]) != np.sign(sim[resolved])))
        rows.append(bound_row(f"tree distance {k}: sign flips of the Laplace influence", _sign_changes(th, np.abs(th) > 0),
                              at_least=1.0))
        rows.append(bound_row(f"tree distance {k}: checkpoints where SGLD influence has the wrong sign", disagree, at_most=1.0))
        rows.append(row(f"tree distance {k}: sign flips of the influence along training", _sign_changes(th, resolved),
                        _sign_changes(sim, resolved), tol=0.0, relative=False))
    return rows


def plot(arrays: dict, cfg: Config) -> dict:
    t, tl = arrays["t"], arrays["t_level"]
    fig, (ax_l, ax_c, ax_i) = plotting.figure(3)
    ax_l.plot(arrays["t_fine"], arrays["loss"], color="C0", label="GD loss", **plotting.SIM)
    ax_l.plot(t, np.interp(t, arrays["t_fine"], arrays["loss"]), "o", color="C0", ms=4, label="checkpoints")
    for ax in (ax_l, ax_c, ax_i):
        for l, tt in enumerate(tl):
            ax.axvline(tt, color="0.6", ls=":", lw=1.0, label="predicted transitions" if l == 0 else None)
        ax.set_xscale("log")
    ax_l.set(yscale="log", xlabel=plotting.TIME_LABEL, ylabel="training loss L", title=f"hierarchy D={cfg.depth}, N={cfg.n_features}")
    ax_l.set_xlim(t[0] / 2, t[-1] * 1.2)
    ax_l.legend(fontsize=8, frameon=False)
    ax_c.errorbar(t, arrays["llc"], yerr=2 * arrays["llc_se"], fmt="o-", color="C2", label="LLC (SGLD, auto ε, ±2 SE)")
    ax_c.set(xlabel=plotting.TIME_LABEL, ylabel="local learning coefficient λ̂",
             title=f"LLC along training (nβ={cfg.n_beta:g}, γ={cfg.gamma:g})")
    ax_c.legend(fontsize=8, frameon=False)
    cs = plotting.colors(cfg.depth)
    for k in range(1, cfg.depth + 1):
        th, sim, se = _pair_curves(arrays, k)
        ax_i.errorbar(t, sim, yerr=2 * se, fmt="o-", color=cs[k - 1], label=f"distance {k} (SGLD)", **plotting.SIM)
        ax_i.plot(t, th, **plotting.THEORY)
    ax_i.plot([], [], label="Laplace theory", **plotting.THEORY)
    ax_i.axhline(0.0, color="0.5", lw=0.6)
    ax_i.set(xlabel=plotting.TIME_LABEL, ylabel="influence −Cov(ℓ_i, ℓ_j), mean over pairs",
             title="item-item Bayesian influence by tree distance")
    ax_i.legend(fontsize=7.5, frameon=False)
    from matplotlib.ticker import NullFormatter
    for ax in (ax_l, ax_c, ax_i):
        ax.xaxis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    return {"stagewise_influence": fig}


SWEEP_UNSUPPORTED = ("each checkpoint picks its SGLD step size from a ladder of compiled rungs in NumPy, and "
                     "the influence rows compare per-chain estimates on the host: a cell cannot hold that; vary fields with `saddle run --set`")
