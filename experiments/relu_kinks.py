"""Saddle-to-saddle in a 1-D ReLU net: one kink per plateau, plateaus at narrow
optima, escape times from the small-init limit (Zhang, Saxe & Latham, arXiv
2512.20607; Simsek et al. 2021, arXiv 2105.12221; Fukumizu & Amari 2000).

A two-layer ReLU net f(x) = Σᵢ aᵢ relu(wᵢx + bᵢ) (``models.relu``, h units,
balanced init of scale σ) with a free affine part (a linear skip v x + c fitted
exactly: loss L = (1/2P)‖P⊥(y − f)‖², ``dynamics.affine_free_loss``) is trained
by full-batch GD (step η; time t = step·η in units of τ) on P points in [−1, 1]
of a target with K kinks, y = Σ_k c_k relu(x − p_k) (``TARGETS``, K = 2, 3, 4).

Predictions, verified for every K:
1. The loss sits on K + 1 plateaus and the number of kinks of f (``relu.kinks``)
   climbs 0, 1, …, K, one per escape, for every seed whose init puts a unit of
   the right sign in the basin of every lobe (``theory.relu.lobe_occupancy``);
   a seed with an empty basin never learns that kink and stalls (≤ K plateaus).
2. Plateau k is the best k-unit net, embedded in the wide one: its loss is
   L*_k = min over k-unit nets (``dynamics.narrow.narrow_optimum_losses``: k-unit
   nets trained from many O(1) inits; the wide net is never used), 2% relative
   (median over seeds), and the wide net's function there is the narrow
   optimum's: ‖P⊥(f − f*_k)‖²/2P ≤ 2% of L*_k, and the kinks of its merged units
   lie within half a data spacing of f*_k's (worst seed).
3. The escape times are those of the σ → 0 limit (``theory.relu.incremental_escapes``,
   computed from the narrow optima's residuals and ln(1/σ) only), median over
   seeds. An escape is read where the loss has fallen to L*_k − ¾·λu*/2
   (``escape_times``): the midpoint of the escaping cluster's logistic, λu*/2 its
   drop at a frozen breakpoint. Tolerance, derived (``theory.relu_escape``): each
   cluster needs the log-growth ln(1/σ) + c_j, c_j = ½ ln(u*_j/ξ_eff²) computed per
   seed from its init before training (u* the unit's optimal coefficient, ξ_eff² =
   Σ ξᵢ² e^{−2Dᵢ} the basin's initial norms, Dᵢ the rotation delay to the lobe's top;
   the detector term ½ ln(v/(1−v)), v = 1 − √(1 − ¾) = ½, is 0); escape times grow
   monotonically with the thresholds and scale exactly with a common one, so each
   is within [min c_j, max c_j]/ln(1/σ) of the limit; the breakpoint's realignment
   during a drop can only make it earlier, by at most |b_k| (``realignment_bracket``).
   tol_k = max(|min c_j + b_k|, |max c_j|)/ln(1/σ), min/max over clusters and seeds.
   Not included: re-climbs at later stages and the drops' overlap with the other
   clusters' growth (O(1) each; the per-seed predictions ``seed_times_K`` that carry
   c_j miss the measured times by ≤ 1.0% (default config) and ≤ 1.3% (smoke), i.e.
   ≤ 0.37 e-folds, where the limit misses them by up to 4.4%).
   Per seed, the first escape only (``first_escape_rows``): t̂ = Λ_j/λ_j vs the
   seed's own time, tol = (|b₁| + 2ηλ)/Λ_j + GD's corner chatter + the reading
   resolution of the recorded curve, all before training; later escapes have no
   per-seed bound (the re-climbs above), so no per-seed rows.

Targets. ``theory.relu``: a small unit with breakpoint p grows at the rate s·G(p),
G the residual integrated twice; units gather in the lobes of s·G, so a kink
is learned on time only if it has a lobe of its own from the start with a unit
of the right sign in its basin, and two kinks escape together if their lobes
grow at close rates. The targets have alternating slope jumps chosen (by
scanning ``escape_lobes``) so that G(p) of y has K lobes of alternating sign
whose rates are ≥ 1.9× apart (K = 4: lobes at −0.80, −0.35, 0.25, 0.80 with
rates 0.00086, 0.0046, 0.0172, 0.0018).

Measured (2026-12-02, h = 32, σ = 1e-12, 48 seeds per K): the seeds with every
lobe populated (48, 44, 40 of 48 for K = 2, 3, 4) all pass every row, and the
4 + 8 others all stall one plateau short (their empty lobe is the last to
escape); plateau losses match L*_k to ≤ 6.6e-4, escape times the σ → 0 limit to
≤ 3.9% (medians over seeds; detector level-¾ times, before issue 17 item 3).
Smoke (2026-12-04, 4 seeds, σ = 1e-12, ln(1/σ) = 27.6): escape-time errors
1.7-5.0% against derived tolerances 4.3-6.7% (the picked 2/ln(1/σ) was 7.2%).
Default config (same date, 8 seeds): 1.7-4.4% against 5.0-7.0%; c_j spans
−1.53 … +0.23 e-folds over seeds and clusters.
Per-seed first escapes (2026-12-05): default −0.25…+0.32% against 0.50-1.18%, smoke 0.15-0.54%
against 0.77-1.3% (|b₁|/Λ 0.07-0.8%, reading 0.2-0.3%, chatter ≤ 0.09%, 2ηλ/Λ ≤ 0.06%).
Earlier runs with other seeds: 8 of 8 at h = 32 and 64 for
σ = 1e-4, 1e-8, 1e-12, 1e-20 (escape-time error × ln(1/σ) ≤ 1.7 for every seed).

Why the affine part is free. In a plain net (no skip) a unit whose breakpoint
lies outside the data is an affine function, so nets spend units on the
target's affine part: from small init the first unit grows as a line when the
target's mean dominates its slope and stalls at the best affine fit (a U-shaped
K = 4 target: a plateau at 0.475 L₀ with 0 kinks, then plateaus with k kinks
+ 1 affine unit, 1.0e-3 vs L*_2 = 2.9e-3); and once the residual is orthogonal
to affine functions a left- and a right-facing unit at one breakpoint grow at
the same rate (the previous target here, c = 4·3^−(k−1) at −0.6…0.6: twins at
0.55 for K = 3, plateau 2 at 3.3e-5 vs L*_2 = 3.1e-5 with 3-4 kinks, no escape
from it by t = 8e4). Fitting the affine part exactly removes both: a unit is a
kink, and the two orientations of a kink are one unit. ``relu-plateau-grid``
keeps the plain net.

    saddle run relu-kinks            # K = 2, 3, 4, 8 seeds each: ~30 s on 2 CPU cores
    saddle run relu-kinks --smoke    # K = 2, 4, 4 seeds each: ~35 s CPU of simulation (mostly compiling the narrow fits)
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dynamics
from dynamics.compiling import jit_loop
from dynamics.narrow import make_train_narrow, narrow_optimum_losses
from dynamics.plateaus import detect_plateaus, grid_ratio, rise_time_resolution, rise_times
from experiments import plotting
from experiments.common import POSITIVE, POSITIVE_INT, bound_row, check, check_fields, field, row
from models import relu
from theory import relu as theory_relu
from theory import relu_escape

NAME = "relu-kinks"
DESCRIPTION = "1-D ReLU net from small init: one kink per plateau, plateaus = best narrow nets, escape times from the σ→0 limit"

X_RANGE = (-1.0, 1.0)
# K -> (breakpoints p_k, slope jumps c_k): y = Σ c_k relu(x − p_k); see the module docstring.
TARGETS = {
    2: ((-0.5, 0.5), (4.0, -6.0)),
    3: ((-0.5, 0.0, 0.5), (4.0, -3.25, 2.0)),
    4: ((-0.75, -0.25, 0.25, 0.75), (4.0, -4.75, 6.0, -7.75)),
}


@dataclasses.dataclass(frozen=True)
class Config:
    DEPRECATED_KEYS = {"eta": "learning_rate", "horizon": "horizon_escapes"}  # old name -> new name, accepted (with a warning) for one release
    n_kinks: Tuple[int, ...] = field((2, 3, 4), (lambda v: all(k in TARGETS for k in v), f"integers in {sorted(TARGETS)}"), "kinks K of the target, one run each (targets in TARGETS)")
    n_data: int = field(41, (lambda n: n >= 10, "an integer ≥ 10"), "training points, evenly spaced in [−1, 1]")
    hidden: int = field(32, POSITIVE_INT, "hidden units of the wide net")
    init_scale: float = field(1e-12, POSITIVE, "init std σ of the wide net (balanced scheme)")
    learning_rate: float = field(0.2, POSITIVE, "GD learning rate η (τ = 1/η; time t/τ = step × η)")
    horizon_escapes: float = field(2.5, (lambda v: v > 1, "a number > 1"), "simulated time in multiples of the predicted last escape time")
    n_seeds: int = field(8, POSITIVE_INT, "random inits of the wide net per K")
    n_points: int = field(400, (lambda n: n >= 50, "an integer ≥ 50"), "log-spaced recording steps")
    narrow_inits: int = field(128, POSITIVE_INT, "inits per narrow width k (best one kept)")
    narrow_steps: int = field(4000, (lambda n: n >= 100, "an integer ≥ 100"), "Adam steps per narrow net")
    kink_threshold: float = field(0.3, POSITIVE, "a kink counts when its slope jump exceeds this × the smallest jump of the narrow optima")
    seed: int = field(0, None, "PRNG seed")

    def __post_init__(self):
        check_fields(self)
        check("init_scale", self.init_scale, self.init_scale <= 1e-2, "σ ≤ 1e-2 (the small-init regime)")
        check("hidden", self.hidden, self.hidden >= 2 * max(self.n_kinks), f"≥ 2 × the largest K ({2 * max(self.n_kinks)}): half the units start affine on the data")


def smoke() -> Config:
    # K = 2 and 4 (the simplest target and the one with most lobes); K = 3 runs in the full
    # config. Compiling the narrow fits (one program per width k ≤ K) is most of the cost.
    return Config(n_kinks=(2, 4), n_seeds=4, n_points=300, narrow_inits=64, narrow_steps=3000)


def target(x: jax.Array, n_kinks: int) -> jax.Array:
    """y = Σ_k c_k relu(x − p_k) with (p, c) = TARGETS[n_kinks]; x: (P, 1) → (P, 1)."""
    p, c = TARGETS[n_kinks]
    return sum(ck * jax.nn.relu(x - pk) for pk, ck in zip(p, c))


def _data(cfg: Config, n_kinks: int):
    x = jnp.linspace(*X_RANGE, cfg.n_data)[:, None]
    return x, target(x, n_kinks)


LOSS = dynamics.affine_free_loss(relu.apply)


def _narrow_optima(cfg: Config, data, n_kinks: int, key):
    """(L*_k, best k-unit params) for k = 1..K, from k-unit nets only.

    Half the inits of width k are random (breakpoints uniform over the data;
    one outside would be affine, i.e. nothing); the other half are the best
    (k−1)-unit net plus one random unit, so the search for L*_k contains the
    (k−1)-unit optimum and L*_k ≤ L*_{k−1}. Cosine-decayed Adam ends with tiny
    steps, i.e. at a minimum."""
    opt = optax.adam(optax.cosine_decay_schedule(0.05, cfg.narrow_steps, alpha=1e-3))
    losses, params, previous = [], [], None
    for k in range(1, n_kinks + 1):
        def init_narrow(key_, k, previous=previous):
            k_rand, k_new, k_coin = jax.random.split(key_, 3)
            fresh = relu.init_breakpoints(k_rand, hidden=k, x_range=X_RANGE)
            if previous is None:
                return fresh
            grown = relu.init_breakpoints(k_new, hidden=1, x_range=X_RANGE, scale=0.3)
            grown = {n: jnp.concatenate([jnp.asarray(previous[n]), grown[n]], axis=-1 if n == "a" else 0) for n in ("w", "b", "a")}
            return jax.tree_util.tree_map(lambda u, v: jnp.where(jax.random.bernoulli(k_coin), u, v), grown, fresh)

        train = make_train_narrow(LOSS, init_narrow, opt, data, n_steps=cfg.narrow_steps)
        found = narrow_optimum_losses(train, [k], n_inits=cfg.narrow_inits, key=jax.random.fold_in(key, k))
        previous = found.best_aux[0]
        losses.append(float(found.best_loss[0]))
        params.append(previous)
    return np.asarray(losses), params


def stage_residuals(x, y, narrow_params) -> list:
    """r_k = y − f*_k for k = 0, …, K−1 (r_0 = y): the landscapes of the plateaus before each escape."""
    return [np.asarray(y)] + [np.asarray(y - relu.apply(p, x)) for p in narrow_params[:-1]]


def recording_steps(cfg, t_end: float) -> np.ndarray:
    """n_points log-spaced GD steps up to time t_end (t = step·η)."""
    return dynamics.log_steps(max(int(np.ceil(t_end / cfg.learning_rate)), cfg.n_points), cfg.n_points)


def _wide_runs(cfg: Config, data, t_end: float, key):
    steps = recording_steps(cfg, t_end)

    def run(k):
        p0 = relu.init(k, n_in=1, hidden=cfg.hidden, n_out=1, scale=cfg.init_scale, scheme="balanced")
        traj = dynamics.descend(LOSS, p0, optax.sgd(cfg.learning_rate), data, record_steps=steps, observe=lambda p: p)
        return traj.loss, traj.stats

    # run time dominates (up to ~1e5 GD steps): compiled with the backend optimiser on
    losses, params = jit_loop(jax.vmap(run))(jax.random.split(key, cfg.n_seeds))
    return steps * cfg.learning_rate, np.asarray(losses), jax.tree_util.tree_map(np.asarray, params)


def simulate(cfg: Config, progress: bool = False) -> dict:
    out = {}
    keys = jax.random.split(jax.random.key(cfg.seed), len(cfg.n_kinks))
    for K, key in plotting.progress(list(zip(cfg.n_kinks, keys)), progress, desc="K"):
        k_wide, k_narrow = jax.random.split(key)
        x, y = data = _data(cfg, K)
        narrow_loss, narrow_params = _narrow_optima(cfg, data, K, k_narrow)
        residuals = stage_residuals(x, y, narrow_params)
        escapes = theory_relu.incremental_escapes(x, residuals, log_inv_scale=float(np.log(1 / cfg.init_scale)), eta=cfg.learning_rate)
        t, losses, params = _wide_runs(cfg, data, cfg.horizon_escapes * escapes.times[-1], k_wide)
        w0, b0, a0 = params["w"][:, 0, :, 0], params["b"][:, 0], params["a"][:, 0, 0]  # (seeds, h) at init
        with np.errstate(divide="ignore", invalid="ignore"):
            occupancy = np.stack([theory_relu.lobe_occupancy(x, y, -b / w, a) for w, b, a in zip(w0, b0, a0)])
        # the O(1) term of each seed's escape times, from its init alone (theory.relu_escape)
        norms2 = np.abs(a0) * np.hypot(w0, b0)
        thresholds = np.full((cfg.n_seeds, escapes.clusters.size), np.nan)
        seed_times = np.full((cfg.n_seeds, K), np.nan)
        first = np.full((cfg.n_seeds, 3), np.nan)  # per seed, its first escape: Λ_j, λ_j, chatter δ_j
        for s in np.nonzero(np.all(occupancy >= 1, axis=1))[0]:
            with np.errstate(divide="ignore", invalid="ignore"):
                thresholds[s] = relu_escape.escape_thresholds(x, residuals, escapes, -b0[s] / w0[s], a0[s], norms2[s])
            seq = theory_relu.incremental_escapes(x, residuals, log_inv_scale=thresholds[s], eta=cfg.learning_rate)
            seed_times[s] = seq.times
            first[s] = (thresholds[s][seq.escaped[0]], seq.rates[0], relu_escape.corner_chatter(
                x, residuals[0], seq.breakpoints[0], seq.signs[0], cfg.learning_rate))
        fixed_drop = np.array([0.5 * sg * theory_relu.unit_rate(x, residuals[k], [bp])[0] * relu_escape.optimal_coefficient(x, residuals[k], bp, sg)
                               for k, (bp, sg) in enumerate(zip(escapes.breakpoints, escapes.signs))])
        out.update({f"thresholds_{K}": thresholds, f"seed_times_{K}": seed_times, f"fixed_drop_{K}": fixed_drop, f"seed_first_{K}": first})
        grid = theory_relu.breakpoint_grid(x, 801)
        zero = float(LOSS({"w": jnp.zeros((0, 1)), "b": jnp.zeros(0), "a": jnp.zeros((1, 0))}, data))
        out.update({f"t_{K}": t, f"loss_{K}": losses, f"x_{K}": np.asarray(x), f"y_{K}": np.asarray(y),
                    f"narrow_loss_{K}": np.concatenate([[zero], narrow_loss]),
                    f"theory_times_{K}": escapes.times, f"theory_breakpoints_{K}": escapes.breakpoints, f"occupancy_{K}": occupancy,
                    f"landscape_p_{K}": grid, f"landscape_{K}": np.stack([theory_relu.unit_rate(x, r, grid) for r in residuals])})
        for name in ("w", "b", "a"):
            out[f"{name}_{K}"] = params[name]  # (seeds, T, ...)
            for k, best in enumerate(narrow_params, start=1):
                out[f"narrow_{name}_{K}_{k}"] = best[name]
    return out


def _params_at(arrays, K, seed, j):
    return {n: arrays[f"{n}_{K}"][seed, j] for n in ("w", "b", "a")}


def _narrow_params(arrays, K, k):
    if k == 0:
        return {"w": np.zeros((0, 1)), "b": np.zeros(0), "a": np.zeros((1, 0))}
    return {n: arrays[f"narrow_{n}_{K}_{k}"] for n in ("w", "b", "a")}


def _fitted(params, x, y):
    """f plus its best affine correction on the data: y − P⊥(y − f)."""
    return np.asarray(y - dynamics.affine_residual(jnp.asarray(x), jnp.asarray(y - relu.apply(params, x))))


def _kink_positions(params: dict, arrays: dict, cfg: Config, K: int) -> np.ndarray:
    """Kinks inside the data whose slope jump exceeds kink_threshold × the smallest
    jump |aᵢwᵢ| among the narrow optima f*_1..f*_K. Units whose breakpoints lie
    within one data spacing are merged into one kink (``relu.kinks``: the data
    cannot tell them apart; units that share a kink add their jumps)."""
    jumps = [np.abs(arrays[f"narrow_a_{K}_{k}"][0] * arrays[f"narrow_w_{K}_{k}"][:, 0]) for k in range(1, K + 1)]
    spacing = (X_RANGE[1] - X_RANGE[0]) / (cfg.n_data - 1)
    return relu.kinks(params, X_RANGE, tol=spacing, rel_threshold=0.0,
                      abs_threshold=cfg.kink_threshold * min(float(j.min()) for j in jumps))


def kink_count(params: dict, arrays: dict, cfg: Config, K: int) -> int:
    """Number of kinks of f (``_kink_positions``)."""
    return int(_kink_positions(params, arrays, cfg, K).size)


def plateau_points(arrays: dict, K: int):
    """Per seed: (Plateaus, recording index nearest each plateau's mid-time)."""
    t = arrays[f"t_{K}"]
    out = []
    for loss in arrays[f"loss_{K}"]:
        found = detect_plateaus(t, loss)
        out.append((found, [int(np.argmin(np.abs(np.log(np.maximum(t, 1e-300)) - np.log(tm)))) for tm in found.plateau_times]))
    return out


def escape_times(arrays: dict, K: int, seed: int) -> np.ndarray:
    """(K,) times at which the loss of ``seed`` first falls to L*_k − ¾·λ_k u*_k/2: the midpoint
    c = u*/2 of the escaping cluster's logistic (``theory.relu_escape``, item 1; λ_k u*_k/2 is the
    drop at a fixed breakpoint, ``fixed_drop``, less than L*_k − L*_{k+1}: the rest comes while the
    breakpoint realigns, an O(1) delay the theory does not give, so the detector's level-¾
    transition of the whole drop is not used here)."""
    target = arrays[f"narrow_loss_{K}"][:-1] - 0.75 * arrays[f"fixed_drop_{K}"]
    loss = arrays[f"loss_{K}"][seed]
    return rise_times(arrays[f"t_{K}"], -np.broadcast_to(loss[:, None], (loss.size, target.size)), -target)


def verify(arrays: dict, cfg: Config) -> list:
    """Rows per K (module docstring): plateau count (seeds with every lobe
    populated: K + 1; with an empty lobe: ≤ K), plateau losses vs L*_k (median
    over seeds; the last one, L*_K = 0, on the scale L*_0), kinks per plateau,
    ‖P⊥(f − f*_k)‖²/2P and kink positions vs f*_k's (worst seed), escape times vs
    the σ → 0 limit (median over seeds, tol derived from each seed's init:
    module docstring, 3). Seeds with an empty lobe
    enter only the count row."""
    rows = []
    for K in cfg.n_kinks:
        theory, x, y = arrays[f"narrow_loss_{K}"], arrays[f"x_{K}"], arrays[f"y_{K}"]
        found = plateau_points(arrays, K)
        counts = np.array([f.n_plateaus for f, _ in found])
        populated = np.all(arrays[f"occupancy_{K}"] >= 1, axis=1)
        full, n = counts[populated], counts.size
        rows.append(row(f"K={K}: plateau count, all lobes populated ({full.size}/{n} seeds)", K + 1,
                        full[np.argmax(np.abs(full - K - 1))] if full.size else np.nan, tol=0, relative=False))
        if full.size < n:  # an empty lobe's kink is never learned: the staircase stalls
            rows.append(bound_row(f"K={K}: plateau count, a lobe empty ({n - full.size}/{n} seeds)",
                                  np.max(counts[~populated]), at_most=K))
        agree = [(f, mid, s) for s, (f, mid) in enumerate(found) if f.n_plateaus == K + 1 and populated[s]]
        if not agree:
            continue
        sim = np.median([f.plateau_losses for f, _, _ in agree], axis=0)
        for k in range(K):
            rows.append(row(f"K={K}: plateau {k} loss vs best {k}-unit loss", theory[k], sim[k], tol=0.02))
        # the target is itself a K-unit net, so L*_K = 0 exactly (the narrow fits reach ~1e-30)
        rows.append(row(f"K={K}: plateau {K} loss / L*_0 (best {K}-unit loss is 0)", 0.0, sim[K] / theory[0], tol=0.02, relative=False))
        kinks = np.array([[kink_count(_params_at(arrays, K, s, mid[k]), arrays, cfg, K) for k in range(K + 1)] for _, mid, s in agree])
        worst = kinks[int(np.argmax(np.max(np.abs(kinks - np.arange(K + 1)), axis=1)))]
        for k in range(K + 1):
            rows.append(row(f"K={K}: kinks of f at plateau {k} (worst seed)", k, worst[k], tol=0, relative=False))
        for k in range(K + 1):
            f_star = _fitted(_narrow_params(arrays, K, k), x, y)
            dist = max(float(0.5 * np.mean((_fitted(_params_at(arrays, K, s, mid[k]), x, y) - f_star) ** 2)) for _, mid, s in agree)
            scale = theory[k] if k < K else theory[0]
            rows.append(row(f"K={K}: ‖P⊥(f − f*_{k})‖²/2P / L*_{k if k < K else 0} at plateau {k} (worst seed)", 0.0, dist / scale, tol=0.02, relative=False))
        spacing = (X_RANGE[1] - X_RANGE[0]) / (cfg.n_data - 1)
        for k in range(1, K + 1):
            want = _kink_positions(_narrow_params(arrays, K, k), arrays, cfg, K)
            got = [_kink_positions(_params_at(arrays, K, s, mid[k]), arrays, cfg, K) for _, mid, s in agree]
            dist = max(float(np.max(np.abs(g - want))) if g.size == want.size else np.inf for g in got)
            rows.append(row(f"K={K}: kinks at plateau {k} vs f*_{k}'s, max |Δp| (worst seed)", 0.0, dist, tol=spacing / 2, relative=False))
        log_inv = np.log(1.0 / cfg.init_scale)
        seeds = [s for _, _, s in agree]
        times = np.median([escape_times(arrays, K, s) for s in seeds], axis=0)
        offsets = arrays[f"thresholds_{K}"][seeds] - log_inv  # c_j, from each seed's init
        bracket = relu_escape.realignment_bracket(arrays[f"fixed_drop_{K}"], -np.diff(theory))  # ≤ 0: realignment, earlier
        for k, (want, got) in enumerate(zip(arrays[f"theory_times_{K}"], times), start=1):
            tol = max(abs(float(np.min(offsets)) + bracket[k - 1]), abs(float(np.max(offsets)))) / log_inv
            rows.append(row(f"K={K}: escape {k} time vs σ→0 limit (median over seeds; tol from c_j, b_k)", want, got, tol=tol))
        if f"seed_first_{K}" in arrays:  # runs saved before these rows lack it
            rows += first_escape_rows(arrays, cfg, K, seeds, bracket[0])
    return rows


def first_escape_rows(arrays: dict, cfg: Config, K: int, seeds, bracket: float) -> list:
    """Per seed: its first escape time vs its own prediction (module docstring, 3; tolerance before training)."""
    rows = []
    for s in seeds:
        want, (growth, rate, chatter) = arrays[f"seed_times_{K}"][s][0], arrays[f"seed_first_{K}"][s]
        read = rise_time_resolution(lambda u: relu_escape.drop_profile(u, growth), 0.75, grid_ratio(arrays[f"t_{K}"], want))
        tol = float(relu_escape.first_escape_tolerance(growth, bracket, rate, cfg.learning_rate, chatter)) + read
        rows.append(row(f"K={K}: escape 1 time vs seed {s}'s own prediction Λ_j/λ_j", want, escape_times(arrays, K, s)[0], tol=tol))
    return rows


def plot(arrays: dict, cfg: Config) -> dict:
    figs = {}
    for K in cfg.n_kinks:
        t, losses, theory = arrays[f"t_{K}"], arrays[f"loss_{K}"], arrays[f"narrow_loss_{K}"]
        x, y, escapes = arrays[f"x_{K}"], arrays[f"y_{K}"], arrays[f"theory_times_{K}"]
        fig, (ax_loss, ax_kinks, ax_f, ax_g) = plotting.figure(4, width=4.2)
        floor = 0.1 * theory[K - 1]  # below the last nonzero plateau; the final drop to 0 leaves the axis
        for s, loss in enumerate(losses):
            ax_loss.plot(t[1:], np.maximum(loss[1:], 0.5 * floor), color="C0", label="simulation (seeds)" if s == 0 else None, **plotting.SIM)
            count = [kink_count(_params_at(arrays, K, s, j), arrays, cfg, K) for j in range(1, t.size)]
            ax_kinks.plot(t[1:], np.asarray(count) + 0.025 * s, color="C0", lw=1.2, alpha=0.75)
        for k, level in enumerate(theory):
            ax_loss.axhline(max(level, floor), label="best k-unit loss L*_k" if k == 0 else None, **plotting.THEORY)
        for ax in (ax_loss, ax_kinks):
            for k, te in enumerate(escapes):
                ax.axvline(te, color="C3", ls=":", lw=1.2, label="escape time, σ→0 limit" if (k == 0 and ax is ax_loss) else None)
        ax_loss.set(xscale="log", yscale="log", ylim=(floor, 1.5 * theory[0]), xlabel=plotting.TIME_LABEL, ylabel="loss L = (1/2P)‖P⊥(y − f)‖²",
                    title=f"K = {K} kinks, h = {cfg.hidden}, σ = {cfg.init_scale:g}")
        ax_loss.legend(fontsize=7, frameon=False, loc="lower left")
        ax_kinks.set(xscale="log", xlabel=plotting.TIME_LABEL, ylabel="kinks of f", title="kink count (staircase 0…K)")
        ax_f.plot(x[:, 0], y[:, 0], "k.", ms=3, label="target")
        _, mid = plateau_points(arrays, K)[0]
        colors = plotting.colors(len(mid))
        for k, j in enumerate(mid):
            ax_f.plot(x[:, 0], _fitted(_params_at(arrays, K, 0, j), x, y)[:, 0], color=colors[k], label=f"plateau {k} (t = {t[j]:.3g})", **plotting.SIM)
            if 0 < k <= K:
                ax_f.plot(x[:, 0], _fitted(_narrow_params(arrays, K, k), x, y)[:, 0], **plotting.THEORY)
        ax_f.plot([], [], label="best k-unit net", **plotting.THEORY)
        ax_f.set(xlabel="x", ylabel="f(x) + fitted affine part", title="network at each plateau (seed 0)")
        ax_f.legend(fontsize=7, frameon=False)
        grid, land = arrays[f"landscape_p_{K}"], arrays[f"landscape_{K}"]
        colors = plotting.colors(K)
        for k in range(K):
            ax_g.plot(grid, land[k] / np.max(np.abs(land[k])), label=f"plateau {k} (max |G| = {np.max(np.abs(land[k])):.2g})",
                      **dict(plotting.THEORY, color=colors[k]))
            bp = arrays[f"theory_breakpoints_{K}"][k]
            ax_g.plot([bp], [np.interp(bp, grid, land[k]) / np.max(np.abs(land[k]))], "*", color=colors[k], ms=9)
        ax_g.axhline(0, color="0.6", lw=0.8)
        ax_g.set(xlabel="breakpoint p", ylabel="G(p) / max|G|",
                 title="unit growth rate (theory); ★ escapes next")
        ax_g.legend(fontsize=6, frameon=False)
        fig.tight_layout()
        figs[f"relu_kinks_K{K}"] = fig
    return figs


# ------------------------------------------------------------------ sweeps
# `saddle sweep` refuses this experiment with this reason (issue 16, item 5).
SWEEP_UNSUPPORTED = ("its run length and every prediction come from narrow-net optima (Adam over narrow_inits inits per width, the best picked in NumPy) and theory.relu's escape times, both computed on concrete arrays outside a trace; sweep init scales and seeds with relu-plateau-grid, or vary fields with `saddle run --set`")
