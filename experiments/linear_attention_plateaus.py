"""Loss plateaus of linear attention trained for in-context linear regression
(Zhang, Singh, Latham & Saxe, ICML 2025, arXiv 2501.16265, loss-curve figures for
separate and merged key-query; github.com/yedizhang/linattn-icl).

Setting of the paper's figure: Λ ∝ diag(1, 2, 3, 4) with tr Λ = 1 (``--in_dim 4``),
N = 31 context pairs (``--seq_len 32``), 5 heads, small random init. Every
simulation is f64 gradient flow on the EXACT population loss (``tasks.icl``
moments, ``models.attention.population_loss``), not on samples.

* Separate KQ, rank-one heads: saddle-to-saddle, one plateau per principal
  component, at L(M_m) = trΛ − Σ_{d≤m} λ_d/(1 + (1 + trΛ/λ_d)/N) (largest λ first;
  1, 0.6406, 0.3774, 0.2098, 0.1360), i.e. principal component regression in
  context on more and more components. Drop times from the init:
  ``theory.attention_heads.separate_kq_head_escapes`` (≈ 1/(λ_d² a) for init scale a).
* Merged KQ (balanced, aligned init): one abrupt drop, ``merged_kq_loss``.
* Rank-R separate heads: one head learns R components at once, so the loss
  plateaus only at L(M_0), L(M_R), L(M_2R), … (small init needed: within a head
  the R components are learned within a time ∝ log(1/a), between heads ∝ 1/a;
  at a = 0.01 the rank-2 curve still shows an extra plateau at L(M_3), at 1e-3 none).

Differences from the public code: full-batch flow on the population loss instead
of SGD on 5000 samples, the paper's 1/N in the attention (the code omits it, which
rescales time and init) and i.i.d. N(0, a²) entries (the code divides the std by
√(number of entries)); none of these moves the plateau losses.

Units: losses are plotted and verified in the paper's normalisation
E[(y_q − ŷ)²] = 2 × saddle's ½-loss; time is DESIGN time t/τ (the paper's GD
step k at learning rate η is t = 2kη).

    saddle run linear-attention-plateaus            # ranks 1, 2, 4: ~60 s CPU (4 min wall on a shared 2-core box)
    saddle run linear-attention-plateaus --smoke    # ranks 1, 2: ~35 s CPU
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

from dynamics import gradient_flow
from dynamics.plateaus import detect_plateaus, rise_times
from experiments import plotting
from experiments.common import POSITIVE, POSITIVE_INT, POSITIVE_TUPLE, check, check_fields, field, row, worst_point_row
from models import attention as att
from tasks import icl
from theory import attention_icl as th
from theory.attention_heads import separate_kq_head_escapes

NAME = "linear-attention-plateaus"
DESCRIPTION = "linear attention ICL: separate-KQ plateaus, merged-KQ single drop, rank-R heads (arXiv 2501.16265)"

# The paper trains the un-halved MSE, so its GD step k at rate η is t = 2kη here (theory.attention_icl).
TIME_LABEL = "time t/τ  (½-loss flow; paper's GD: 2 × step × η)"
PUBLIC_PLATEAUS = (1.0, 0.6406, 0.3774, 0.2098, 0.1360)  # arXiv 2501.16265, Λ ∝ diag(1,2,3,4), trΛ = 1, N = 31


@dataclasses.dataclass(frozen=True)
class Config:
    DEPRECATED_KEYS = {"horizon": "horizon_escapes"}  # old name -> new name, accepted (with a warning) for one release
    lam_ratios: Tuple[float, ...] = field((1.0, 2.0, 3.0, 4.0), POSITIVE_TUPLE, "eigenvalues of Λ up to scale (normalised to tr Λ = 1)")
    n_context: int = field(31, POSITIVE_INT, "context length N")
    n_heads: int = field(5, POSITIVE_INT, "attention heads H")
    init_scale: float = field(1e-3, (lambda v: 0 < v <= 0.05, "a number in (0, 0.05] (small init)"), "std of every initial weight entry")
    ranks: Tuple[int, ...] = field((1, 2, 4), (lambda v: all(r >= 1 for r in v) and v[0] == 1, "integers ≥ 1, the first = 1"),
                                   "key/query rank R per run (rank 1 is the main curve)")
    merged_u0: float = field(1e-4, POSITIVE, "initial mode strength of the merged-KQ aligned init")
    horizon_escapes: float = field(2.0, (lambda v: v > 1.0, "a number > 1"), "simulated time in multiples of the last predicted drop time")
    n_points: int = field(400, (lambda n: n >= 50, "an integer ≥ 50"), "log-spaced recording times")
    rtol: float = field(1e-8, (lambda v: 0 < v <= 1e-5, "a number in (0, 1e-5]"), "flow tolerance (separate KQ)")
    seed: int = field(0, None, "PRNG seed of the init")

    def __post_init__(self):
        check_fields(self)
        check("ranks", self.ranks, all(len(self.lam_ratios) % r == 0 for r in self.ranks), "divisors of D = len(lam_ratios)")


def smoke() -> Config:
    return Config(ranks=(1, 2), n_points=200, rtol=1e-6)


def lam_of(cfg: Config) -> np.ndarray:
    ratios = np.asarray(cfg.lam_ratios, dtype=float)
    return ratios / ratios.sum()


def separate_flow(lam, *, n_context, n_heads, rank, init_scale, times, key, rtol):
    """f64 flow of separate-KQ attention on the exact population loss from i.i.d. N(0, a²) init.

    Returns (paper-normalised loss (T,), diag Γ (T, D), stats, init params); stats["head"] (T, H) is
    |Γ_h|_F = |v_h k_hᵀ q_h|_F, stats["norm"] (T, H) the head's weight norm |(v_h, k_h, q_h)|."""
    d = lam.size
    mom = icl.population_moments(lam, n_context=n_context)
    params = att.init_separate(key, dim=d, n_heads=n_heads, rank=rank, scale=init_scale)

    def observe(p):
        kq = att.kq_matrices(p)[:, :d, :d] * p["v"][:, d, d, None, None]  # (H, D, D) per-head Γ_h
        norm = jnp.sqrt(p["v"][:, d, d] ** 2 + jnp.sum(p["k"] ** 2, axis=(1, 2)) + jnp.sum(p["q"] ** 2, axis=(1, 2)))
        return {"diag": jnp.diagonal(kq.sum(0)), "head": jnp.sqrt(jnp.sum(kq**2, axis=(1, 2))), "norm": norm}

    # atol: Γ entries start at a³ ~ 1e-9 and matter from there; rtol as configured.
    traj = gradient_flow(att.population_loss, params, mom, times=times, observe=observe, rtol=rtol,
                         atol=1e-3 * init_scale**3)
    stats = {k: np.asarray(v) for k, v in traj.stats.items()}
    return 2.0 * np.asarray(traj.loss), stats.pop("diag"), stats, params


