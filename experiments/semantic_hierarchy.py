"""Semantic development in a deep linear network (Saxe, McClelland & Ganguli 2019,
PNAS 116:11537, arXiv 1810.10531, Figs. 3-5: hierarchy, progressive
differentiation, illusory correlations).

Items are the 2^D leaves of a binary tree; N features are sampled by the
branching diffusion of ``tasks.hierarchy`` (flip probability ε per edge), so the
network is trained on a *sampled* task, not on population statistics. Its
Σyx = Yᵀ/P has, per tree level ℓ, singular values close to the population
s_ℓ = √(N λ_ℓ)/P of ``theory.hierarchy.singular_values`` (checked within 4
standard deviations of the exact sampling error). A two-layer linear net from a
small balanced init aligned with the sampled SVD is trained by full-batch GD;
each mode follows ``theory.linear.mode_strength`` (λ_x = 1/P for one-hot items)
at its sampled singular value, so broad distinctions (level 0, 1) are learned
before fine ones. The hidden similarity H Hᵀ = Σ_α u_α(t) b_α b_αᵀ differentiates
progressively, and the item-feature pair with the largest wrong-way excursion of
``theory.hierarchy.predictions`` shows an illusory correlation: the prediction
first moves to the value of the broad category, then back to the item's own.

    saddle run semantic-hierarchy            # ~11 s on 2 CPU cores (4.5 s simulating)
    saddle run semantic-hierarchy --smoke    # ~7 s (3 s simulating)
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dynamics
import tasks
from experiments import plotting
from experiments.common import POSITIVE, POSITIVE_INT, check, check_fields, field, row
from experiments.saxe_modes import crossing_time
from models import linear
from theory import hierarchy
from theory.linear import mode_strength, mode_time

NAME = "semantic-hierarchy"
DESCRIPTION = "a deep linear net learns a semantic hierarchy broad-to-fine, with illusory correlations (Saxe et al. 2019)"


@dataclasses.dataclass(frozen=True)
class Config:
    depth: int = field(3, (lambda d: 2 <= d <= 6, "an integer in [2, 6] (depth 1 has no illusory correlations)"), "tree depth D (P = 2^D items)")
    flip_prob: float = field(0.1, (lambda e: 0 < e < 0.5, "a number in (0, 0.5)"), "ε, sign-flip probability per tree edge")
    n_features: int = field(1000, POSITIVE_INT, "N, sampled features (outputs)")
    hidden: int = field(16, POSITIVE_INT, "hidden width (≥ P, every mode fits)")
    u0: float = field(1e-3, (lambda u: 0 < u <= 0.1, "a number in (0, 0.1] (small init)"), "initial strength of every mode")
    learning_rate: float = field(0.002, POSITIVE, "GD rate η (τ = 1/η)")
    horizon: float = field(4.0, POSITIVE, "simulated time in units of τ")
    record_every: int = field(5, POSITIVE_INT, "GD steps between recordings")
    seed: int = field(0, None, "PRNG seed (features and hidden rotation)")

    def __post_init__(self):
        check_fields(self)
        p = 2**self.depth
        check("n_features", self.n_features, self.n_features >= p, f"≥ P = 2^depth = {p} (all modes present)")
        check("hidden", self.hidden, self.hidden >= p, f"≥ P = 2^depth = {p}")
        s0 = float(hierarchy.singular_values(depth=self.depth, flip_prob=self.flip_prob, n_features=self.n_features).values[0])
        check("learning_rate", self.learning_rate, self.learning_rate * s0 <= 0.05,
              f"≤ 0.05/s₀ = {0.05 / s0:.3g} (GD error ∝ ηs₀; s₀ = {s0:.3g} the top singular value)")
        check("record_every", self.record_every, self.record_every * 4 <= self.horizon / self.learning_rate,
              "at most a quarter of the steps")


def smoke() -> Config:
    return Config(learning_rate=0.004, horizon=3.5, record_every=4)


def simulate(cfg: Config, progress: bool = False) -> dict:
    key_task, key_init = jax.random.split(jax.random.key(cfg.seed))
    p = 2**cfg.depth
    # = tasks.hierarchy(key_task, ...), with the sampler compiled as one program
    # (its eager ops would each compile: seconds of the smoke run).
    y = jax.jit(functools.partial(tasks.tree_features, depth=cfg.depth, flip_prob=cfg.flip_prob,
                                  n_features=cfg.n_features))(key_task)
    task = tasks.from_data(jnp.eye(p, dtype=y.dtype), y)
    steps = np.arange(0, int(round(cfg.horizon / cfg.learning_rate)) + 1, cfg.record_every)
    t = steps * cfg.learning_rate
    # The illusory pair is chosen by the theory, before training: largest
    # wrong-way excursion max_t −sign(y) ŷ(t) over all items and features.
    ill = hierarchy.illusory_correlations(t, s=task.s, modes=task.v, y=task.y, u0=cfg.u0)
    item, feature = np.unravel_index(int(np.argmax(np.asarray(ill.excursion))), ill.excursion.shape)

    def observe(params):
        return {"modes": linear.mode_strengths(params, task.u, task.v),
                "similarity": params[0].T @ params[0],  # H Hᵀ, h_i = W1 x_i, x_i = e_i
                "prediction": linear.end_to_end(params)[feature]}  # ŷ_{feature}(item) for all items

    init = functools.partial(linear.init_aligned, sizes=(p, cfg.hidden, cfg.n_features), u0=cfg.u0)
    params = jax.jit(init)(key_init, u=task.u, v=task.v)
    gd = dynamics.descend(dynamics.model_loss(linear.apply), params, optax.sgd(cfg.learning_rate),
                          (task.x, task.y), record_steps=steps, observe=observe, progress=progress)
    return {"t": t, "s": np.asarray(task.s), "v": np.asarray(task.v), "y_feature": np.asarray(task.y[:, feature]),
            "item": np.int64(item), "feature": np.int64(feature), "modes": np.asarray(gd.stats["modes"]),
            "similarity": np.asarray(gd.stats["similarity"]), "prediction": np.asarray(gd.stats["prediction"]),
            "loss": np.asarray(gd.loss)}


# ------------------------------------------------------------------ theory

@functools.lru_cache(maxsize=8)
def _population(cfg: Config):
    """Population s_ℓ, multiplicities and the sampling std of each level's RMS singular value."""
    spec = hierarchy.singular_values(depth=cfg.depth, flip_prob=cfg.flip_prob, n_features=cfg.n_features)
    std = hierarchy.singular_value_std(depth=cfg.depth, flip_prob=cfg.flip_prob, n_features=cfg.n_features)
    return np.asarray(spec.values), np.asarray(spec.multiplicities), np.asarray(std)


