"""Linear conv nets switch kernels on one at a time (Zhang, Saxe & Latham,
arXiv 2512.20607, the convolutional case of their Fig. 1/Sec. 5).

A two-layer linear conv net with circular padding and full-size kernels
(``models.conv``), trained by f64 gradient flow from small i.i.d. init on a
teacher y = β* ⊛ x with white inputs whose transfer matrix B̂*(ω) has the same
singular values s_1 > s_2 > s_3 at every frequency (``tasks.conv_teacher``;
a teacher with 3 kernels). The loss sits on plateaus at the optima of nets
with 0, 1, 2, 3 kernels, L*_H = ½ Σ_ω Σ_{α>H} s_α(ω)² (``theory.conv``,
closed form, cross-checked here against narrow nets trained to convergence
by ``dynamics.narrow``), and the number of kernels needed to express the
learned map, max_ω rank B̂(ω), climbs 0 → 1 → 2 → 3: one kernel per escape.
Run in 1-D (n positions) and 2-D (n × n) with several seeds each. Every seed
counts in every row (no mode over seeds): the horizon is checked before training
to leave each seed's weakest mode ≥ 10 e-folds of u0 to spare (``horizon_margin``),
and each row names how many seeds it covers.

    saddle run conv-kernels            # ~1-3 min on 2 CPU cores (3 min on a loaded machine)
    saddle run conv-kernels --smoke    # ~55 s CPU (two compiled flows and two narrow-fit programs)
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
from experiments.common import POSITIVE, POSITIVE_INT, POSITIVE_TUPLE, bound_row, check, check_fields, field, row
from models import conv
from tasks import conv_teacher
from theory import conv as theory_conv

NAME = "conv-kernels"
DESCRIPTION = "linear conv nets from small init learn one kernel per plateau, at the narrow-net optima (arXiv 2512.20607)"


@dataclasses.dataclass(frozen=True)
class Config:
    DEPRECATED_KEYS = {"horizon": "horizon_escapes"}  # old name -> new name, accepted (with a warning) for one release
    s: Tuple[float, ...] = field((4.0, 2.0, 1.0), POSITIVE_TUPLE, "teacher singular values at every frequency (one per teacher kernel)")
    channels: int = field(4, POSITIVE_INT, "input = output channels")
    n_1d: int = field(16, (lambda n: n >= 2, "an integer ≥ 2"), "positions of the 1-D signal")
    n_2d: int = field(6, (lambda n: n >= 2, "an integer ≥ 2"), "side of the 2-D n × n image")
    kernels_1d: int = field(3, POSITIVE_INT, "student kernels (hidden channels), 1-D")
    kernels_2d: int = field(6, POSITIVE_INT, "student kernels (hidden channels), 2-D")
    init_scale: float = field(1e-5, POSITIVE, "std σ of every initial kernel entry")
    n_seeds: int = field(4, POSITIVE_INT, "random inits per dimension")
    horizon_escapes: float = field(3.0, POSITIVE, "simulated time in multiples of the last leading-order escape time")
    n_points: int = field(300, (lambda n: n >= 50, "an integer ≥ 50"), "log-spaced recording times")
    narrow_inits: int = field(3, POSITIVE_INT, "inits per width for the trained narrow-net optimum")
    narrow_steps: int = field(1500, POSITIVE_INT, "Adam steps per narrow net")
    seed: int = field(0, None, "PRNG seed (teacher and inits)")

    def __post_init__(self):
        check_fields(self)
        check("s", self.s, list(self.s) == sorted(self.s, reverse=True) and len(set(self.s)) == len(self.s),
              "strictly decreasing values")
        check("s", self.s, len(self.s) <= self.channels, f"at most channels = {self.channels} values")
        check("init_scale", self.init_scale, self.init_scale <= 1e-3, "σ ≤ 1e-3 (the small-init regime)")
        for _, spatial, _ in _cases(self):
            check("horizon_escapes", self.horizon_escapes, horizon_margin(self, spatial) >= 10,
                  "a horizon that every seed reaches (horizon_margin ≥ 10 e-folds of u0, see conv_kernels.horizon_margin)")


def smoke() -> Config:
    return Config(n_1d=8, n_2d=4, kernels_2d=4, n_seeds=2, n_points=150, narrow_inits=2, narrow_steps=800)


def _cases(cfg: Config):
    return (("1d", (cfg.n_1d,), cfg.kernels_1d), ("2d", (cfg.n_2d, cfg.n_2d), cfg.kernels_2d))


def _simulate_case(task, spatial, kernels, cfg, key):
    n_pos = int(np.prod(spatial))
    escape = theory_conv.escape_time_scale(cfg.s, n_positions=n_pos, init_scale=cfg.init_scale)
    times = np.concatenate([[0.0], np.geomspace(0.05 * escape[0], cfg.horizon_escapes * escape[-1], cfg.n_points)])

    def loss(params, _):
        return conv.population_loss(params, task.beta_star)

    def observe(params):
        s = conv.transfer_singular_values(conv.end_to_end(params, spatial))
        return {"svals": s.reshape(n_pos, -1)}

    def run(k):
        params = conv.init(k, spatial=spatial, in_channels=cfg.channels, out_channels=cfg.channels,
                           kernels=kernels, scale=cfg.init_scale)
        # rtol 1e-6: plateaus are compared at 2%; atol follows the σ² size of the early map.
        traj = dynamics.gradient_flow(loss, params, None, times=times, observe=observe,
                                      rtol=1e-6, atol=1e-6 * cfg.init_scale**2)
        return traj.loss, traj.stats["svals"]

    losses, svals = jax.jit(jax.vmap(run))(jax.random.split(key, cfg.n_seeds))
    return times, np.asarray(losses), np.asarray(svals)


def _trained_narrow(task, spatial, cfg, key):
    """L*_H for H = 0..r by training H-kernel nets from O(1) init (dynamics.narrow)."""
    n_pos, r = int(np.prod(spatial)), len(cfg.s)

    def init_narrow(k, h):
        # An H-kernel net as an r-kernel net whose kernels ≥ H are silent (w_c = a_c = 0:
        # conv.embed_narrow; their gradient is exactly 0, so training keeps them silent):
        # H is traced and all widths share one compiled program.
        p = conv.init(k, spatial=spatial, in_channels=cfg.channels, out_channels=cfg.channels,
                      kernels=r, scale=0.5 / np.sqrt(n_pos))
        live = (jnp.arange(r) < h).astype(p["w"].dtype)
        return {"w": p["w"] * live.reshape((r,) + (1,) * (p["w"].ndim - 1)),
                "a": p["a"] * live.reshape((1, r) + (1,) * (p["a"].ndim - 2))}

    # Adam with a 100× decaying rate: linear nets have no spurious minima, and this
    # reaches the optimum to ~1e-15 relative at these sizes.
    opt = optax.adam(optax.exponential_decay(0.02, cfg.narrow_steps, 0.01))
    train = make_train_narrow(lambda p, b: conv.population_loss(p, b), init_narrow, opt, task.beta_star,
                              n_steps=cfg.narrow_steps, return_params=False)
    return narrow_optimum_losses(train, range(r + 1), n_inits=cfg.narrow_inits, key=key, traced_width=True).best_loss


def simulate(cfg: Config, progress: bool = False) -> dict:
    out = {}
    keys = jax.random.split(jax.random.key(cfg.seed), 3 * len(_cases(cfg)))
    for i, (tag, spatial, kernels) in enumerate(plotting.progress(list(_cases(cfg)), progress, desc="1-D, 2-D")):
        task = conv_teacher.flat_teacher(keys[3 * i], spatial=spatial, in_channels=cfg.channels,
                                         out_channels=cfg.channels, s=cfg.s)
        t, loss, svals = _simulate_case(task, spatial, kernels, cfg, keys[3 * i + 1])
        out.update({
            f"t_{tag}": t, f"loss_{tag}": loss, f"svals_{tag}": svals,
            f"beta_star_{tag}": np.asarray(task.beta_star),
            f"narrow_closed_{tag}": np.asarray(theory_conv.narrow_optimum_losses(task.beta_star, len(cfg.s))),
            f"narrow_trained_{tag}": _trained_narrow(task, spatial, cfg, keys[3 * i + 2]),
        })
    return out


def kernels_in_use(svals: np.ndarray, s_min: float) -> np.ndarray:
    """max_ω #{α: s_α(ω) > s_min/2} along a run; svals: (..., T, N, r) → (..., T)."""
    return np.max(np.sum(svals > 0.5 * s_min, axis=-1), axis=-1)