def predicted_escapes(lam, params, n_context):
    d = lam.size
    return separate_kq_head_escapes(lam, n_context=n_context, v0=np.asarray(params["v"][:, d, d]),
                                    k0=np.asarray(params["k"][:, 0, :d]), q0=np.asarray(params["q"][:, 0, :d]))


def simulate(cfg: Config, progress: bool = False) -> dict:
    lam, n = lam_of(cfg), cfg.n_context
    key = jax.random.key(cfg.seed)
    out = {"lam": lam}
    # Horizon from the rank-one init's predicted escapes (same key ⇒ same init as the rank-1 run).
    p1 = att.init_separate(key, dim=lam.size, n_heads=cfg.n_heads, rank=1, scale=cfg.init_scale)
    esc = predicted_escapes(lam, p1, n)
    t_end = cfg.horizon_escapes * float(esc.times[-1])
    times = np.concatenate([[0.0], np.geomspace(1e-3 * t_end, t_end, cfg.n_points)])
    out.update(t=times, escape_times=esc.times, escape_heads=esc.heads, escape_dirs=esc.directions)
    for rank in plotting.progress(cfg.ranks, progress, desc="ranks"):
        loss, diag, heads, _ = separate_flow(lam, n_context=n, n_heads=cfg.n_heads, rank=rank, init_scale=cfg.init_scale,
                                             times=times, key=key, rtol=cfg.rtol)
        out.update({f"loss_r{rank}": loss, f"diag_r{rank}": diag, f"head_r{rank}": heads["head"]})

    # Merged KQ from the balanced aligned init: the exact single-drop curve (tight tolerance).
    # The drop sits near (1/2‖β‖) ln(‖β‖/(ρ u0)) (Saxe logistic); after it the slowest direction
    # relaxes at rate ≈ ρ_min ‖Γ*‖ (linearisation at the minimum), so 12 of those e-folds more.
    s_d, rho_d = th.mode_moments(lam, n_context=n)
    beta = np.sqrt(np.sum(s_d**2))
    t_drop = np.log(beta / (rho_d.max() * cfg.merged_u0)) / (2 * beta)
    t_m_end = 2.0 * t_drop + 12.0 / (rho_d.min() * np.linalg.norm(s_d / rho_d))
    t_m = np.concatenate([[0.0], np.geomspace(1e-2 * t_drop, t_m_end, cfg.n_points)])
    p = att.init_merged_aligned(dim=lam.size, n_heads=cfg.n_heads, u0=cfg.merged_u0, direction=jnp.diag(jnp.asarray(lam) ** 2))
    traj = gradient_flow(att.population_loss, p, icl.population_moments(lam, n_context=n), times=t_m, rtol=1e-10, atol=1e-12)
    out.update(t_merged=t_m, loss_merged=2.0 * np.asarray(traj.loss),
               theory_merged=np.asarray(th.merged_kq_loss(t_m, lam=lam, n_context=n, w_init=cfg.merged_u0)))
    return out