def _mode_levels(mult: np.ndarray) -> np.ndarray:
    """Level of each sampled mode in descending order of s: 0, 1, 2, 2, 3, 3, 3, 3, ..."""
    return np.repeat(np.arange(len(mult)), mult)


def _theory_modes(arrays, cfg, t):
    p = 2**cfg.depth
    return np.asarray(mode_strength(np.asarray(t)[:, None], s=arrays["s"], u0=cfg.u0, lam_x=1.0 / p))


def _half_times(arrays, cfg):
    p, s = 2**cfg.depth, arrays["s"]
    return np.asarray(mode_time(cfg.u0, p * s / 2, s=s, lam_x=1.0 / p))


def _theory_prediction(arrays, cfg, t):
    """(T, P) theory ŷ of the recorded feature for every item."""
    return np.asarray(hierarchy.predictions(t, s=arrays["s"], modes=arrays["v"], y=arrays["y_feature"][:, None],
                                            u0=cfg.u0))[..., 0]


def _peak(t, y):
    """(value, time) of the maximum of y(t), refined by the parabola through the top 3 samples."""
    k = int(np.clip(np.argmax(y), 1, len(y) - 2))
    y0, y1, y2 = y[k - 1:k + 2]
    x = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
    return y1 - 0.25 * (y0 - y2) * x, t[k] + x * (t[1] - t[0])


