"""Rich vs lazy learning in the single-neuron model f = a wᵀx (Kunin et al. 2024,
"Get rich quick", arXiv 2406.06158, Figs. 2-3; NTK: Jacot et al. 2018, arXiv
1806.07572; lazy limit: Chizat et al. 2019, arXiv 1812.07956).

The relative scale δ = a² − ‖w‖² (conserved by gradient flow) and the init
scale ‖β0‖ = ‖a0 w0‖ decide how far the tangent kernel M = a² I + w wᵀ moves:
for δ ≫ s it stays ≈ δ I (lazy, the NTK prediction holds to O((s/δ)²)); at
δ = 0 from a small init w turns to the task (rich) and ends at the min-norm
interpolant; for δ ≪ −s the rank-one kernel ≈ w wᵀ turns as w does (large S,
slow) and β fits along the init direction, so its test loss depends on
``init_cos`` (the default 0, β0 ⊥ β_T, avoids a lucky aligned init). Two parts:

1. White inputs (Σxx = I, target β*): several δ at one ‖β0‖, float64 flow vs
   the exact solution ``theory.rich_lazy.single_neuron_solution`` — loss and
   kernel distance S(t) = 1 − ⟨K0, Kt⟩/(‖K0‖‖Kt‖) over time.
2. Phase diagram on a low-rank task (P < d training points, so the
   interpolating β is not unique and the init decides generalisation): a
   vmapped grid over ‖β0‖ × δ, final kernel distance and population test loss
   ½‖β − β_T‖² (x ~ N(0, I)), against the NTK-linearised prediction from
   ``dynamics.ntk.linearized_prediction`` (test inputs = the basis e_i, so its
   test outputs are β_lin itself). The lazy cell (δ = +δ_max) must follow the
   NTK; the rich cell (δ = 0, smallest ‖β0‖) must move its kernel.

    saddle run rich-lazy            # 11 × 9 grid: ~30 s of CPU on 2 cores (mostly compiling)
    saddle run rich-lazy --smoke    # 5 × 4 grid: ~25 s of CPU (the same two compilations)
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

import dynamics
from dynamics.ntk import linearized_prediction
from dynamics.sweep import product_grid
from experiments import plotting
from experiments.common import POSITIVE, POSITIVE_INT, bound_row, check, check_fields, field, row, worst_point_row
from models import linear
from theory.rich_lazy import (balanced_rich_limit_distance, kernel_distance, single_neuron_init, single_neuron_kernel,
                              single_neuron_solution)

NAME = "rich-lazy"
DESCRIPTION = "single neuron a·wᵀx: relative scale δ and init scale decide rich vs lazy; exact solution + NTK (arXiv 2406.06158)"

_FINITE = (lambda v: all(np.isfinite(x) for x in v), "comma-separated finite numbers")


@dataclasses.dataclass(frozen=True)
class Config:
    n_in: int = field(4, (lambda n: n >= 2, "an integer ≥ 2"), "input dimension d")
    white_deltas: Tuple[float, ...] = field((-4.0, -1.0, 0.0, 1.0, 4.0), _FINITE, "δ values of the white-input part")
    white_beta0: float = field(0.05, POSITIVE, "‖β0‖ of the white-input part (target ‖β*‖ = 1)")
    white_horizon: float = field(30.0, POSITIVE, "white-input part: last time t/τ")
    n_train: int = field(2, POSITIVE_INT, "training points of the low-rank task (< n_in)")
    scale_range: Tuple[float, ...] = field((1e-3, 3.0), (lambda v: len(v) == 2 and 0 < v[0] < v[1], "min,max with 0 < min < max"),
                                           "‖β0‖ range of the grid (target ‖β_T‖ = 1), log-spaced")
    n_scales: int = field(9, (lambda n: n >= 2, "an integer ≥ 2"), "grid points in ‖β0‖")
    delta_range: Tuple[float, ...] = field((0.03, 30.0), (lambda v: len(v) == 2 and 0 < v[0] < v[1], "min,max with 0 < min < max"),
                                           "|δ| range of the grid: δ ∈ {0, ±geomspace(min, max)}")
    n_deltas: int = field(11, (lambda n: n >= 3 and n % 2 == 1, "an odd integer ≥ 3"), "grid points in δ (odd: includes 0)")
    init_cos: float = field(0.0, (lambda v: -1 <= v <= 1, "a number in [-1, 1]"),
                            "cosine between the init direction β0/‖β0‖ and β_T (δ ≪ 0 fits along β0, so this sets its test loss)")
    horizon: float = field(400.0, POSITIVE, "phase diagram: last time t/τ")
    n_times: int = field(80, (lambda n: n >= 10, "an integer ≥ 10"), "log-spaced recording times")
    seed: int = field(0, None, "PRNG seed (data, target, init direction)")

    def __post_init__(self):
        check_fields(self)
        check("n_train", self.n_train, self.n_train < self.n_in, f"fewer than n_in = {self.n_in} (a low-rank task)")


def smoke() -> Config:
    return Config(white_deltas=(-2.0, 0.0, 2.0), n_scales=4, n_deltas=5, delta_range=(0.1, 10.0), horizon=150.0, n_times=40)


def deltas(cfg: Config) -> np.ndarray:
    pos = np.geomspace(*cfg.delta_range, (cfg.n_deltas - 1) // 2)
    return np.concatenate([-pos[::-1], [0.0], pos])


def scales(cfg: Config) -> np.ndarray:
    return np.geomspace(*cfg.scale_range, cfg.n_scales)


def _times(horizon, n):
    return np.concatenate([[0.0], np.geomspace(1e-5 * horizon, horizon, n - 1)])  # lazy cells fit by t ~ 1/δ


def _params(a0, w0):
    return [w0[None, :], jnp.reshape(a0, (1, 1))]  # models.linear, sizes (d, 1, 1): W1 = wᵀ, W2 = a


def _flow(params, x, y, times):
    # rtol 1e-10: the white part is compared with the exact solution at 1e-6
    loss = dynamics.model_loss(linear.apply)
    traj = dynamics.gradient_flow(loss, params, (x, y), times=times, rtol=1e-10, atol=1e-12,
                                  observe=lambda p: {"a": p[1][0, 0], "w": p[0][0]})
    return traj.loss, traj.stats["a"], traj.stats["w"]


def _white(cfg, key):
    """Data with Σxx = XᵀX/P = I exactly and Σyx = β*, ‖β*‖ = 1."""
    kx, kb, k0 = jax.random.split(key, 3)
    p = 2 * cfg.n_in
    q, _ = jnp.linalg.qr(jax.random.normal(kx, (p, cfg.n_in)))
    x = jnp.sqrt(p) * q
    beta_star = jax.random.normal(kb, (cfg.n_in,))
    beta_star /= jnp.linalg.norm(beta_star)
    u0 = jax.random.normal(k0, (cfg.n_in,))
    return x, (x @ beta_star)[:, None], beta_star, cfg.white_beta0 * u0 / jnp.linalg.norm(u0)


def simulate(cfg: Config, progress: bool = False) -> dict:
    k_white, k_task = jax.random.split(jax.random.key(cfg.seed))
    out = {}
    # ---- part 1: white inputs, exact solution
    x, y, beta_star, beta0 = _white(cfg, k_white)
    times = _times(cfg.white_horizon, cfg.n_times)
    a0, w0 = jax.vmap(single_neuron_init, in_axes=(None, 0))(beta0, jnp.asarray(cfg.white_deltas))
    loss, a, w = jax.jit(jax.vmap(lambda a0, w0: _flow(_params(a0, w0), x, y, times)))(a0, w0)
    sol = jax.vmap(lambda a0, w0: single_neuron_solution(times, a0=a0, w0=w0, beta_star=beta_star))(a0, w0)
    m_sim, m_th = single_neuron_kernel(a, w), single_neuron_kernel(sol.a, sol.w)
    beta_th = sol.a[..., None] * sol.w
    out.update(white_t=times, white_loss=loss, white_a=a, white_w=w, white_a_theory=sol.a, white_w_theory=sol.w,
               white_S=kernel_distance(m_sim[:, :1], m_sim), white_S_theory=kernel_distance(m_th[:, :1], m_th),
               white_loss_theory=0.5 * jnp.sum((beta_th - beta_star) ** 2, -1), white_beta_star=beta_star,
               white_w0=w0)

    # ---- part 2: phase diagram on a low-rank task (n_train < n_in)
    kx, kt, k0 = jax.random.split(k_task, 3)
    x = jax.random.normal(kx, (cfg.n_train, cfg.n_in))
    beta_t = jax.random.normal(kt, (cfg.n_in,))
    beta_t /= jnp.linalg.norm(beta_t)
    y = (x @ beta_t)[:, None]
    v = jax.random.normal(k0, (cfg.n_in,))
    v -= jnp.dot(v, beta_t) * beta_t  # a random direction ⊥ β_T, then tilted to the requested cosine
    u0 = cfg.init_cos * beta_t + np.sqrt(1 - cfg.init_cos**2) * v / jnp.linalg.norm(v)
    grid = product_grid({"delta": deltas(cfg), "scale": scales(cfg)})  # scale varies fastest
    times = _times(cfg.horizon, cfg.n_times)
    basis = jnp.eye(cfg.n_in)

    def cell(delta, scale):
        a0, w0 = single_neuron_init(scale * u0, delta)
        params0 = _params(a0, w0)
        loss, a, w = _flow(params0, x, y, times)
        # NTK-linearised network: its outputs on e_i are β_lin(t) (f(e_i) = β_i for f = a wᵀx)
        lin = linearized_prediction(linear.apply, params0, x, y, basis, times)
        # the NTK as an operator on the test distribution x ~ N(0, I): E[Θ0(x,x')Θt(x,x')] = tr(M0 Mt),
        # so S on M (as in Kunin et al.'s code); the P×P train Gram X M Xᵀ has too little room (P = 2) to show it
        m = single_neuron_kernel(a, w)
        return {"loss": loss, "a": a, "w": w, "beta_lin": lin.test[..., 0], "S": kernel_distance(m[:1], m)}

    res = jax.jit(jax.vmap(cell))(jnp.asarray(grid["delta"]), jnp.asarray(grid["scale"]))
    shape = (cfg.n_deltas, cfg.n_scales)
    beta = res["a"][..., None] * res["w"]
    out.update(grid_delta=deltas(cfg), grid_scale=scales(cfg), t=times, x_train=x, beta_target=beta_t,
               beta_min_norm=jnp.linalg.pinv(x) @ y[:, 0], init_direction=u0,
               **{k: np.asarray(v).reshape(shape + v.shape[1:]) for k, v in res.items()},
               test_loss=np.asarray(0.5 * jnp.sum((beta - beta_t) ** 2, -1)).reshape(shape + (len(times),)),
               test_loss_lin=np.asarray(0.5 * jnp.sum((res["beta_lin"] - beta_t) ** 2, -1)).reshape(shape + (len(times),)))
    return out


def corners(cfg: Config) -> dict:
    """Grid indices (δ index, scale index): lazy = (δ_max, smallest ‖β0‖), rich = (δ = 0, smallest ‖β0‖)."""
    return {"lazy": (cfg.n_deltas - 1, 0), "rich": ((cfg.n_deltas - 1) // 2, 0)}


def verify(arrays: dict, cfg: Config) -> list:
    """White part: exact solution vs float64 flow (rtol 1e-10) to 1e-6 in a, w and S(t); the δ = 0
    run's final S vs its end point 1 − (d + 2 + cos²)/(d + 3), tol ``white_limit_gap`` (the exact
    solution's own distance from its limit at t = white_horizon, bounded without the end-point
    formula) + 1e-6 (the flow vs the exact solution, as the S(t) row).

    Phase diagram: δ conserved in every cell to 1e-6 relative (flow rtol 1e-10).
    Lazy cell (δ = δ_max ≫ s): the NTK-linearised β follows the flow. By Grönwall, the error
    relative to the distance moved is ≤ sup‖M_t − M_0‖/λ_min(M_0); here M_0 ≈ δ I and
    M_t − M_0 ≈ Δw Δwᵀ + 2 sym(w0 Δwᵀ) with ‖Δw‖ ≈ ‖Δβ‖/√δ, so the bound is ≈ (‖Δβ‖² + 2‖β0‖‖Δβ‖)/δ²;
    tol = 4 (‖β_T‖ + ‖β0‖)²/δ_max² covers it (a wrong kernel or time scale gives an O(1) error).
    Rich cell (δ = 0, smallest ‖β0‖ = ε): w only moves inside the row space of X (the gradient
    a Σxx(β − β_T) lives there), so its other part stays w0⊥, ‖w0⊥‖ ≤ ‖w0‖ = √ε, while
    ‖w∞‖ ≈ a∞ ≈ √‖β_mn‖: β∞ = the min-norm interpolant β_mn = X⁺y up to ‖Δβ‖ ≤ √(ε‖β_mn‖).
    Test loss ½‖β_mn − β_T‖², rel. tol 2√(ε‖β_mn‖)/‖β_mn − β_T‖ (first order in Δβ, ×1 margin
    for the quadratic term); and, as δ = 0 keeps M ∝ I + ŵŵᵀ, S∞ = 1 − (d + 2 + cos²(w0, β_mn))/(d + 3),
    abs. tol 2√(ε/‖β_mn‖)/(d + 3) (ŵ∞ tilted from β_mn by ≤ √(ε/‖β_mn‖), |d cos²/dθ| ≤ 1, ×2 margin).
    "Kernel distance large": the rich cell's final S is ≥ 100× the lazy cell's, which is
    O((‖Δβ‖/δ_max)²) ≲ 1e-3 while the rich one is O(1/(d + 3))."""
    rows = [
        worst_point_row("white: a(t), exact vs flow (worst δ, t)", arrays["white_a_theory"], arrays["white_a"], tol=1e-6, relative=False),
        worst_point_row("white: w(t), exact vs flow (worst δ, t, i)", arrays["white_w_theory"], arrays["white_w"], tol=1e-6, relative=False),
        worst_point_row("white: kernel distance S(t), exact vs flow", arrays["white_S_theory"], arrays["white_S"], tol=1e-6, relative=False),
    ]
    if 0.0 in cfg.white_deltas:
        i = list(cfg.white_deltas).index(0.0)
        rows.append(row("white δ=0: final S vs end point 1-(d+2+cos²)/(d+3)",
                        balanced_rich_limit_distance(cfg.n_in, _cos2(arrays["white_w0"][i], arrays["white_beta_star"])),
                        arrays["white_S"][i, -1], tol=white_limit_gap(arrays, i) + 1e-6, relative=False))
    a, w = arrays["a"], arrays["w"]
    delta_t = a**2 - np.sum(w**2, -1)
    drift = np.abs(delta_t - delta_t[..., :1]) / (np.abs(delta_t[..., :1]) + 1.0)
    rows.append(row("grid: max drift of δ = a² − ‖w‖² / (|δ| + 1)", 0.0, float(drift.max()), tol=1e-6, relative=False))

    c = corners(cfg)
    il, jl = c["lazy"]
    d_l, s_l = arrays["grid_delta"][il], arrays["grid_scale"][jl]
    beta = a[il, jl][:, None] * w[il, jl]
    moved = np.max(np.linalg.norm(beta - beta[0], axis=-1))
    lin_err = np.max(np.linalg.norm(arrays["beta_lin"][il, jl] - beta, axis=-1)) / moved
    rows.append(row(f"lazy cell (δ={d_l:g}, ‖β0‖={s_l:g}): max_t ‖β_NTK − β‖ / max_t ‖β − β0‖", 0.0, lin_err,
                    tol=4 * (1.0 + s_l) ** 2 / d_l**2, relative=False))

    ir, jr = c["rich"]
    eps, b_mn = arrays["grid_scale"][jr], arrays["beta_min_norm"]
    norm_mn, miss = np.linalg.norm(b_mn), np.linalg.norm(b_mn - arrays["beta_target"])
    s_rich, s_lazy = float(arrays["S"][ir, jr, -1]), float(arrays["S"][il, jl, -1])
    rows.append(row(f"rich cell (δ=0, ‖β0‖={eps:g}): final test loss vs min-norm interpolant ½‖X⁺y − β_T‖²",
                    0.5 * miss**2, arrays["test_loss"][ir, jr, -1], tol=2 * np.sqrt(eps * norm_mn) / miss))
    rows.append(row("rich cell: final S vs 1-(d+2+cos²(w0, X⁺y))/(d+3)",
                    balanced_rich_limit_distance(cfg.n_in, _cos2(w[ir, jr, 0], b_mn)), s_rich,
                    tol=2 * np.sqrt(eps / norm_mn) / (cfg.n_in + 3), relative=False))
    rows.append(bound_row("rich/lazy final kernel distance ratio ≥ 100", s_rich / max(s_lazy, 1e-300), at_least=100.0))
    return rows


def white_limit_gap(arrays, i) -> float:
    """Bound on |S(T) − S(∞)| of the exact white-input solution of run i, T = its last time, from the
    exact solution alone (not from the end-point formula the row checks): 2 |S(T) − S(2T)|.

    Our derivation: S(T) − S(∞) = [S(T) − S(2T)] + [S(2T) − S(∞)], and the second term is at most
    half the first gap |S(T) − S(∞)| once the approach halves between T and 2T. At δ = 0 the
    transients of ``theory.rich_lazy.single_neuron_solution`` are e^{−λt}, e^{−ct} and t e^{−ct} with
    λ = ‖β*‖, c = 2‖β*‖ (τ = 1), which halve from T to 2T once ‖β*‖T ≥ ln 4 (the white part has
    ‖β*‖ = 1 and T = white_horizon ≥ 30 by default); then |S(T) − S(∞)| ≤ 2 |S(T) − S(2T)|.
    """
    t_end = float(arrays["white_t"][-1])
    a0, w0, b_star = arrays["white_a_theory"][i, 0], arrays["white_w0"][i], arrays["white_beta_star"]
    if np.linalg.norm(b_star) * t_end < np.log(4.0):
        return float("nan")  # the argument does not apply: the row fails rather than claim anything
    sol = single_neuron_solution(np.array([t_end, 2 * t_end]), a0=a0, w0=w0, beta_star=b_star)
    s_t = np.asarray(kernel_distance(single_neuron_kernel(a0, w0)[None], single_neuron_kernel(sol.a, sol.w)))
    return float(2 * abs(s_t[0] - s_t[1]))


def _cos2(u, v) -> float:
    return float(np.dot(u, v) ** 2 / (np.dot(u, u) * np.dot(v, v)))


def _heatmap(ax, fig, values, cfg, arrays, title, log=True):
    from matplotlib.colors import LogNorm

    from matplotlib import patheffects

    img = ax.imshow(values, origin="lower", aspect="auto", cmap="magma",
                    norm=LogNorm(vmin=max(values.min(), 1e-12), vmax=values.max()) if log else None)
    bar = fig.colorbar(img, ax=ax)
    bar.ax.tick_params(labelsize=10, colors="black")
    # Large black ticks and labels (they were 7 pt), and corner names in white with
    # a black outline, readable on both ends of the colour map.
    ax.set_xticks(range(cfg.n_scales), [f"{v:.0e}" for v in arrays["grid_scale"]], rotation=60, fontsize=10)
    ax.set_yticks(range(cfg.n_deltas), [f"{v:.2g}" for v in arrays["grid_delta"]], fontsize=10)
    ax.tick_params(colors="black", labelcolor="black", length=4, width=1)
    ax.set_xlabel("init scale ‖β0‖ = |a0|·‖w0‖ (target ‖β_T‖ = 1)", fontsize=11, color="black")
    ax.set_ylabel("relative scale δ = a0² − ‖w0‖²", fontsize=11, color="black")
    ax.set_title(title, fontsize=11, color="black")
    outline = [patheffects.withStroke(linewidth=3, foreground="black")]
    for name, (i, j) in corners(cfg).items():
        ax.annotate(name, (j, i), color="white", fontsize=11, ha="center", va="center", weight="bold", path_effects=outline)


def plot(arrays: dict, cfg: Config) -> dict:
    figs = {}
    # white inputs: simulation solid, exact solution dashed
    fig, (ax_l, ax_s) = plotting.figure(2)
    t = arrays["white_t"][1:]
    for k, (delta, color) in enumerate(zip(cfg.white_deltas, plotting.colors(len(cfg.white_deltas)))):
        ax_l.plot(t, arrays["white_loss"][k, 1:], color=color, label=f"δ = {delta:g}", **plotting.SIM)
        ax_l.plot(t, arrays["white_loss_theory"][k, 1:], **plotting.THEORY)
        ax_s.plot(t, arrays["white_S"][k, 1:], color=color, label=f"δ = {delta:g}", **plotting.SIM)
        ax_s.plot(t, arrays["white_S_theory"][k, 1:], **plotting.THEORY)
    ax_l.set(xscale="log", yscale="log", ylim=(1e-14, 2), xlabel=plotting.TIME_LABEL, ylabel="loss L − L* = ½‖β − β*‖²",
             title=f"white inputs, ‖β0‖ = {cfg.white_beta0:g}")
    ax_s.set(xscale="log", xlabel=plotting.TIME_LABEL, ylabel="kernel distance S(0, t)", title="NTK movement")
    plotting.legend_sim_theory(ax_l)
    ax_s.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    figs["rich_lazy_white"] = fig

    # phase diagram
    fig, axes = plotting.figure(3, width=4.6, height=4.0)
    gap = np.abs(arrays["test_loss"][..., -1] - arrays["test_loss_lin"][..., -1])
    _heatmap(axes[0], fig, arrays["S"][..., -1], cfg, arrays, f"final kernel distance S (t/τ = {cfg.horizon:g})")
    _heatmap(axes[1], fig, arrays["test_loss"][..., -1], cfg, arrays, "final test loss ½‖β − β_T‖²")
    _heatmap(axes[2], fig, gap, cfg, arrays, "|test loss − NTK-linearised prediction|")
    fig.tight_layout()
    figs["rich_lazy_phase"] = fig

    # lazy vs rich cell over time: flow solid, NTK prediction dashed
    fig, axes = plotting.figure(2)
    t, x, beta_t = arrays["t"][1:], arrays["x_train"], arrays["beta_target"]
    for ax, (name, (i, j)) in zip(axes, corners(cfg).items()):
        beta_lin = arrays["beta_lin"][i, j, 1:]
        train_lin = 0.5 * np.mean(((beta_lin - beta_t) @ x.T) ** 2, axis=-1)  # y = X β_T
        ax.plot(t, arrays["test_loss"][i, j, 1:], color="C0", label="test loss ½‖β − β_T‖²", **plotting.SIM)
        ax.plot(t, arrays["test_loss_lin"][i, j, 1:], **plotting.THEORY)
        ax.plot(t, arrays["loss"][i, j, 1:], color="C1", label="train loss", **plotting.SIM)
        ax.plot(t, train_lin, **plotting.THEORY)
        ax.plot(t, arrays["S"][i, j, 1:], color="C2", label="kernel distance S(0, t)", **plotting.SIM)
        ax.set(xscale="log", yscale="log", xlabel=plotting.TIME_LABEL, ylim=(1e-10, 2),
               title=f"{name} cell: δ = {arrays['grid_delta'][i]:g}, ‖β0‖ = {arrays['grid_scale'][j]:g}")
        ax.plot([], [], label="NTK-linearised prediction", **plotting.THEORY)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    figs["rich_lazy_cells"] = fig
    return figs


# ------------------------------------------------------------------ sweeps
# `saddle sweep rich-lazy --grid white_beta0=0.01,0.05,0.2 --grid seed=0,1,2`: every
# cell is the white-input part (one flow per δ in white_deltas); these fields may be traced.
SWEEP_FIELDS = ("white_beta0", "seed")
SWEEP_METRIC = "white_err"


def cell(cfg: Config, values: dict) -> dict:
    """The white-input part with (white_beta0, seed) possibly traced, one flow per
    δ in ``white_deltas``: loss curves (δ, T), the worst |β(t) − β_exact(t)| over
    times and δ (the exact single-neuron solution, arXiv 2406.06158), and the
    final kernel distance S per δ (the phase diagram is itself a grid: run it
    with ``saddle run``)."""
    k_white, _ = jax.random.split(jax.random.key(values["seed"]))
    x, y, beta_star, direction = _white(dataclasses.replace(cfg, white_beta0=1.0), k_white)
    beta0 = values["white_beta0"] * direction  # _white scales a unit direction by white_beta0
    times = _times(cfg.white_horizon, cfg.n_times)
    a0, w0 = jax.vmap(single_neuron_init, in_axes=(None, 0))(beta0, jnp.asarray(cfg.white_deltas))
    rtol = 1e-10 if jax.config.jax_enable_x64 else 1e-6  # as _flow; float32 sweeps cannot resolve 1e-10

    def flow(a0, w0):
        traj = dynamics.gradient_flow(dynamics.model_loss(linear.apply), _params(a0, w0), (x, y), times=times,
                                      rtol=rtol, atol=rtol * 1e-2, observe=lambda p: {"a": p[1][0, 0], "w": p[0][0]})
        return traj.loss, traj.stats["a"], traj.stats["w"]

    loss, a, w = jax.vmap(flow)(a0, w0)
    sol = jax.vmap(lambda a0, w0: single_neuron_solution(times, a0=a0, w0=w0, beta_star=beta_star))(a0, w0)
    err = jnp.max(jnp.abs(a[..., None] * w - sol.a[..., None] * sol.w))
    m = single_neuron_kernel(a, w)
    return {"loss": loss, "white_err": err, "final_S": kernel_distance(m[:, :1], m)[:, -1]}