def _plateau_rows(label, t, loss, expected):
    found = detect_plateaus(t, loss)
    rows = [row(f"{label}: plateau count", len(expected), found.n_plateaus, tol=0, relative=False)]
    if found.n_plateaus == len(expected):
        for k, (th_k, sim_k) in enumerate(zip(expected, found.plateau_losses)):
            rows.append(row(f"{label}: plateau {k} loss", th_k, sim_k, tol=0.02))
    return rows


def verify(arrays: dict, cfg: Config) -> list:
    """Public numbers (rounding, abs 5e-5); rank-1 plateau count (exact) and losses (2%);
    which direction each drop learns (exact); drop times vs the head-escape theory (5%:
    leading order in the init, it drops the quadratic loss terms before each escape and
    the drop width; measured 0.5-2.5% at a = 3e-3); converged loss (1%); merged-KQ
    curve vs ``merged_kq_loss`` (abs 1e-7 = 1000 × the flow rtol × L(0): both exact);
    rank R: plateaus only at L(M_0), L(M_R), … (count exact, losses 2%)."""
    lam, n, t = arrays["lam"], cfg.n_context, arrays["t"]
    plateaus = th.separate_kq_plateau_losses(lam, n_context=n)
    rows = []
    if np.allclose(lam, np.arange(1, 5) / 10.0) and n == 31:
        for k, public in enumerate(PUBLIC_PLATEAUS):
            rows.append(row(f"public check: L(M_{k}) (arXiv 2501.16265, 4 d.p.)", public, plateaus[k], tol=5e-5, relative=False))
    rows += _plateau_rows("rank 1", t, arrays["loss_r1"], plateaus)

    s, rho = th.mode_moments(lam, n_context=n)
    learned = rise_times(t, arrays["diag_r1"] * rho / s, 0.5)  # per direction
    sim_order = np.argsort(learned, kind="stable")
    for m, d in enumerate(th.separate_kq_drop_order(lam)):
        rows.append(row(f"rank 1: direction learned at drop {m + 1} (index into lam)", d, sim_order[m], tol=0, relative=False))
    esc_t, esc_d = arrays["escape_times"], arrays["escape_dirs"]
    for m, (tm, d) in enumerate(zip(esc_t, esc_d)):
        rows.append(row(f"rank 1: drop {m + 1} time (direction {d} half learned)", tm, learned[d], tol=0.05))
    conv = th.converged_loss(lam, n_context=n)
    rows.append(row("rank 1: converged loss L(M_D)", conv, arrays["loss_r1"][-1], tol=0.01))

    rows.append(worst_point_row("merged KQ: max |loss − merged_kq_loss|",
                                arrays["theory_merged"], arrays["loss_merged"], tol=1e-7, relative=False))
    rows.append(row("merged KQ: converged loss L(M_D)", conv, arrays["loss_merged"][-1], tol=0.01))

    for rank in cfg.ranks[1:]:
        rows += _plateau_rows(f"rank {rank}", t, arrays[f"loss_r{rank}"], plateaus[::rank])
    return rows