def _illusion(arrays, cfg):
    """Wrong-way excursion −sign(y_if) ŷ_if(t) of the illusory pair: sim and theory peaks."""
    i, sign = int(arrays["item"]), -np.sign(arrays["y_feature"][int(arrays["item"])])
    sim = _peak(arrays["t"], sign * arrays["prediction"][:, i])
    fine = np.linspace(0.0, arrays["t"][-1], 20001)
    th = _peak(fine, sign * _theory_prediction(arrays, cfg, fine)[:, i])
    return sim, th


def verify(arrays: dict, cfg: Config) -> list:
    """Theory vs simulation.

    Singular values: the RMS of the sampled s_α within each level (sorted groups
    of size mult_ℓ) vs the population s_ℓ; to first order it is an average of N
    i.i.d. terms whose exact std is ``theory.hierarchy.singular_value_std``,
    tol = 4 std (relative to s_ℓ).
    Half-learning times: each mode's GD time to reach half its final value P s_α
    vs Eq. 9 at the sampled s_α (λ_x = 1/P); Euler's growth factor (1 + ηs)² vs
    e^{2ηs} delays a mode by a relative ≈ ηs/2, tol = ηs_α (as saxe-modes); the
    row shows the mode of the level with the largest error/tol.
    Hidden similarity: max over t, i, j of |HHᵀ_GD − HHᵀ_theory| / max HHᵀ(∞);
    by Cauchy–Schwarz it is ≤ max_α |Δu_α|/u_α(∞), and a delay ηs t/2 of a
    logistic of slope ≤ s/2 (in units of u(∞)) gives |Δu|/u(∞) ≈ ηs²t_half/4;
    tol = twice that, max over modes.
    Illusory peak: time relative tol ηs₀ (twice the largest delay ηs_α/2); value:
    a common delay leaves the peak value unchanged, different delays move it by
    ≤ Σ_α |c_α ġ_α(t*)| ηs_α t*/2 (c_α = (b_α b_αᵀ y)_i, g_α = u_α/(P s_α)),
    tol = twice that.
    """
    rows, p, s, eta = [], 2**cfg.depth, arrays["s"], cfg.learning_rate
    s_pop, mult, std = _population(cfg)
    levels = _mode_levels(mult)
    for l in range(cfg.depth + 1):
        rms = float(np.sqrt(np.mean(s[levels == l] ** 2)))
        rows.append(row(f"level-{l} singular value (RMS of {mult[l]}), N={cfg.n_features}", s_pop[l], rms,
                        tol=4 * std[l] / s_pop[l]))
    th_half = _half_times(arrays, cfg)
    sim_half = np.asarray(jax.jit(jax.vmap(crossing_time, in_axes=(None, 1, 0)))(arrays["t"], arrays["modes"], p * s / 2))
    for l in range(cfg.depth + 1):
        idx = np.flatnonzero(levels == l)
        ratio = np.abs(sim_half[idx] - th_half[idx]) / th_half[idx] / (eta * s[idx])
        a = idx[np.nanargmax(np.where(np.isfinite(ratio), ratio, np.inf))]
        rows.append(row(f"GD half-learning time t/tau, level {l} (worst mode, s={s[a]:.3g})", th_half[a], sim_half[a],
                        tol=eta * s[a]))
    th_sim = np.asarray(hierarchy.hidden_similarity(arrays["t"], s=s, modes=arrays["v"], u0=cfg.u0))
    err = np.max(np.abs(arrays["similarity"] - th_sim)) / np.max(np.abs(th_sim[-1]))
    rows.append(row("hidden similarity HH', max_t,ij |GD - theory| / max HH'(end)", 0.0, err,
                    tol=float(np.max(eta * s**2 * th_half / 2)), relative=False))
    (v_sim, t_sim), (v_th, t_th) = _illusion(arrays, cfg)
    i, y = int(arrays["item"]), arrays["y_feature"]
    c = -np.sign(y[i]) * arrays["v"][i] * (arrays["v"].T @ y)
    g = _theory_modes(arrays, cfg, [t_th])[0] / (p * s)
    shift = float(np.sum(np.abs(c * 2 * s * g * (1 - g)) * eta * s * t_th / 2))
    label = f"item {i}, feature {int(arrays['feature'])}"
    rows.append(row(f"illusory peak value -sign(y)*y_hat, {label}", v_th, v_sim, tol=2 * shift, relative=False))
    rows.append(row(f"illusory peak time t/tau, {label}", t_th, t_sim, tol=eta * s[0]))
    return rows


