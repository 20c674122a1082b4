"""Mode-by-mode learning in deep linear networks (Saxe, McClelland & Ganguli 2014,
arXiv 1312.6120, Fig. 3 and Eqs. 8-9).

A teacher with singular values s = (3, 2, 1, 0.5) is learned by a two-layer
linear network from a small aligned, balanced init: each mode follows the
logistic u(t) of Eq. 8 and is half learned at t = (τ/2s) ln(s/u0 − 1) (Eq. 9),
so stronger modes are learned first. GD with rate η is compared with theory at
τ = 1/η; an f64 gradient flow of the same network (and of depth 3 and 4 nets
against the exact depth-N solution) checks the theory to solver precision.

    saddle run saxe-modes            # ~10 s on 2 CPU cores
    saddle run saxe-modes --smoke    # ~6 s
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dynamics
import tasks
from experiments import plotting
from experiments.common import POSITIVE, POSITIVE_INT, POSITIVE_TUPLE, check, check_fields, field, row, worst_point_row
from models import linear
from theory.linear import deep_mode_strength, linear_loss_at_modes, mode_strength, mode_time

NAME = "saxe-modes"
DESCRIPTION = "deep linear nets learn the teacher's modes one by one (Saxe et al. 2014, Fig. 3)"


@dataclasses.dataclass(frozen=True)
class Config:
    s: Tuple[float, ...] = field((3.0, 2.0, 1.0, 0.5), POSITIVE_TUPLE, "singular values of Σyx (descending)")
    n_in: int = field(8, POSITIVE_INT, "input dimension")
    n_out: int = field(8, POSITIVE_INT, "output dimension")
    hidden: int = field(8, POSITIVE_INT, "hidden width of every layer")
    n_samples: int = field(64, POSITIVE_INT, "P, samples (inputs whitened so Σxx = I exactly)")
    u0: float = field(1e-3, POSITIVE, "initial strength of every mode")
    learning_rate: float = field(0.01, POSITIVE, "GD rate η (τ = 1/η)")
    horizon: float = field(15.0, POSITIVE, "simulated time in units of τ")
    record_every: int = field(5, POSITIVE_INT, "GD steps between recordings")
    flow_depths: Tuple[int, ...] = field((2, 3, 4), (lambda d: all(x >= 2 for x in d), "integers ≥ 2"),
                                         "depths simulated by f64 gradient flow")
    seed: int = field(0, None, "PRNG seed (task basis and hidden rotations)")

    def __post_init__(self):
        check_fields(self)
        check("s", self.s, list(self.s) == sorted(self.s, reverse=True), "non-increasing values")
        check("s", self.s, len(self.s) <= min(self.n_in, self.n_out, self.hidden), f"at most min(n_in, n_out, hidden) values")
        check("n_samples", self.n_samples, self.n_samples >= self.n_in, f"≥ n_in = {self.n_in}")
        check("u0", self.u0, self.u0 < min(self.s), f"0 < u0 < min(s) = {min(self.s)}")
        n_steps = int(round(self.horizon / self.learning_rate))
        check("record_every", self.record_every, self.record_every <= n_steps,
              f"at most the run's {n_steps} GD steps (horizon/learning_rate)")


def smoke() -> Config:
    return Config(record_every=10, flow_depths=(2, 3))


def memory_bytes(cfg: Config) -> int:
    """Lower bound on the memory a run needs: float64 hidden × hidden rotations
    (init_aligned draws a Haar matrix per hidden layer; QR holds ~3 copies) and
    the P × max(n_in, n_out) data. Checked before compiling (common.run_experiment)."""
    return 8 * (3 * cfg.hidden**2 + 2 * cfg.n_samples * max(cfg.n_in, cfg.n_out))


def _observer(task):
    return lambda params: {"modes": linear.mode_strengths(params, task.u, task.v)}


def simulate(cfg: Config, progress: bool = False) -> dict:
    key_task, key_init = jax.random.split(jax.random.key(cfg.seed))
    task = tasks.teacher(key_task, n_in=cfg.n_in, n_out=cfg.n_out, s=cfg.s, n_samples=cfg.n_samples)
    loss = dynamics.model_loss(linear.apply)
    data, observe = (task.x, task.y), _observer(task)
    out = {"s": np.asarray(task.s), "u0": np.float64(cfg.u0), "trace_yy": np.asarray(task.trace_yy)}

    n_steps = int(round(cfg.horizon / cfg.learning_rate))
    params = linear.init_aligned(key_init, (cfg.n_in, cfg.hidden, cfg.n_out), u=task.u, v=task.v, u0=cfg.u0)
    record = np.arange(0, n_steps + 1, cfg.record_every)
    gd = dynamics.descend(loss, params, optax.sgd(cfg.learning_rate), data, record_steps=record,
                          observe=observe, progress=progress)
    out.update(gd_t=np.asarray(gd.t) * cfg.learning_rate, gd_modes=np.asarray(gd.stats["modes"]),
               gd_loss=np.asarray(gd.loss))

    times = np.linspace(0.0, cfg.horizon, 301)
    for depth in plotting.progress(list(cfg.flow_depths), progress, desc="gradient flow (f64), depth"):
        sizes = (cfg.n_in,) + (cfg.hidden,) * (depth - 1) + (cfg.n_out,)
        p0 = linear.init_aligned(key_init, sizes, u=task.u, v=task.v, u0=cfg.u0)
        flow = dynamics.gradient_flow(loss, p0, data, times=times, observe=observe, rtol=1e-10, atol=1e-12)
        out[f"flow{depth}_modes"] = np.asarray(flow.stats["modes"])
        out[f"flow{depth}_loss"] = np.asarray(flow.loss)
        # Drift is measured relative to the size of the terms, max |W_l W_lᵀ|.
        scale = max(float(jnp.max(jnp.abs(w @ w.T))) for w in flow.params)
        out[f"flow{depth}_gram_start"] = np.concatenate([np.ravel(g) for g in linear.conserved_gram(p0)]) / scale
        out[f"flow{depth}_gram_end"] = np.concatenate([np.ravel(g) for g in linear.conserved_gram(flow.params)]) / scale
    out["flow_t"] = times
    return out


def _theory(arrays, t, depth):
    s, u0 = arrays["s"], arrays["u0"]
    if depth == 2:
        return np.asarray(mode_strength(t[:, None], s=s, u0=u0))
    return np.asarray(deep_mode_strength(t[:, None], s=s, u0=u0, depth=depth))


def gd_final_loss_gap(s, u0, learning_rate, horizon, trace_yy) -> float:
    """Bound on L_GD(T) − (½ tr Σyy − ½ Σ s²) at t = T = ``horizon`` (t/τ, τ = 1/η), from the theory.

    Our derivation. Aligned modes decouple: L − L_∞ = Σ_α ½(s_α − u_α)² (Saxe et al. 2014,
    arXiv 1312.6120, Sec. 2; ``theory.linear.linear_loss_at_modes``). Until its half-learning
    time a GD mode lags the flow's logistic u(t) (``mode_strength``, Eq. 8) by at most the
    relative ηs_α of the half-time rows (Euler's 1 + 2ηs against e^{2ηs}); after it, with
    g = s − u ≤ u, one GD step (u → u(1 + ηg)², balanced layers) contracts the gap by
    1 − 2ηu − η²ug, the flow over the same step by e^{−2∫u} = 1 − 2ηu + 2η²u(u − g) + O(η³),
    larger by η²u(2u − g) > 0, so GD closes the gap no slower (to O(η³) per step). Hence
    s_α − u_α^GD(T) ≤ s_α − u_α(T − ηs_α t½_α), t½_α = Eq. 9's half time, and the gap is
    Σ_α ½(s_α − u_α(T − ηs_α t½_α))², plus float64 rounding of the loss, 1e-12·½ tr Σyy
    (a mean of P terms each ≤ tr Σyy: rounding ≲ 1e-15 of it per term, ×10³ room).
    s: (r,) singular values; u0: initial strength of every mode.
    """
    s = np.asarray(s, dtype=float)
    t_half = np.asarray(mode_time(u0, s / 2, s=s))
    u_late = np.asarray(mode_strength(np.maximum(horizon - learning_rate * s * t_half, 0.0), s=s, u0=u0))
    return float(np.sum(0.5 * (s - u_late) ** 2) + 1e-12 * 0.5 * trace_yy)


def verify(arrays: dict, cfg: Config) -> list:
    """Theory vs simulation.

    Flow rows: max relative error of u_α(t) over the run, tol 1e-4 (the solver
    runs at rtol 1e-10, so only a wrong theory can miss it). GD rows: half-
    learning time vs Eq. 9 at τ = 1/η; Euler's growth factor 1 + ηs against
    e^{ηs} shifts it by a relative ≈ ηs/2, so tol = ηs. Gram drift: conserved
    W_{l+1}ᵀW_{l+1} − W_lW_lᵀ relative to max |W_lW_lᵀ|, tol 1e-9. GD final loss vs
    ½ tr Σyy − ½ Σ s²: tol ``gd_final_loss_gap`` (what the modes still lack at the horizon).
    """
    rows, s = [], arrays["s"]
    for depth in cfg.flow_depths:
        sim = arrays[f"flow{depth}_modes"]
        th = _theory(arrays, arrays["flow_t"], depth)
        for a in range(len(s)):
            rows.append(worst_point_row(f"depth-{depth} flow u_{a + 1}(t), s={s[a]:g}, worst t", th[:, a], sim[:, a], tol=1e-4))
        rows.append(worst_point_row(f"depth-{depth} flow conserved (W'W - WW')/max|WW'|",
                                    arrays[f"flow{depth}_gram_start"], arrays[f"flow{depth}_gram_end"], tol=1e-9, relative=False))
    for a in range(len(s)):
        th = float(mode_time(arrays["u0"], s[a] / 2, s=s[a]))
        sim = float(crossing_time(arrays["gd_t"], arrays["gd_modes"][:, a], s[a] / 2))
        rows.append(row(f"GD u_{a + 1} half-learning time t/tau, s={s[a]:g}", th, sim, tol=cfg.learning_rate * s[a]))
    final = float(arrays["trace_yy"] / 2 - np.sum(s**2) / 2)
    rows.append(row("GD final loss = tr(Syy)/2 - sum(s^2)/2", final, arrays["gd_loss"][-1],
                    tol=gd_final_loss_gap(s, arrays["u0"], cfg.learning_rate, float(arrays["gd_t"][-1]), float(arrays["trace_yy"])),
                    relative=False))
    return rows


def plot(arrays: dict, cfg: Config) -> dict:
    s = arrays["s"]
    cs = plotting.colors(len(s))
    fig, (ax_gd, ax_deep, ax_loss) = plotting.figure(3)
    th = _theory(arrays, arrays["gd_t"], 2)
    for a in range(len(s)):
        ax_gd.plot(arrays["gd_t"], arrays["gd_modes"][:, a], color=cs[a], label=f"s={s[a]:g}", **plotting.SIM)
        ax_gd.plot(arrays["gd_t"], th[:, a], zorder=3, **plotting.THEORY)
    ax_gd.set(title=f"two layers, GD (η={cfg.learning_rate:g})", xlabel=plotting.TIME_LABEL, ylabel="mode strength u_α")
    ax_gd.legend(fontsize=8, frameon=False)
    deep = [d for d in cfg.flow_depths if d > 2] or [2]
    t = arrays["flow_t"]
    # Depths differ by marker (colour = mode, as in the other panels); every
    # theory curve is drawn above every simulation so the dashes stay visible.
    markers = ["o", "s", "^", "D", "v", "P"]
    for j, depth in enumerate(deep):
        sim_style = dict(plotting.SIM, marker=markers[j % len(markers)], markersize=4.5, markevery=(3 * j, 20),
                         markerfacecolor="none", gid=f"sim-depth-{depth}")
        for a in range(len(s)):
            ax_deep.plot(t, arrays[f"flow{depth}_modes"][:, a], color=cs[a], **sim_style)
        ax_deep.plot([], [], color="0.4", label=f"depth {depth}", **dict(sim_style, markevery=None))
    for depth in deep:
        th = _theory(arrays, t, depth)
        for a in range(len(s)):
            ax_deep.plot(t, th[:, a], zorder=3, **plotting.THEORY)
    ax_deep.set(title=f"gradient flow, depth {', '.join(map(str, deep))}", xlabel="time t/τ", ylabel="mode strength u_α")
    ax_deep.plot([], [], label="theory (exact)", **plotting.THEORY)
    ax_deep.legend(fontsize=8, frameon=False)
    ax_loss.plot(arrays["gd_t"], arrays["gd_loss"], color="C0", label="GD, depth 2", **plotting.SIM)
    th_loss = linear_loss_at_modes(_theory(arrays, arrays["gd_t"], 2), s=s, trace_yy=arrays["trace_yy"])
    ax_loss.plot(arrays["gd_t"], th_loss, label="theory", **plotting.THEORY)
    ax_loss.set(title="loss L = (1/2P)Σ‖y − ŷ‖²", xlabel=plotting.TIME_LABEL, ylabel="loss", yscale="log")
    ax_loss.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return {"modes": fig}


# ------------------------------------------------------------------ sweeps
# `saddle sweep saxe-modes --grid u0=1e-4,1e-3,1e-2 --grid seed=0,1,2`: every
# cell is one GD run; these fields may be traced (one compiled program).
SWEEP_FIELDS = ("u0", "learning_rate", "seed")
SWEEP_METRIC = "half_time_rel_err"


def crossing_time(t: jax.Array, u: jax.Array, level: jax.Array) -> jax.Array:
    """First time u(t) reaches ``level`` (linear interpolation), NaN if never; jit-able."""
    above = u >= level
    i = jnp.argmax(above)
    i0 = jnp.maximum(i - 1, 0)
    frac = (level - u[i0]) / jnp.where(u[i] == u[i0], 1.0, u[i] - u[i0])
    return jnp.where(jnp.any(above) & (i > 0), t[i0] + frac * (t[i] - t[i0]), jnp.nan)


def cell(cfg: Config, values: dict) -> dict:
    """One GD run with (u0, learning_rate, seed) possibly traced: loss on a grid of
    t/τ (``t``, stored with the sweep as the loss curve's time axis), each mode's
    half-learning time, and its error against Eq. 9."""
    eta, u0 = values["learning_rate"], values["u0"]
    key_task, key_init = jax.random.split(jax.random.key(values["seed"]))
    task = tasks.teacher(key_task, n_in=cfg.n_in, n_out=cfg.n_out, s=cfg.s, n_samples=cfg.n_samples)
    params = linear.init_aligned(key_init, (cfg.n_in, cfg.hidden, cfg.n_out), u=task.u, v=task.v, u0=u0)
    times = jnp.linspace(0.0, cfg.horizon, 121)
    steps = jnp.round(times / eta).astype(jnp.int32)
    gd = dynamics.descend(dynamics.model_loss(linear.apply), params, optax.sgd(eta), (task.x, task.y),
                          record_steps=steps, observe=_observer(task))
    t = gd.t * eta
    half = jax.vmap(crossing_time, in_axes=(None, 1, 0))(t, gd.stats["modes"], task.s / 2)
    theory = mode_time(u0, task.s / 2, s=task.s)
    return {"t": t, "loss": gd.loss, "final_loss": gd.loss[-1], "half_time": half,
            "half_time_rel_err": jnp.max(jnp.abs(half - theory) / theory)}