def verify(arrays: dict, cfg: Config) -> list:
    """Per dimension: the closed-form L*_H against narrow nets trained to convergence.
    From below it is a theorem: no net with H kernels beats Eckart-Young at any frequency,
    so trained ≥ L*_H up to float64 rounding of the loss (1e-12·L*_0: 10⁴ roundings of
    relative 1.1e-16 on terms ≤ L*_0). From above the tolerance 1e-6·L*_0 is
    empirical, not derived: how far Adam stops from the optimum is not bounded here (it
    reaches ~1e-15 on these problems, so the row catches a formula that is too low by
    more than 1e-6). Then every seed counts (the horizon lets all of them finish, see
    ``horizon_margin``): the number of seeds with the expected plateau count (all of
    them); each plateau's loss at the seed farthest from L*_H (2%, EMPIRICAL: not derived,
    see ``attention_heads.verify``; the last, zero, plateau on the scale L*_0); kernels in use on each plateau at every seed (the
    row shows the seed that differs from H, if any)."""
    rows = []
    for tag, spatial, kernels in _cases(cfg):
        closed, trained = arrays[f"narrow_closed_{tag}"], arrays[f"narrow_trained_{tag}"]
        scale = float(closed[0])
        for h in range(len(closed)):
            rows.append(bound_row(f"{tag}: trained narrow net, {h} kernels / L*_0 ≥ Eckart-Young L*_{h}/L*_0 (− rounding)",
                                  trained[h] / scale, at_least=closed[h] / scale - 1e-12))
            rows.append(row(f"{tag}: trained narrow optimum, {h} kernels / L*_0 (tol empirical: Adam's convergence)",
                            closed[h] / scale, trained[h] / scale, tol=1e-6, relative=False))
        expected = min(kernels, len(cfg.s)) + 1
        t, losses, svals = arrays[f"t_{tag}"], arrays[f"loss_{tag}"], arrays[f"svals_{tag}"]
        n = len(losses)
        found = [detect_plateaus(t, loss) for loss in losses]
        good = [(i, p) for i, p in enumerate(found) if p.n_plateaus == expected]
        rows.append(row(f"{tag} ({kernels} kernels): seeds with {expected} plateaus (of {n})", n, len(good), tol=0, relative=False))
        if not good:
            continue
        sims = np.array([p.plateau_losses for _, p in good])
        cover = f"{len(good)} of {n} seeds"
        for h, th in enumerate(closed[:expected]):
            worst = sims[np.argmax(np.abs(sims[:, h] - th)), h]
            if th > 1e-9 * scale:
                rows.append(row(f"{tag}: plateau {h} loss vs narrow optimum L*_{h} (seed farthest, {cover})", th, worst, tol=0.02))
            else:
                rows.append(row(f"{tag}: plateau {h} loss / L*_0 (narrow optimum 0; seed farthest, {cover})", 0.0, worst / scale,
                                tol=0.02, relative=False))
        in_use = np.array([[kernels_in_use(svals[i, (p.starts[h] + p.ends[h]) // 2], min(cfg.s)) for h in range(expected)]
                           for i, p in good])
        for h in range(expected):
            col = in_use[:, h]
            shown = col[np.argmax(col != h)] if np.any(col != h) else h
            rows.append(row(f"{tag}: kernels in use on plateau {h} (every seed, {cover})", h, int(shown), tol=0, relative=False))
    return rows


def horizon_margin(cfg: Config, spatial) -> float:
    """How much smaller than typical a seed's initial mode strength would have to be to
    miss the horizon, in e-folds: every frequency is a two-layer net started at
    u0 ~ N σ² (``theory.conv``), reaching s/2 at t ≈ ln(s/u0)/(2Ns); the horizon is
    ``horizon_escapes`` × that time for the weakest mode, so a seed misses it only if some
    u0 is e^{−(horizon_escapes − 1) ln(s_r/(Nσ²))} times the typical one. Decided before
    training; at the defaults (≈ 40 e-folds) no Gaussian init comes close, so every
    seed finishes and counts."""
    n_pos = int(np.prod(spatial))
    return float((cfg.horizon_escapes - 1.0) * np.log(min(cfg.s) / (n_pos * cfg.init_scale**2)))


def plot(arrays: dict, cfg: Config) -> dict:
    cases = _cases(cfg)
    fig, grid = plotting.plt.subplots(2, len(cases), figsize=(4.6 * len(cases), 6.6), squeeze=False, sharex="col")
    for j, (tag, spatial, kernels) in enumerate(cases):
        ax_loss, ax_k = grid[0, j], grid[1, j]
        t, losses, svals = arrays[f"t_{tag}"][1:], arrays[f"loss_{tag}"][:, 1:], arrays[f"svals_{tag}"][:, 1:]
        closed = arrays[f"narrow_closed_{tag}"]
        n_pos = int(np.prod(spatial))
        escape = theory_conv.escape_time_scale(cfg.s, n_positions=n_pos, init_scale=cfg.init_scale)
        floor = 1e-4 * closed[0]
        for i, loss in enumerate(losses):
            ax_loss.plot(t, loss, color="C0", lw=1.4, alpha=0.6, label="simulation (seeds)" if i == 0 else None)
            ax_k.plot(t, kernels_in_use(svals[i], min(cfg.s)) + 0.04 * (i - len(losses) / 2), color="C0", lw=1.4, alpha=0.6,
                      label="kernels in use (seeds)" if i == 0 else None)
            for a, s_a in enumerate(cfg.s):
                ax_k.plot(t, np.median(svals[i, :, :, a], axis=-1) / s_a * len(cfg.s), color=f"C{a + 1}", lw=0.8,
                          alpha=0.5, label=f"mode {a + 1}: median_ω s_{a + 1}(ω)/s_{a + 1} (× {len(cfg.s)})" if i == 0 else None)
        for h, level in enumerate(closed[: min(kernels, len(cfg.s)) + 1]):
            ax_loss.axhline(max(level, floor), label="narrow-net optima L*_H (H = 0, 1, …)" if h == 0 else None, **plotting.THEORY)
            ax_loss.text(t[0], max(level, floor) * 1.15, f"H={h}" + (" (L* = 0, drawn at the floor)" if level < floor else ""), fontsize=7)
        for tk in escape:
            ax_loss.axvline(tk, color="C3", ls=":", lw=1.0)
        ax_k.step(np.concatenate([[t[0]], escape, [t[-1]]]), np.arange(len(cfg.s) + 2).clip(max=len(cfg.s)),
                  where="post", label="leading-order escape times", **plotting.THEORY)
        shape = "×".join(str(n) for n in spatial)
        ax_loss.set(xscale="log", yscale="log", ylim=(floor / 2, 2 * closed[0]), ylabel="loss L = ½E‖y − f(x)‖²",
                    title=f"{tag.upper()}: {shape} positions, {kernels} kernels, σ = {cfg.init_scale:g}")
        ax_k.set(xscale="log", xlabel="time t/τ (log)", ylabel="kernels in use: max_ω rank B̂(ω)")
        ax_loss.legend(fontsize=7, frameon=False, loc="center left")
        ax_k.legend(fontsize=7, frameon=False, loc="upper left")
    fig.tight_layout()
    return {"conv_kernels": fig}


# ------------------------------------------------------------------ sweeps
# `saddle sweep conv-kernels --grid init_scale=1e-6,1e-5,1e-4 --grid seed=0,1,2`: every
# cell is one 1-D conv net flow; these fields may be traced.
SWEEP_FIELDS = ("init_scale", "seed")
SWEEP_METRIC = "final_loss"


def cell(cfg: Config, values: dict) -> dict:
    """One 1-D conv net (``kernels_1d`` kernels) from one init, with (init_scale,
    seed) possibly traced, by gradient flow to ``horizon_escapes`` × the last
    leading-order escape time ln(s_α/(Nσ²))/(2Ns_α) (theory.conv.escape_time_scale,
    here traced): the loss on that grid, the final loss, and the kernels in use at
    the end (transfer singular values above min(s)/2)."""

    key_task, key_init = jax.random.split(jax.random.key(values["seed"]))
    (_, spatial, kernels), sigma = _cases(cfg)[0], values["init_scale"]
    n_pos = int(np.prod(spatial))
    task = conv_teacher.flat_teacher(key_task, spatial=spatial, in_channels=cfg.channels, out_channels=cfg.channels, s=cfg.s)
    s = jnp.asarray(cfg.s)
    escape = jnp.log(s / (n_pos * sigma**2)) / (2 * n_pos * s)
    times = jnp.concatenate([jnp.zeros(1), jnp.geomspace(0.05 * escape[0], cfg.horizon_escapes * escape[-1], cfg.n_points)])
    params = conv.init(key_init, spatial=spatial, in_channels=cfg.channels, out_channels=cfg.channels, kernels=kernels, scale=1.0)
    params = jax.tree_util.tree_map(lambda v: sigma * v, params)  # every entry is N(0, σ²): linear in σ
    traj = dynamics.gradient_flow(lambda p, _: conv.population_loss(p, task.beta_star), params, None, times=times,
                                  rtol=1e-6, atol=1e-6 * sigma**2)
    svals = conv.transfer_singular_values(conv.end_to_end(traj.params, spatial)).reshape(n_pos, -1)
    return {"loss": traj.loss, "final_loss": traj.loss[-1],
            "kernels_in_use": jnp.max(jnp.sum(svals > 0.5 * min(cfg.s), axis=-1))}