# ------------------------------------------------------------------ figures

def _panel_times(arrays, cfg):
    """Times between successive population level half-learning times (geometric
    midpoints) and the end: each panel shows one more level differentiated."""
    t_level = np.asarray(hierarchy.level_learning_times(depth=cfg.depth, flip_prob=cfg.flip_prob,
                                                        n_features=cfg.n_features, u0=cfg.u0))
    times = list(np.sqrt(t_level[:-1] * t_level[1:])) + [arrays["t"][-1]]
    if len(times) > 4:
        times = [times[k] for k in np.linspace(0, len(times) - 1, 4).round().astype(int)]
    return times


def plot(arrays: dict, cfg: Config) -> dict:
    import matplotlib.pyplot as plt

    t, s, p = arrays["t"], arrays["s"], 2**cfg.depth
    s_pop, mult, std = _population(cfg)
    levels = _mode_levels(mult)
    cs = plotting.colors(cfg.depth + 1)

    fig, (ax_s, ax_u, ax_ill) = plotting.figure(3)
    for l in range(cfg.depth + 1):
        idx = np.flatnonzero(levels == l)
        ax_s.plot(np.full(len(idx), l) + np.linspace(-0.12, 0.12, len(idx)), s[idx], "o", color=cs[l], ms=5)
        ax_s.errorbar(l, s_pop[l], yerr=4 * std[l], color="k", capsize=6, lw=1.2)
    ax_s.plot([], [], "o", color="0.4", label=f"sampled task (N={cfg.n_features})")
    ax_s.plot(np.arange(cfg.depth + 1), s_pop, label="theory s_ℓ = √(Nλ_ℓ)/P ± 4σ", **plotting.THEORY)
    ax_s.set(title=f"Σyx singular values, D={cfg.depth}, ε={cfg.flip_prob:g}", xlabel="tree level ℓ (0 = broadest)",
             ylabel="singular value s", xticks=range(cfg.depth + 1))
    ax_s.legend(fontsize=8, frameon=False)

    th = _theory_modes(arrays, cfg, t)
    for a in range(len(s)):
        l = levels[a]
        first = a == np.flatnonzero(levels == l)[0]
        ax_u.plot(t, arrays["modes"][:, a], color=cs[l], label=f"level {l} (×{mult[l]})" if first else None,
                  **plotting.SIM)
        ax_u.plot(t, th[:, a], **plotting.THEORY)
    ax_u.plot([], [], label="theory", **plotting.THEORY)
    ax_u.set(title=f"mode strengths u_α, GD (η={cfg.learning_rate:g})", xlabel=plotting.TIME_LABEL,
             ylabel="u_α = a_αᵀ W2W1 b_α  (→ P s_α)")
    ax_u.set_ylim(top=1.35 * np.max(arrays["modes"]))
    ax_u.legend(fontsize=7.5, frameon=False, loc="upper left", ncol=3, columnspacing=1.0)

    i, y = int(arrays["item"]), arrays["y_feature"]
    th_pred = _theory_prediction(arrays, cfg, t)
    for j in range(p):
        if j != i:
            ax_ill.plot(t, arrays["prediction"][:, j], color="0.75", lw=0.8)
    ax_ill.plot([], [], color="0.75", lw=0.8, label="other items")
    ax_ill.plot(t, arrays["prediction"][:, i], color="C3", label=f"item {i} (true value {y[i]:+g})", **plotting.SIM)
    ax_ill.plot(t, th_pred[:, i], label="theory", **plotting.THEORY)
    (v_sim, t_sim), _ = _illusion(arrays, cfg)
    ax_ill.plot(t_sim, -np.sign(y[i]) * v_sim, "v" if y[i] > 0 else "^", color="C3", ms=7, label="illusory peak")
    ax_ill.axhline(0.0, color="0.5", lw=0.5)
    ax_ill.set(title=f"illusory correlation: item {i}, feature {int(arrays['feature'])}", xlabel=plotting.TIME_LABEL,
               ylabel="prediction ŷ (feature, item)")
    ax_ill.legend(fontsize=8, frameon=False)
    fig.tight_layout()

    js = [int(np.argmin(np.abs(t - tk))) for tk in _panel_times(arrays, cfg)]
    th_sim = np.asarray(hierarchy.hidden_similarity(t[js], s=s, modes=arrays["v"], u0=cfg.u0))
    fig_sim, axes = plt.subplots(2, len(js), figsize=(2.6 * len(js) + 0.8, 5.4), squeeze=False)
    for k, j in enumerate(js):
        for r, (mat, who) in enumerate([(arrays["similarity"][j], "GD"), (th_sim[k], "theory")]):
            ax = axes[r][k]
            im = ax.imshow(mat / np.max(np.abs(mat)), cmap="RdBu_r", vmin=-1, vmax=1)
            ax.set(xticks=[], yticks=[], title=f"{who}, t/τ = {t[j]:.2f}")
            if k == 0:
                ax.set_ylabel(f"{who}: items", fontsize=9)
            if r == 1:
                ax.set_xlabel("items", fontsize=9)
    fig_sim.suptitle("hidden similarity H Hᵀ / max (progressive differentiation; theory Σ_α u_α(t) b_α b_αᵀ)", fontsize=10)
    fig_sim.colorbar(im, ax=[a for row_ in axes for a in row_], shrink=0.8, label="H Hᵀ / max |H Hᵀ|")
    return {"semantic_hierarchy": fig, "similarity": fig_sim}


