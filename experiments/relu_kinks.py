"""Saddle-to-saddle in a 1-D ReLU net: one kink per plateau, plateaus at narrow optima
(Zhang, Saxe & Latham, arXiv 2512.20607; Simsek et al. 2021, arXiv 2105.12221;
Fukumizu & Amari 2000).

A two-layer ReLU net f(x) = Σᵢ aᵢ relu(wᵢx + bᵢ) (``models.relu``, h units,
balanced init of scale σ) is trained by full-batch GD (η small: the Euler
discretisation of the flow, time t = step·η in units of τ) on P points of a
convex piecewise-linear target with K kinks,

    y(x) = Σ_{k=1..K} c_k relu(x − p_k),   c_k = c₁ r^{−(k−1)},   p_k evenly in [−0.6, 0.6].

From small init the loss sits on K + 1 plateaus and the number of kinks of f
(``relu.kinks``) climbs a staircase 0, 1, …, K. The prediction: the plateau
at stage k is the optimum of a *k-unit* net, embedded in the wide one (units
that share a kink merged, the rest silent), so its loss is

    L*_k = min over k-unit nets of L,   estimated by ``dynamics.narrow.narrow_optimum_losses``

(k-unit nets trained to convergence from many O(1) inits; the wide net is never
used). Verified per K: plateau count K + 1, plateau losses vs L*_k (2%), kink
count k at plateau k, and the distance between the wide net's function at the
plateau and the narrow optimum's.

    saddle run relu-kinks            # K = 2: 12 s on 2 CPU cores (1 min under heavy load)
    saddle run relu-kinks --set n_kinks=2,3,4 --set n_steps=200000,3000000,6000000   # ~10 min; K = 3, 4 fail (below)
    saddle run relu-kinks --smoke    # K = 2: 12 s

Status (measured 2026-11-30): K = 2 passes every row (plateau losses within
1e-6 of L*_k); K = 3 and 4 do not, so the default stays K = (2,). Base target,
σ = 3e-3: the last escape of K = 3 comes after t = 6e5 and for K = 4 the
2-unit plateau is skipped. A second survey (h = 32, η = 0.2, 3-4 seeds,
t ≤ 2e5, plateaus found with floor 1e-5; losses below as L/L0) varied the
target y = Σ c_k relu(s_k(x − p_k)), σ and a linear skip, and found four ways
the wide net leaves the narrow-optimum staircase, none fixed by the setup:
(1) stalled small units: an extra plateau between L*_1 and L*_2 with one
counted kink, a second unit parked at a small slope jump (c = (4, 2, 1),
p = (−0.6, 0, 0.6), σ = 3e-4: 2.29e-3 between L*_1 = 2.465e-3 and
L*_2 = 1.29e-4 in 4 of 4 seeds, the unit left-facing at x = 0.10, jump 0.12;
c = (4, −2, 1): 3.51e-3, unit at −0.05, jump −0.13); (2) orientation: a
kink near the right end is learned by a *left*-facing unit (its support
[−1, p] is larger), which cannot also supply the zero left tail,
so the plateau is a 3-unit saddle, not the 2-unit optimum (c = (4, −2, 1),
same p, σ = 3e-3: 1, 3.819e-3 = L*_1, 3.34e-4 with 3 kinks vs L*_2 = 3.79e-4
(−12%), 0 in 3 of 4 seeds; c = (4, 2, 1): 1.19e-4 vs 1.29e-4, 1 seed of 4);
(3) non-optimal k-kink saddles before the optimum (c = 4·(−1.5)^{−(k−1)},
p = −0.6…0.6, K = 4: 1, 2.813e-3 = L*_1, 1.549e-3 with 2 kinks, then
1.133e-3 = L*_2 at t ≈ 4e3, L*_3 not reached by t = 2e5); (4) merged or unconverged
stages: ratio 2 (K = 3, 4) and kinks on the left half (K = 3, 4, c₁ = 2) give
plateau counts from 3 to 7 over seeds and kink counts jumping 1 → 3 or 4;
with kinks on the left half the 1-unit plateau is left before the units
merge (breakpoints spread over −0.80…−0.56 at t = 10, loss 1-5% below L*_1).
Nearest miss for K = 3: c = 2·3^{−(k−1)}, p = (−0.8, −0.4, 0), σ = 3e-4
(t ≤ 2e5): 4 plateaus in 4 of 4 seeds, plateau 1 = L*_1 to 1e-4, but plateau 2
= 2.68-2.77e-5 vs L*_2 = 2.16e-5 (+24-28%) with 3 kinks (a third unit
already grown but misplaced), and the last escape at t ≈ 7e4.
A linear skip v·x + c (so the affine part is no stage) makes it worse: units
then escape in pairs (kinks 0 → 2 for c = (4, −2, 1); 0 → 3 for a V target).
Convex targets with c₁ = 4 and all kinks in [−0.8, −0.2] (slope 7 on most of
the data) oscillate at η = 0.2 (edge of stability); c₁ = 2 does not.
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dynamics
from dynamics.narrow import make_train_narrow, narrow_optimum_losses
from dynamics.plateaus import detect_plateaus
from experiments import plotting
from experiments.common import POSITIVE, POSITIVE_INT, check, check_fields, field, row
from models import relu

NAME = "relu-kinks"
DESCRIPTION = "1-D ReLU net from small init: one kink per plateau, plateau losses = best narrow-net losses"

X_RANGE = (-1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Config:
    n_kinks: Tuple[int, ...] = field((2,), (lambda v: all(1 <= k <= 6 for k in v), "integers in 1..6"), "kinks K of the target, one run each")
    slope: float = field(4.0, POSITIVE, "slope jump c₁ at the first kink")
    ratio: float = field(3.0, (lambda v: v > 1, "a number > 1"), "c_k / c_{k+1}: separates the plateaus")
    n_data: int = field(41, (lambda n: n >= 10, "an integer ≥ 10"), "training points, evenly spaced in [−1, 1]")
    hidden: int = field(32, POSITIVE_INT, "hidden units of the wide net")
    init_scale: float = field(3e-3, POSITIVE, "init std σ of the wide net (balanced scheme)")
    eta: float = field(0.2, POSITIVE, "GD learning rate (τ = 1/η)")
    n_steps: Tuple[int, ...] = field((200_000,), (lambda v: all(n >= 100 for n in v), "integers ≥ 100"), "GD steps for each K")
    n_seeds: int = field(2, POSITIVE_INT, "random inits of the wide net per K")
    n_points: int = field(400, (lambda n: n >= 50, "an integer ≥ 50"), "log-spaced recording steps")
    narrow_inits: int = field(128, POSITIVE_INT, "inits per narrow width k (best one kept)")
    narrow_steps: int = field(4000, (lambda n: n >= 100, "an integer ≥ 100"), "Adam steps per narrow net")
    kink_threshold: float = field(0.3, POSITIVE, "a kink counts when its slope jump exceeds this × c_K (the smallest)")
    seed: int = field(0, None, "PRNG seed")

    def __post_init__(self):
        check_fields(self)
        check("n_steps", self.n_steps, len(self.n_steps) == len(self.n_kinks), f"one value per K ({len(self.n_kinks)})")
        check("init_scale", self.init_scale, self.init_scale <= 1e-2, "σ ≤ 1e-2 (the small-init regime)")
        check("hidden", self.hidden, self.hidden >= max(self.n_kinks), f"≥ the largest K ({max(self.n_kinks)})")


def smoke() -> Config:
    return Config(n_kinks=(2,), n_steps=(100_000,), n_points=250, narrow_inits=64, narrow_steps=3000)


def target(x: jax.Array, n_kinks: int, slope: float, ratio: float) -> jax.Array:
    """y = Σ_k c_k relu(x − p_k); x: (P, 1) → (P, 1)."""
    p, c = breakpoints(n_kinks), slope * ratio ** -np.arange(n_kinks)
    return sum(ck * jax.nn.relu(x - pk) for ck, pk in zip(c, p))


def breakpoints(n_kinks: int) -> np.ndarray:
    return np.linspace(-0.6, 0.6, n_kinks) if n_kinks > 1 else np.zeros(1)


def _data(cfg: Config, n_kinks: int):
    x = jnp.linspace(*X_RANGE, cfg.n_data)[:, None]
    return x, target(x, n_kinks, cfg.slope, cfg.ratio)


def _wide_runs(cfg: Config, data, n_steps: int, key):
    loss = dynamics.model_loss(relu.apply)
    steps = dynamics.log_steps(n_steps, cfg.n_points)

    def run(k):
        p0 = relu.init(k, n_in=1, hidden=cfg.hidden, n_out=1, scale=cfg.init_scale, scheme="balanced")
        traj = dynamics.descend(loss, p0, optax.sgd(cfg.eta), data, record_steps=steps, observe=lambda p: p)
        return traj.loss, traj.stats

    losses, params = jax.jit(jax.vmap(run))(jax.random.split(key, cfg.n_seeds))
    return steps * cfg.eta, np.asarray(losses), jax.tree_util.tree_map(np.asarray, params)


def _narrow_optima(cfg: Config, data, n_kinks: int, key):
    """(L*_k, best k-unit params) for k = 1..K, from k-unit nets only (the zero function is k = 0).

    Half the inits of width k are random (breakpoints uniform in a range 1.5× the
    data's, so some units start linear on the data, as an optimum may use one);
    the other half are the best (k−1)-unit net plus one random unit, so the search
    for L*_k always contains the (k−1)-unit optimum and L*_k ≤ L*_{k−1} as it must.
    Cosine-decayed Adam ends with tiny steps, i.e. at a minimum."""
    loss = dynamics.model_loss(relu.apply)
    opt = optax.adam(optax.cosine_decay_schedule(0.05, cfg.narrow_steps, alpha=1e-3))
    losses, params, previous = [], [], None
    for k in range(1, n_kinks + 1):
        def init_narrow(key_, k, previous=previous):
            k_rand, k_new, k_coin = jax.random.split(key_, 3)
            fresh = relu.init_breakpoints(k_rand, hidden=k, x_range=(-1.5, 1.5))
            if previous is None:
                return fresh
            grown = relu.init_breakpoints(k_new, hidden=1, x_range=(-1.5, 1.5), scale=0.3)
            grown = {n: jnp.concatenate([jnp.asarray(previous[n]), grown[n]], axis=-1 if n == "a" else 0) for n in ("w", "b", "a")}
            coin = jax.random.bernoulli(k_coin)
            return jax.tree_util.tree_map(lambda u, v: jnp.where(coin, u, v), grown, fresh)

        train = make_train_narrow(loss, init_narrow, opt, data, n_steps=cfg.narrow_steps)
        found = narrow_optimum_losses(train, [k], n_inits=cfg.narrow_inits, key=jax.random.fold_in(key, k))
        previous = found.best_aux[0]
        losses.append(float(found.best_loss[0]))
        params.append(previous)
    return np.asarray(losses), params


def simulate(cfg: Config, progress: bool = False) -> dict:
    out = {}
    keys = jax.random.split(jax.random.key(cfg.seed), len(cfg.n_kinks))
    for K, n_steps, key in plotting.progress(list(zip(cfg.n_kinks, cfg.n_steps, keys)), progress, desc="K"):
        k_wide, k_narrow = jax.random.split(key)
        data = _data(cfg, K)
        t, losses, params = _wide_runs(cfg, data, n_steps, k_wide)
        narrow_loss, narrow_params = _narrow_optima(cfg, data, K, k_narrow)
        zero = float(0.5 * jnp.mean(data[1] ** 2))
        out.update({f"t_{K}": t, f"loss_{K}": losses, f"x_{K}": np.asarray(data[0]), f"y_{K}": np.asarray(data[1]),
                    f"narrow_loss_{K}": np.concatenate([[zero], narrow_loss])})
        for name in ("w", "b", "a"):
            out[f"{name}_{K}"] = params[name]  # (seeds, T, ...)
        for k, best in enumerate(narrow_params, start=1):
            for name in ("w", "b", "a"):
                out[f"narrow_{name}_{K}_{k}"] = best[name]
    return out


def _params_at(arrays, K, seed, j):
    return {n: arrays[f"{n}_{K}"][seed, j] for n in ("w", "b", "a")}


def _narrow_params(arrays, K, k):
    if k == 0:
        return {"w": np.zeros((0, 1)), "b": np.zeros(0), "a": np.zeros((1, 0))}
    return {n: arrays[f"narrow_{n}_{K}_{k}"] for n in ("w", "b", "a")}


def kink_count(params: dict, cfg: Config, n_kinks: int) -> int:
    """Kinks inside the data whose slope jump exceeds kink_threshold·c_K (breakpoints
    closer than one data spacing are one kink: the data cannot tell them apart)."""
    spacing = (X_RANGE[1] - X_RANGE[0]) / (cfg.n_data - 1)
    c_min = cfg.slope * cfg.ratio ** -(n_kinks - 1)
    return int(relu.kinks(params, X_RANGE, tol=spacing, rel_threshold=0.0, abs_threshold=cfg.kink_threshold * c_min).size)


def plateau_points(arrays: dict, cfg: Config, K: int):
    """Per seed: (Plateaus, mid-plateau recording indices) of the wide run."""
    t, losses = arrays[f"t_{K}"], arrays[f"loss_{K}"]
    out = []
    for loss in losses:
        found = detect_plateaus(t, loss)
        mid = [int(np.argmin(np.abs(np.log(np.maximum(t, 1e-300)) - np.log(tm)))) for tm in found.plateau_times]
        out.append((found, mid))
    return out


def verify(arrays: dict, cfg: Config) -> list:
    """Per K: plateau count K + 1 (most common over seeds; exact); plateau k loss
    (median over seeds) vs the best k-unit loss L*_k, 2% relative (k < K; the last
    plateau, L*_K = 0, on the scale L*_0); kinks of f at the middle of plateau k
    = k (exact, worst seed); and the wide net's function at plateau k vs the
    narrow optimum's, ‖f − f*_k‖²/(2P) ≤ 2% of L*_k (on the scale L*_0 for k = K;
    worst seed): a wide net on the plateau *is* the narrow optimum, not merely as good."""
    rows = []
    for K in cfg.n_kinks:
        theory = arrays[f"narrow_loss_{K}"]
        x, P = arrays[f"x_{K}"], cfg.n_data
        found = plateau_points(arrays, cfg, K)
        counts = [f.n_plateaus for f, _ in found]
        count = max(set(counts), key=counts.count)
        rows.append(row(f"K={K}: plateau count (most common over seeds)", K + 1, count, tol=0, relative=False))
        agree = [(f, mid, s) for s, (f, mid) in enumerate(found) if f.n_plateaus == K + 1]
        if not agree:
            continue
        sim = np.median([f.plateau_losses for f, _, _ in agree], axis=0)
        for k in range(K + 1):
            if k < K:
                rows.append(row(f"K={K}: plateau {k} loss vs best {k}-unit loss", theory[k], sim[k], tol=0.02))
            else:
                # the target is itself a K-unit net, so L*_K = 0 exactly (the narrow fits reach ~1e-30)
                rows.append(row(f"K={K}: plateau {k} loss / L*_0 (best {k}-unit loss is 0)", 0.0, sim[k] / theory[0], tol=0.02, relative=False))
        kinks = np.array([[kink_count(_params_at(arrays, K, s, mid[k]), cfg, K) for k in range(K + 1)] for _, mid, s in agree])
        worst = int(np.argmax(np.max(np.abs(kinks - np.arange(K + 1)), axis=1)))
        for k in range(K + 1):
            rows.append(row(f"K={K}: kinks of f at plateau {k} (worst seed)", k, kinks[worst, k], tol=0, relative=False))
        for k in range(K + 1):
            f_star = relu.apply(_narrow_params(arrays, K, k), x) if k else np.zeros_like(x)
            dist = max(float(0.5 * np.mean((relu.apply(_params_at(arrays, K, s, mid[k]), x) - f_star) ** 2)) for _, mid, s in agree)
            scale = theory[k] if k < K else theory[0]
            rows.append(row(f"K={K}: ‖f − f*_{k}‖²/2P / {'L*_' + str(k) if k < K else 'L*_0'} at plateau {k} (worst seed)", 0.0, dist / scale, tol=0.02, relative=False))
    return rows


def plot(arrays: dict, cfg: Config) -> dict:
    figs = {}
    for K in cfg.n_kinks:
        t, losses, theory = arrays[f"t_{K}"], arrays[f"loss_{K}"], arrays[f"narrow_loss_{K}"]
        x, y = arrays[f"x_{K}"], arrays[f"y_{K}"]
        fig, (ax_loss, ax_kinks, ax_f) = plotting.figure(3, width=4.4)
        found = plateau_points(arrays, cfg, K)
        floor = 1e-6 * theory[0]
        for s, loss in enumerate(losses):
            ax_loss.plot(t[1:], np.maximum(loss[1:], floor), color="C0", label="simulation (seeds)" if s == 0 else None, **plotting.SIM)
            count = [kink_count(_params_at(arrays, K, s, j), cfg, K) for j in range(1, t.size)]
            ax_kinks.plot(t[1:], np.asarray(count) + 0.04 * s, color="C0", **plotting.SIM)
        for k, level in enumerate(theory):
            ax_loss.axhline(max(level, floor), label="best k-unit loss L*_k" if k == 0 else None, **plotting.THEORY)
        ax_loss.set(xscale="log", yscale="log", xlabel=plotting.TIME_LABEL, ylabel="loss L = (1/2P)Σ(y − f)²",
                    title=f"K = {K} kinks, h = {cfg.hidden}, σ = {cfg.init_scale:g}")
        ax_loss.legend(fontsize=7, frameon=False, loc="lower left")
        ax_kinks.set(xscale="log", xlabel=plotting.TIME_LABEL, ylabel="kinks of f", title="kink count (staircase 0…K)")
        ax_f.plot(x[:, 0], y[:, 0], "k.", ms=3, label="target")
        _, mid0 = found[0]
        colors = plotting.colors(len(mid0))
        for k, j in enumerate(mid0):
            params = _params_at(arrays, K, 0, j)
            ax_f.plot(x[:, 0], relu.apply(params, x)[:, 0], color=colors[k], label=f"plateau {k} (t = {t[j]:.3g})", **plotting.SIM)
            if 0 < k <= K:
                ax_f.plot(x[:, 0], relu.apply(_narrow_params(arrays, K, k), x)[:, 0], **plotting.THEORY)
        ax_f.plot([], [], label="best k-unit net", **plotting.THEORY)
        ax_f.set(xlabel="x", ylabel="f(x)", title="network at each plateau (seed 0)")
        ax_f.legend(fontsize=7, frameon=False)
        fig.tight_layout()
        figs[f"relu_kinks_K{K}"] = fig
    return figs
