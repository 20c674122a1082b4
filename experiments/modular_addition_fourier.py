"""Fourier features, the lottery ticket and grokking in a two-layer net on (x + y) mod p
(He, Wang, Chen & Yang, arXiv 2602.16849).

The paper's network f(x, y)_j = Σ_m ξ[m, j] (θ[m, x] + θ[m, y])² (quadratic activation,
one-hot inputs) is trained by full-batch GD on the mean cross-entropy over all p² pairs
from a small random init (τ = 1/η, step k at t = k). Recorded per neuron m and frequency
ω_k = 2πk/p: the magnitudes a, b of θ_m, ξ_m and the phase difference D = ψ − 2φ
(``theory.modular_addition``). Compared with the theory:

* the reduced per-frequency flow (``frequency_flow``) for every (neuron, frequency) mode,
  while the logits are small (max |f| ≤ ``logit_cap``), where it is derived;
* the lottery ticket: each neuron's learned frequency (largest θ power at the end) vs the
  one whose reduced mode blows up first from the init (``winning_frequencies``).

Variant (``grok_steps`` > 0): the paper's grokking setting, ReLU activation, AdamW with
weight decay on a random ``train_fraction`` of the pairs; train and test accuracy over steps
(no theory row: the paper describes its stages, it does not predict their times).

    saddle run modular-addition-fourier            # ~30 s CPU
    saddle run modular-addition-fourier --smoke    # ~20 s CPU
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dynamics
from experiments import plotting
from experiments.common import POSITIVE, POSITIVE_INT, bound_row, check_fields, field, row
from models import modular_addition as net
from theory import modular_addition as theory

NAME = "modular-addition-fourier"
DESCRIPTION = "Fourier features, lottery ticket and grokking on (a+b) mod p (He et al. 2026)"

ODD_P = (lambda p: p >= 5 and p % 2 == 1, "an odd integer ≥ 5")
FRACTION = (lambda f: 0 < f < 1, "a number in (0, 1)")


@dataclasses.dataclass(frozen=True)
class Config:
    p: int = field(23, ODD_P, "modulus p (odd; frequencies k = 1 … (p−1)/2)")
    hidden: int = field(64, POSITIVE_INT, "neurons M")
    init_scale: float = field(0.02, POSITIVE, "init: θ, ξ entries i.i.d. N(0, init_scale²)")
    learning_rate: float = field(1.0, POSITIVE, "GD rate η on the mean cross-entropy (τ = 1/η)")
    n_steps: int = field(8000, POSITIVE_INT, "GD steps on all p² pairs")
    n_points: int = field(120, (lambda n: n >= 10, "an integer ≥ 10"), "recording steps (log-spaced)")
    logit_cap: float = field(0.01, POSITIVE, "the reduced flow is compared while max |f| ≤ logit_cap")
    grok_steps: int = field(3000, (lambda n: n >= 0, "an integer ≥ 0 (0: no grokking run)"), "AdamW steps of the grokking variant")
    grok_hidden: int = field(256, POSITIVE_INT, "grokking: neurons M (ReLU net)")
    train_fraction: float = field(0.75, FRACTION, "grokking: fraction of the p² pairs trained on")
    weight_decay: float = field(2.0, (lambda w: w >= 0, "a number ≥ 0"), "grokking: AdamW weight decay")
    grok_learning_rate: float = field(3e-3, POSITIVE, "grokking: AdamW learning rate")
    grok_init_scale: float = field(0.02, POSITIVE, "grokking: init scale (ReLU net)")
    seed: int = field(0, None, "PRNG seed (init; train/test split)")

    def __post_init__(self):
        check_fields(self)


def smoke() -> Config:
    return Config(p=23, hidden=16, init_scale=0.04, n_steps=1500, n_points=60, grok_steps=800, grok_hidden=128)


def _observe(params, *, pairs):
    a2, b2 = net.frequency_power(params.theta), net.frequency_power(params.xi)
    phase = net.frequency_phase(params.xi) - 2 * net.frequency_phase(params.theta)
    return {"a": jnp.sqrt(a2), "b": jnp.sqrt(b2), "phase": theory.wrap_phase(phase),
            "max_logit": jnp.max(jnp.abs(net.apply(params, pairs)))}


def _grokking(cfg: Config, key, progress: bool) -> dict:
    key_init, key_split = jax.random.split(key)
    train, test = net.split_pairs(key_split, cfg.p, cfg.train_fraction)
    params = net.init(key_init, p=cfg.p, hidden=cfg.grok_hidden, init_scale=cfg.grok_init_scale)
    loss = functools.partial(net.cross_entropy, activation="relu")

    def observe(pr):
        return {"train_acc": net.accuracy(pr, train, "relu"), "test_acc": net.accuracy(pr, test, "relu"),
                "test_loss": net.cross_entropy(pr, test, "relu")}

    steps = dynamics.log_steps(cfg.grok_steps, 100)
    traj = dynamics.descend(loss, params, optax.adamw(cfg.grok_learning_rate, weight_decay=cfg.weight_decay), train,
                            record_steps=steps, observe=observe, progress=progress)
    return {"grok_steps": steps, "grok_train_loss": traj.loss, "grok_test_loss": traj.stats["test_loss"],
            "grok_train_acc": traj.stats["train_acc"], "grok_test_acc": traj.stats["test_acc"]}


def _window(max_logit, cap) -> int:
    """Number of leading records with every logit ≤ cap (at least 2)."""
    over = np.nonzero(np.asarray(max_logit) > cap)[0]
    return max(2, int(over[0]) if over.size else len(max_logit))


def simulate(cfg: Config, progress: bool = False) -> dict:
    key_init, key_grok = jax.random.split(jax.random.key(cfg.seed))
    params0 = net.init(key_init, p=cfg.p, hidden=cfg.hidden, init_scale=cfg.init_scale)
    pairs, labels = net.all_pairs(cfg.p)
    steps = dynamics.log_steps(cfg.n_steps, cfg.n_points)
    out = {}
    for stage in plotting.progress(["train (all pairs)", "reduced flow", "grokking variant"], progress, NAME):
        if stage.startswith("train"):
            traj = dynamics.descend(net.cross_entropy, params0, optax.sgd(cfg.learning_rate), (pairs, labels),
                                    record_steps=steps, observe=functools.partial(_observe, pairs=pairs), progress=progress)
            out.update(steps=steps, loss=traj.loss, accuracy=net.accuracy(traj.params, (pairs, labels)),
                       **{k: np.asarray(v) for k, v in traj.stats.items()})
        elif stage == "reduced flow":
            tau = 1.0 / cfg.learning_rate
            a0, b0, d0 = theory.frequency_state(params0, cfg.p)
            n_win = _window(out["max_logit"], cfg.logit_cap)
            t_win = jnp.asarray(steps[:n_win], dtype=float)
            flow = jax.jit(jax.vmap(lambda a, b, d: theory.frequency_flow(t_win, p=cfg.p, a0=a, b0=b, phase0=d, tau=tau)))
            th = [np.moveaxis(np.asarray(x).reshape(a0.shape + (n_win,)), -1, 0) for x in flow(a0.ravel(), b0.ravel(), d0.ravel())]
            out.update(a_theory=th[0], b_theory=th[1], phase_theory=th[2], n_window=np.int64(n_win),
                       t_star=theory.blow_up_time(p=cfg.p, a0=a0, b0=b0, phase0=d0, tau=tau),
                       predicted=theory.winning_frequencies(params0, cfg.p),
                       predicted_growth=theory.winning_frequencies(params0, cfg.p, rule="growth"),
                       learned=np.argmax(out["a"][-1], axis=-1) + 1)
        elif cfg.grok_steps > 0:
            out.update(_grokking(cfg, key_grok, progress))
    return {k: np.asarray(v) for k, v in out.items()}


def chance_bound(p: int, hidden: int) -> float:
    """Smallest lottery score that rejects "the init does not decide the frequency" at 3σ.

    Under that null each neuron's learned frequency matches a prediction made from its
    init with probability 1/K (K = (p−1)/2 frequencies), so the matched fraction is
    Binomial(M, 1/K)/M: mean 1/K, sd √((1/K)(1 − 1/K)/M). The reduced flow claims more,
    a match for every neuron whose winning mode escapes before the others' logits grow;
    after the first modes escape (logits ~1 a time pτ before their t*, module docstring of
    theory.modular_addition) the shrinking residual couples the neurons, which the reduced
    flow leaves out, so only the 3σ claim is a bound the theory guarantees."""
    k = (p - 1) // 2
    return 1.0 / k + 3.0 * np.sqrt((1.0 / k) * (1.0 - 1.0 / k) / hidden)


def _flow_errors(arrays, cfg):
    """Worst normalised gaps between the network's modes and the reduced flow in the window,
    and the tolerance factor: the rates of (2) hold up to a relative 4(e^{2F} − 1) (softmax
    within e^{±2F} of 1/p for logits |f| ≤ F, both gradients bounded in sup norm), and GD's
    Euler step adds ½ η r per unit of log-growth (r: the largest rate in the window)."""
    n = int(arrays["n_window"])
    a, b, d = arrays["a"][:n], arrays["b"][:n], arrays["phase"][:n]
    at, bt, dt = arrays["a_theory"], arrays["b_theory"], arrays["phase_theory"]
    a_scale, b_scale = np.max(at, axis=0), np.max(bt, axis=0)
    err_a = np.max(np.abs(a - at) / a_scale)
    err_b = np.max(np.abs(b - bt) / b_scale)
    winners = np.asarray(arrays["predicted"]) - 1
    m = np.arange(winners.size)
    err_d = np.max(np.abs(np.asarray(theory.wrap_phase(d[:, m, winners] - dt[:, m, winners]))))
    f_max = float(np.max(arrays["max_logit"][:n]))
    rate = np.max((2 * bt + at**2 / b_scale) / cfg.p) * cfg.learning_rate  # per GD step
    growth = float(np.max(np.log(np.maximum(a_scale / at[0], b_scale / bt[0]))))
    eps = 4 * np.expm1(2 * f_max) + 0.5 * rate
    return err_a, err_b, err_d, eps, growth


def verify(arrays: dict, cfg: Config) -> list:
    err_a, err_b, err_d, eps, growth = _flow_errors(arrays, cfg)
    tol = eps * max(growth, 1.0)
    learned, predicted = arrays["learned"], arrays["predicted"]
    bound = chance_bound(cfg.p, cfg.hidden)
    return [
        row("reduced flow: max|a_net − a_ODE| / max a_ODE, all modes", 0.0, err_a, tol=tol, relative=False),
        row("reduced flow: max|b_net − b_ODE| / max b_ODE, all modes", 0.0, err_b, tol=tol, relative=False),
        row("reduced flow: max|D_net − D_ODE| (rad), predicted winners", 0.0, err_d, tol=eps * max(growth, np.pi), relative=False),
        bound_row("lottery: fraction of neurons learning the predicted frequency", float(np.mean(learned == predicted)),
                  at_least=bound),
    ]


def plot(arrays: dict, cfg: Config) -> dict:
    steps, n = arrays["steps"], int(arrays["n_window"])
    t_win = steps[:n]
    k_all = np.arange(1, (cfg.p - 1) // 2 + 1)
    cs = plotting.colors(len(k_all))
    fig, (ax_pow, ax_ode, ax_phase, ax_lot, ax_grok) = plotting.figure(5, width=3.9)
    x = np.maximum(steps, 1)
    for i, k in enumerate(k_all):
        ax_pow.plot(x, np.sum(arrays["a"][:, :, i] ** 2, axis=1), color=cs[i], label=f"k={k}" if i % 2 == 0 else None, **plotting.SIM)
        ax_pow.plot(np.maximum(t_win, 1), np.sum(arrays["a_theory"][:, :, i] ** 2, axis=1), zorder=3, **plotting.THEORY)
    ax_pow.axvline(max(t_win[-1], 1), color="0.5", ls=":", lw=1)
    ax_pow.set(xscale="log", yscale="log", xlabel="GD step k (t/τ = kη, log)", ylabel="power Σ_m a²_{m,k} of θ at ω_k",
               title="per-frequency power over training")
    ax_pow.legend(fontsize=6, frameon=False, ncol=2)
    winners = np.asarray(arrays["predicted"]) - 1
    show = np.arange(min(4, winners.size))
    for j, m in enumerate(show):
        k = winners[m]
        ax_ode.plot(x, arrays["a"][:, m, k], color=plotting.colors(4)[j], label=f"neuron {m}, k={k + 1}", **plotting.SIM)
        ax_ode.plot(np.maximum(t_win, 1), arrays["a_theory"][:, m, k], zorder=3, **plotting.THEORY)
        ax_phase.plot(x, arrays["phase"][:, m, k], color=plotting.colors(4)[j], **plotting.SIM)
        ax_phase.plot(np.maximum(t_win, 1), arrays["phase_theory"][:, m, k], zorder=3, **plotting.THEORY)
    for ax in (ax_ode, ax_phase):
        ax.axvline(max(t_win[-1], 1), color="0.5", ls=":", lw=1, label=f"max|f| = {cfg.logit_cap:g}")
    ax_ode.set(xscale="log", yscale="log", xlabel="GD step k (t/τ = kη, log)", ylabel="θ magnitude a at the predicted k",
               title="reduced ODE (dashed) vs network")
    plotting.legend_sim_theory(ax_ode)
    ax_phase.axhline(0, color="0.7", lw=0.8)
    ax_phase.set(xscale="log", xlabel="GD step k (t/τ = kη, log)", ylabel="phase difference D = ψ − 2φ (rad)",
                 title="phase alignment D → 0")
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, size=(2, winners.size))
    ax_lot.plot(arrays["predicted"] + jitter[0], arrays["learned"] + jitter[1], "o", ms=4, alpha=0.7, color="C0",
                label="neurons")
    ax_lot.plot([1, k_all[-1]], [1, k_all[-1]], zorder=3, label="learned = predicted", **plotting.THEORY)
    frac = np.mean(arrays["learned"] == arrays["predicted"])
    ax_lot.set(xlabel="predicted frequency k (first blow-up)", ylabel="learned frequency k (max θ power)",
               title=f"lottery ticket: {frac:.0%} match")
    ax_lot.legend(fontsize=7, frameon=False)
    if "grok_steps" in arrays:
        gx = np.maximum(arrays["grok_steps"], 1)
        ax_grok.plot(gx, arrays["grok_train_acc"], color="C1", label="train", **plotting.SIM)
        ax_grok.plot(gx, arrays["grok_test_acc"], color="C2", label="test", **plotting.SIM)
        ax_grok.legend(fontsize=7, frameon=False)
    ax_grok.set(xscale="log", xlabel="AdamW step (log)", ylabel="accuracy", ylim=(0, 1.05),
                title=f"grokking: ReLU, {cfg.train_fraction:.0%} of pairs, wd {cfg.weight_decay:g}")
    fig.tight_layout()
    return {"modular_addition_fourier": fig}


# ------------------------------------------------------------------ sweeps
# `saddle sweep modular-addition-fourier --grid seed=0,1,2,3 --grid init_scale=0.01,0.02,0.04`:
# one GD run on all pairs per cell and the lottery-ticket score.
SWEEP_FIELDS = ("seed", "init_scale", "learning_rate")
SWEEP_METRIC = "lottery_fraction"


def cell(cfg: Config, values: dict) -> dict:
    """GD from init(seed, init_scale) on all p² pairs: loss curve (T,), final loss, and the
    fraction of neurons whose learned frequency is the reduced flow's first blow-up
    (``theory.modular_addition.winning_frequencies``, arXiv 2602.16849)."""
    params0 = net.init(jax.random.split(jax.random.key(values["seed"]))[0], p=cfg.p, hidden=cfg.hidden,
                       init_scale=values["init_scale"])
    pairs, labels = net.all_pairs(cfg.p)
    steps = dynamics.log_steps(cfg.n_steps, cfg.n_points)
    traj = dynamics.descend(net.cross_entropy, params0, optax.sgd(values["learning_rate"]), (pairs, labels),
                            record_steps=steps)
    learned = jnp.argmax(net.frequency_power(traj.params.theta), axis=-1) + 1
    frac = jnp.mean(learned == theory.winning_frequencies(params0, cfg.p))
    return {"loss": traj.loss, "final_loss": traj.loss[-1], "lottery_fraction": frac}