def plot(arrays: dict, cfg: Config) -> dict:
    lam, n, t = arrays["lam"], cfg.n_context, arrays["t"]
    plateaus = th.separate_kq_plateau_losses(lam, n_context=n)
    fig, (ax_s, ax_m, ax_r) = plotting.figure(3, width=4.6, height=3.6)
    ax_s.plot(t[1:], arrays["loss_r1"][1:], color="C0", **plotting.SIM)
    for k, level in enumerate(plateaus):
        ax_s.axhline(level, **plotting.THEORY)
        ax_s.text(t[1], level, f"L(M{k})={level:.4f}", fontsize=7, va="bottom")
    for k, tk in enumerate(arrays["escape_times"]):
        ax_s.axvline(tk, color="C3", ls=":", lw=1.2, label="predicted drop times" if k == 0 else None)
    ax_s.set(xscale="log", xlabel=TIME_LABEL, ylabel="loss E(y − ŷ)² (paper units)",
             title=f"separate KQ, rank 1, H={cfg.n_heads}, a={cfg.init_scale:g}")
    plotting.legend_sim_theory(ax_s)
    ax_s.legend(fontsize=8, frameon=False, loc="upper right", bbox_to_anchor=(1.0, 0.93))  # between L(M0) and L(M1)

    tm = arrays["t_merged"]
    ax_m.plot(tm[1:], arrays["loss_merged"][1:], color="C1", **plotting.SIM)
    ax_m.plot(tm[1:], arrays["theory_merged"][1:], **plotting.THEORY)
    ax_m.axhline(plateaus[-1], color="0.6", lw=0.8, ls=":")
    ax_m.set(xscale="log", xlabel=TIME_LABEL, ylabel="loss E(y − ŷ)² (paper units)",
             title=f"merged KQ, aligned init u0={cfg.merged_u0:g}")
    plotting.legend_sim_theory(ax_m)

    colors = plotting.colors(len(cfg.ranks))
    for c, rank in zip(colors, cfg.ranks):
        ax_r.plot(t[1:], arrays[f"loss_r{rank}"][1:], color=c, label=f"R = {rank}", **plotting.SIM)
        for level in plateaus[::rank]:
            ax_r.axhline(level, **{**plotting.THEORY, "color": c, "lw": 1.0})
    ax_r.set(xscale="log", xlabel=TIME_LABEL, ylabel="loss E(y − ŷ)² (paper units)",
             title="rank-R heads: plateaus at L(M_kR) (dashed)")
    ax_r.legend(fontsize=8, frameon=False, loc="upper right", bbox_to_anchor=(1.0, 0.93))
    fig.tight_layout()
    return {"linear_attention_plateaus": fig}



# ------------------------------------------------------------------ sweeps
# `saddle sweep linear-attention-plateaus --grid init_scale=3e-4,1e-3,3e-3 --grid seed=0,1`:
# every cell is one rank-1 separate-KQ flow; these fields may be traced.
SWEEP_FIELDS = ("init_scale", "seed")
SWEEP_METRIC = "final_loss"


def cell(cfg: Config, values: dict) -> dict:
    """The rank-1 separate-KQ run of one init with (init_scale, seed) possibly
    traced, to ``horizon_escapes`` × the last predicted drop: the same cell as
    attention-heads' (``experiments.attention_heads.cell``: loss, final loss,
    heads on at the end), with this config's heads and context length."""
    import types

    from experiments import attention_heads

    return attention_heads.cell(types.SimpleNamespace(**dataclasses.asdict(cfg), n_seeds=1), values)