# ------------------------------------------------------------------ sweeps
# `saddle sweep semantic-hierarchy --grid flip_prob=0.05,0.1,0.2 --grid seed=0,1,2`:
# every cell is one GD run; these fields may be traced (one compiled program).
SWEEP_FIELDS = ("u0", "learning_rate", "flip_prob", "seed")
SWEEP_METRIC = "half_time_rel_err"


def cell(cfg: Config, values: dict) -> dict:
    """One GD run on a freshly sampled tree with (u0, learning_rate, flip_prob,
    seed) possibly traced: the loss on a grid of t/τ, each mode's half-learning
    time and its worst relative error against Eq. 9 of arXiv 1312.6120 with
    λ_x = 1/P (modes the theory does not half-learn within ``horizon`` are left
    out of the error and report ``horizon``)."""
    eta, u0 = values["learning_rate"], values["u0"]
    key_task, key_init = jax.random.split(jax.random.key(values["seed"]))
    p = 2**cfg.depth
    y = tasks.tree_features(key_task, depth=cfg.depth, flip_prob=values["flip_prob"], n_features=cfg.n_features)
    x = jnp.eye(p, dtype=y.dtype)
    u, s, vt = jnp.linalg.svd(y.T @ x / p, full_matrices=False)  # Σyx = U diag(s) Vᵀ, (n_features, P)
    params = linear.init_aligned(key_init, (p, cfg.hidden, cfg.n_features), u=u, v=vt.T, u0=u0)
    times = jnp.linspace(0.0, cfg.horizon, 121)
    steps = jnp.round(times / eta).astype(jnp.int32)
    gd = dynamics.descend(dynamics.model_loss(linear.apply), params, optax.sgd(eta), (x, y), record_steps=steps,
                          observe=lambda prm: {"modes": linear.mode_strengths(prm, u, vt.T)})
    level = p * s / 2
    theory = mode_time(u0, level, s=s, lam_x=1.0 / p)
    reached = theory < cfg.horizon
    half = jax.vmap(crossing_time, in_axes=(None, 1, 0))(gd.t * eta, gd.stats["modes"], level)
    err = jnp.where(reached, jnp.abs(half - theory) / theory, 0.0)
    return {"loss": gd.loss, "final_loss": gd.loss[-1], "half_time": jnp.where(reached, half, cfg.horizon),
            "half_time_rel_err": jnp.max(err)}
