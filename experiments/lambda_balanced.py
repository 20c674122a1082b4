"""Exact learning dynamics of λ-balanced two-layer linear networks (Braun et al.,
NeurIPS 2022; Dominé et al. 2025, "From lazy to rich", arXiv 2409.14623, Fig. 2).

For W2ᵀW2 − W1W1ᵀ = λI and white inputs, QQᵀ(t) with Q = [W1ᵀ; W2] solves a
matrix Riccati equation in closed form (``theory.balanced.qqt``). The same
network map W2W1 at init (singular values scale²) is learned with sigmoidal,
stage-like dynamics at λ ≈ 0 (rich) and with exponential, kernel-like dynamics
at large |λ| (lazy). Simulation: f64 diffrax gradient flow of the network.

    saddle run lambda-balanced            # ~10 s on 2 CPU cores
    saddle run lambda-balanced --smoke    # ~8 s
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

import dynamics
import tasks
from experiments import plotting
from experiments.common import POSITIVE, POSITIVE_INT, POSITIVE_TUPLE, check, check_fields, field, row
from models import linear
from theory import balanced

NAME = "lambda-balanced"
DESCRIPTION = "exact λ-balanced dynamics: rich (λ≈0) to lazy (|λ| large) (Dominé et al. 2025)"


@dataclasses.dataclass(frozen=True)
class Config:
    lams: Tuple[float, ...] = field((-4.0, -1.0, 0.0, 1.0, 4.0), None, "balances λ = W2ᵀW2 − W1W1ᵀ (one net each)")
    s: Tuple[float, ...] = field((3.0, 2.0, 1.0), POSITIVE_TUPLE, "singular values of Σyx")
    n_in: int = field(5, POSITIVE_INT, "input dimension")
    hidden: int = field(3, POSITIVE_INT, "hidden width (≤ min(n_in, n_out))")
    n_out: int = field(4, POSITIVE_INT, "output dimension")
    scale: float = field(0.1, POSITIVE, "init: W2W1 has singular values scale²")
    horizon: float = field(10.0, POSITIVE, "simulated time t/τ")
    n_times: int = field(120, (lambda n: n >= 10, "an integer ≥ 10"), "recording times (log-spaced)")
    seed: int = field(0, None, "PRNG seed")

    def __post_init__(self):
        check_fields(self)
        check("s", self.s, len(self.s) <= min(self.n_in, self.n_out), f"at most min(n_in, n_out) values")
        check("hidden", self.hidden, self.hidden <= min(self.n_in, self.n_out), f"≤ min(n_in, n_out)")


def smoke() -> Config:
    return Config(lams=(-2.0, 0.0, 2.0), n_times=60)


def _qqt(params):
    q = jnp.concatenate([params[0].T, params[1]], axis=0)
    return q @ q.T


def simulate(cfg: Config, progress: bool = False) -> dict:
    key_task, key_init = jax.random.split(jax.random.key(cfg.seed))
    sizes = (cfg.n_in, cfg.hidden, cfg.n_out)
    task = tasks.teacher(key_task, n_in=cfg.n_in, n_out=cfg.n_out, s=cfg.s)
    times = dynamics.log_times(cfg.horizon, cfg.n_times, t_min=cfg.horizon * 1e-3)
    eye = jnp.eye(cfg.n_in)

    def loss(params, stats):
        return dynamics.linear_loss_from_stats(linear.end_to_end(params), eye, *stats)

    inits = [linear.init_lambda_balanced(key_init, sizes, lam=lam, scale=cfg.scale) for lam in cfg.lams]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *inits)
    flow = jax.jit(jax.vmap(lambda p: dynamics.gradient_flow(
        loss, p, (task.sigma_yx, task.trace_yy), times=times, observe=_qqt, rtol=1e-12, atol=1e-14)))(stacked)
    theory = np.stack([np.asarray(balanced.qqt(times, sigma_yx=task.sigma_yx, q0=jnp.concatenate([p[0].T, p[1]]), lam=lam))
                       for lam, p in zip(cfg.lams, inits)])
    return {"t": times, "qqt_sim": np.asarray(flow.stats), "qqt_theory": theory, "loss": np.asarray(flow.loss),
            "s": np.asarray(task.s), "u": np.asarray(task.u), "v": np.asarray(task.v)}


def _modes(arrays, key):
    """u_αᵀ (W2W1)(t) v_α from the off-diagonal block of QQᵀ: (n_lams, T, r)."""
    n_in = arrays["v"].shape[0]
    w = arrays[key][..., n_in:, :n_in]
    return np.einsum("oa,...oi,ia->...a", arrays["u"], w, arrays["v"])


def verify(arrays: dict, cfg: Config) -> list:
    """max |QQᵀ_theory − QQᵀ_sim| over the run, per λ: the closed form is exact and the
    flow runs at rtol 1e-12, so tol 1e-8 leaves room only for rounding."""
    rows = []
    for i, lam in enumerate(cfg.lams):
        err = np.abs(arrays["qqt_sim"][i] - arrays["qqt_theory"][i])
        j = np.unravel_index(np.argmax(err), err.shape)
        rows.append(row(f"QQ'(t) worst entry, lam={lam:g}", arrays["qqt_theory"][i][j], arrays["qqt_sim"][i][j],
                        tol=1e-8, relative=False))
    return rows


def plot(arrays: dict, cfg: Config) -> dict:
    t, s = arrays["t"], arrays["s"]
    sim, th = _modes(arrays, "qqt_sim"), _modes(arrays, "qqt_theory")
    cs = plotting.colors(len(cfg.lams))
    fig, (ax_modes, ax_loss) = plotting.figure(2)
    for i, lam in enumerate(cfg.lams):
        for a in range(len(s)):
            ax_modes.plot(t, sim[i, :, a], color=cs[i], label=f"λ={lam:g}" if a == 0 else None, **plotting.SIM)
            ax_modes.plot(t, th[i, :, a], **plotting.THEORY)
        ax_loss.plot(t, arrays["loss"][i], color=cs[i], label=f"λ={lam:g}", **plotting.SIM)
    ax_modes.plot([], [], label="theory (exact)", **plotting.THEORY)
    ax_modes.set(xlabel="time t/τ", ylabel="mode strength u_αᵀ W2W1 v_α", title=f"modes s={', '.join(f'{x:g}' for x in s)}")
    ax_modes.legend(fontsize=8, frameon=False)
    ax_loss.set(xlabel="time t/τ", ylabel="loss L = ½E‖y − ŷ‖²", yscale="log", title="λ≈0 rich (stages), |λ| large lazy")
    ax_loss.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return {"lambda_balanced": fig}


# ------------------------------------------------------------------ sweeps
# `saddle sweep lambda-balanced --grid scale=0.01,0.1,0.5 --grid seed=0,1,2`: every
# cell is one flow per λ in ``lams``; these fields may be traced.
SWEEP_FIELDS = ("scale", "seed")
SWEEP_METRIC = "qqt_rel_err"


def cell(cfg: Config, values: dict) -> dict:
    """One gradient flow per λ in ``lams`` with (scale, seed) possibly traced:
    loss curves (λ, T) and the worst |QQᵀ_flow − QQᵀ_exact| over times and λ,
    relative to max |QQᵀ_exact| (the Riccati solution, arXiv 2409.14623 Eq. 3)."""
    key_task, key_init = jax.random.split(jax.random.key(values["seed"]))
    sizes = (cfg.n_in, cfg.hidden, cfg.n_out)
    task = tasks.teacher(key_task, n_in=cfg.n_in, n_out=cfg.n_out, s=cfg.s)
    times = dynamics.log_times(cfg.horizon, cfg.n_times, t_min=cfg.horizon * 1e-3)
    eye = jnp.eye(cfg.n_in)
    rtol = 1e-12 if jax.config.jax_enable_x64 else 1e-6  # float32 sweeps cannot resolve 1e-12

    def loss(params, stats):
        return dynamics.linear_loss_from_stats(linear.end_to_end(params), eye, *stats)

    inits = []
    for lam in cfg.lams:
        # W1 ∝ a(σ, λ), W2 ∝ b(σ, λ) at fixed directions, so a σ = 1 draw rescaled per layer
        # is the λ-balanced init at a traced scale σ.
        unit = linear.init_lambda_balanced(key_init, sizes, lam=lam, scale=1.0)
        (a1, b1), (a, b) = linear.lambda_balanced_singular_values(1.0, lam), linear.lambda_balanced_singular_values(values["scale"], lam)
        inits.append([unit[0] * (a / a1), unit[1] * (b / b1)])
    stacked = jax.tree_util.tree_map(lambda *v: jnp.stack(v), *inits)

    def one(p0, lam):  # one flow per λ, vmapped: one solver to compile
        flow = dynamics.gradient_flow(loss, p0, (task.sigma_yx, task.trace_yy), times=times, observe=_qqt,
                                      rtol=rtol, atol=rtol * 1e-2)
        exact = balanced.qqt(times, sigma_yx=task.sigma_yx, q0=jnp.concatenate([p0[0].T, p0[1]]), lam=lam)
        return flow.loss, jnp.max(jnp.abs(flow.stats - exact)) / jnp.max(jnp.abs(exact))

    losses, errs = jax.vmap(one)(stacked, jnp.asarray(cfg.lams))
    return {"loss": losses, "final_loss": losses[:, -1], "qqt_rel_err": jnp.max(errs)}
