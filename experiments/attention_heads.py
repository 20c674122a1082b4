"""Attention heads switch on one at a time (Zhang, Singh, Latham & Saxe, ICML 2025,
arXiv 2501.16265; heads as the units of saddle-to-saddle dynamics, arXiv 2512.20607).

Separate-KQ linear attention with H rank-one heads, small i.i.d. N(0, a²) init,
Λ ∝ diag(1, 2, 3, 4) (tr Λ = 1), N = 31, f64 gradient flow on the exact population
loss. Each drop of the loss is one head escaping the origin and learning one
eigen-direction of Λ (largest first); on plateau m exactly m heads are on, and
with H > D the last H − D heads never switch on. Which head escapes next and
when is predicted from the init by ``theory.attention_heads.separate_kq_head_escapes``
(each head's linearised escape, one scalar ODE per head).

Units: loss E[(y_q − ŷ)²] (paper normalisation, 2 × the ½-loss); DESIGN time t/τ.

    saddle run attention-heads            # 2 seeds, 8 heads: ~25 s CPU (2 min wall on a shared 2-core box)
    saddle run attention-heads --smoke    # 1 seed, 6 heads, a = 0.01: ~12 s CPU
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import jax
import numpy as np

from dynamics.plateaus import detect_plateaus, rise_times
from experiments import plotting
from experiments.common import POSITIVE_INT, POSITIVE_TUPLE, check_fields, field, row
from experiments.linear_attention_plateaus import TIME_LABEL, predicted_escapes, separate_flow
from models import attention as att
from theory import attention_icl as th

NAME = "attention-heads"
DESCRIPTION = "linear-attention heads learn one eigen-direction each, one at a time (arXiv 2501.16265)"


@dataclasses.dataclass(frozen=True)
class Config:
    DEPRECATED_KEYS = {"horizon": "horizon_escapes"}  # old name -> new name, accepted (with a warning) for one release
    lam_ratios: Tuple[float, ...] = field((1.0, 2.0, 3.0, 4.0), POSITIVE_TUPLE, "eigenvalues of Λ up to scale (normalised to tr Λ = 1)")
    n_context: int = field(31, POSITIVE_INT, "context length N")
    n_heads: int = field(8, POSITIVE_INT, "attention heads H (rank one)")
    init_scale: float = field(3e-3, (lambda v: 0 < v <= 0.05, "a number in (0, 0.05] (small init)"), "std of every initial weight entry")
    n_seeds: int = field(2, POSITIVE_INT, "random inits")
    horizon_escapes: float = field(2.0, (lambda v: v > 1.0, "a number > 1"), "simulated time in multiples of the last predicted escape")
    n_points: int = field(400, (lambda n: n >= 50, "an integer ≥ 50"), "log-spaced recording times")
    rtol: float = field(1e-8, (lambda v: 0 < v <= 1e-5, "a number in (0, 1e-5]"), "flow tolerance")
    seed: int = field(0, None, "PRNG seed of the inits")

    def __post_init__(self):
        check_fields(self)


def smoke() -> Config:
    return Config(n_heads=6, init_scale=0.01, n_seeds=1, n_points=200, rtol=1e-6)


def simulate(cfg: Config, progress: bool = False) -> dict:
    ratios = np.asarray(cfg.lam_ratios, dtype=float)
    lam, n = ratios / ratios.sum(), cfg.n_context
    out = {"lam": lam}
    for i, key in enumerate(plotting.progress(list(jax.random.split(jax.random.key(cfg.seed), cfg.n_seeds)), progress, "seeds")):
        p0 = att.init_separate(key, dim=lam.size, n_heads=cfg.n_heads, rank=1, scale=cfg.init_scale)
        esc = predicted_escapes(lam, p0, n)
        t_end = cfg.horizon_escapes * float(esc.times[-1])
        times = np.concatenate([[0.0], np.geomspace(1e-3 * t_end, t_end, cfg.n_points)])
        loss, _, stats, _ = separate_flow(lam, n_context=n, n_heads=cfg.n_heads, rank=1, init_scale=cfg.init_scale,
                                          times=times, key=key, rtol=cfg.rtol)
        out.update({f"t_{i}": times, f"loss_{i}": loss, f"gamma_{i}": stats["head"], f"norm_{i}": stats["norm"],
                    f"escape_times_{i}": esc.times, f"escape_heads_{i}": esc.heads, f"escape_dirs_{i}": esc.directions})
    return out


def _on_threshold(lam, n):
    """Half the smallest learned |Γ_h| = s_d/ρ_d: a head above it has learned (half of) a direction."""
    s, rho = th.mode_moments(lam, n_context=n)
    return 0.5 * float(np.min(s / rho))


def switch_on_times(t, gamma, threshold):
    """(H,) first time |Γ_h| reaches ``threshold`` (interpolated in ln t), inf for heads that never do."""
    return rise_times(t, gamma, threshold)


def verify(arrays: dict, cfg: Config) -> list:
    """Per seed: plateau count (exact) and losses (2%); the number of heads on at each
    plateau's mid-time = its index m (exact); the head that switches on at drop m is the
    predicted one (exact); its switch-on time vs the prediction (5%: leading order in
    the init, see ``theory.attention_heads``); no head beyond the D-th switches on.
    EMPIRICAL tolerances (not derived): the 2% on plateau losses (how far the detector's
    median of a flat stretch sits from the saddle is not bounded here; a bound would be
    ``detect_plateaus``'s slope_tol × excess loss / the neighbouring escape's ln-t rate) and
    the 5% on switch-on times (the neglected nonlinear phase is O(1/ln(1/a)) relative, with a
    constant not derived)."""
    lam, n = arrays["lam"], cfg.n_context
    plateaus = th.separate_kq_plateau_losses(lam, n_context=n)
    thr = _on_threshold(lam, n)
    rows = []
    for i in range(cfg.n_seeds):
        t, loss, gamma = arrays[f"t_{i}"], arrays[f"loss_{i}"], arrays[f"gamma_{i}"]
        found = detect_plateaus(t, loss)
        rows.append(row(f"seed {i}: plateau count", len(plateaus), found.n_plateaus, tol=0, relative=False))
        if found.n_plateaus == len(plateaus):
            for m, (level, sim, tm) in enumerate(zip(plateaus, found.plateau_losses, found.plateau_times)):
                rows.append(row(f"seed {i}: plateau {m} loss", level, sim, tol=0.02))
                on = int(np.sum(gamma[int(np.searchsorted(t, tm))] >= thr))
                rows.append(row(f"seed {i}: heads on at plateau {m} (t = {tm:.4g})", m, on, tol=0, relative=False))
        t_on = switch_on_times(t, gamma, thr)
        sim_heads = np.argsort(t_on, kind="stable")
        for m, (h, tm) in enumerate(zip(arrays[f"escape_heads_{i}"], arrays[f"escape_times_{i}"])):
            rows.append(row(f"seed {i}: head switching on at drop {m + 1}", h, sim_heads[m], tol=0, relative=False))
            rows.append(row(f"seed {i}: head {h} switch-on time", tm, t_on[h], tol=0.05))
        rows.append(row(f"seed {i}: heads on at the end", len(arrays[f"escape_heads_{i}"]), int(np.sum(gamma[-1] >= thr)),
                        tol=0, relative=False))
    return rows


def plot(arrays: dict, cfg: Config) -> dict:
    lam, n = arrays["lam"], cfg.n_context
    plateaus = th.separate_kq_plateau_losses(lam, n_context=n)
    fig, grid = plotting.plt.subplots(2, cfg.n_seeds, figsize=(5.0 * cfg.n_seeds, 6.6), squeeze=False, sharex="col")
    colors = [f"C{h % 10}" for h in range(cfg.n_heads)]  # categorical: heads are units, not a scale
    for i in range(cfg.n_seeds):
        ax_l, ax_h = grid[0, i], grid[1, i]
        t = arrays[f"t_{i}"][1:]
        ax_l.plot(t, arrays[f"loss_{i}"][1:], color="C0", **plotting.SIM)
        for level in plateaus:
            ax_l.axhline(level, **plotting.THEORY)
        for h in range(cfg.n_heads):
            ax_h.plot(t, arrays[f"norm_{i}"][1:, h], color=colors[h], label=f"head {h}", **plotting.SIM)
        for m, (h, tm) in enumerate(zip(arrays[f"escape_heads_{i}"], arrays[f"escape_times_{i}"])):
            for ax in (ax_l, ax_h):
                ax.axvline(tm, color=colors[h], ls=":", lw=1.2)
        ax_l.set(xscale="log", ylabel="loss E(y − ŷ)² (paper units)",
                 title=f"seed {i}: H={cfg.n_heads} rank-one heads, a={cfg.init_scale:g}")
        plotting.legend_sim_theory(ax_l)
        ax_h.set(xscale="log", yscale="log", xlabel=TIME_LABEL, ylabel="head weight norm |(v_h, k_h, q_h)|")
        ax_h.legend(fontsize=7, frameon=False, ncol=2, title="dotted: predicted switch-on", title_fontsize=7)
    fig.tight_layout()
    return {"attention_heads": fig}



# ------------------------------------------------------------------ sweeps
# `saddle sweep attention-heads --grid init_scale=1e-3,3e-3,1e-2 --grid seed=0,1,2`:
# every cell is one init's flow; these fields may be traced.
SWEEP_FIELDS = ("init_scale", "seed")
SWEEP_METRIC = "final_loss"


def cell(cfg: Config, values: dict) -> dict:
    """One init (the first of ``simulate``'s seeds for this seed) at a traced init
    scale a, by f64-style gradient flow on the exact population loss to
    ``horizon_escapes`` × the last predicted escape. The escape prediction
    (theory.attention_heads, an event-driven ODE solve in NumPy) is made once for
    the config's own init and carried to a by its leading order ∝ 1/a (arXiv
    2501.16265). Returns the loss (paper-normalised), the final loss and the
    number of heads on at the end (|Γ_h| above half the smallest learned value)."""
    import jax.numpy as jnp

    from dynamics import gradient_flow
    from tasks import icl

    ratios = np.asarray(cfg.lam_ratios, dtype=float)
    lam, n, a = ratios / ratios.sum(), cfg.n_context, values["init_scale"]
    with jax.ensure_compile_time_eval():  # the config's own init is concrete: evaluate it while tracing
        ref = att.init_separate(jax.random.split(jax.random.key(cfg.seed), cfg.n_seeds)[0], dim=lam.size,
                                n_heads=cfg.n_heads, rank=1, scale=cfg.init_scale)
        t_ref = cfg.horizon_escapes * float(predicted_escapes(lam, ref, n).times[-1]) * cfg.init_scale
    t_end = t_ref / a
    times = jnp.concatenate([jnp.zeros(1), jnp.geomspace(1e-3 * t_end, t_end, cfg.n_points)])
    key = jax.random.split(jax.random.key(values["seed"]), cfg.n_seeds)[0]
    params = att.init_separate(key, dim=lam.size, n_heads=cfg.n_heads, rank=1, scale=a)
    d = lam.size

    def head(p):  # |Γ_h| = |v_h k_hᵀ q_h|, (H,)
        kq = att.kq_matrices(p)[:, :d, :d] * p["v"][:, d, d, None, None]
        return jnp.sqrt(jnp.sum(kq**2, axis=(1, 2)))

    rtol = cfg.rtol if jax.config.jax_enable_x64 else max(cfg.rtol, 1e-6)
    traj = gradient_flow(att.population_loss, params, icl.population_moments(lam, n_context=n), times=times,
                         observe=head, rtol=rtol, atol=1e-3 * a**3)
    loss = 2.0 * traj.loss  # paper normalisation, as separate_flow
    return {"loss": loss, "final_loss": loss[-1], "heads_on": jnp.sum(traj.stats[-1] >= _on_threshold(lam, n))}
