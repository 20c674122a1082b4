"""The theory of a FINITE training set for ``experiments.linear_attention_plateaus`` (linattn-icl trains
full-batch on a fixed set of sequences; arXiv 2501.16265 and github.com/yedizhang/linattn-icl): the set
itself, its fixed points, escapes and Monte-Carlo errors, and the bias of reading a plateau off a curve."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tasks import icl
from theory import attention_heads as th_heads
from theory import attention_icl as th


def training_data(cfg, lam: np.ndarray):
    """The fixed training set (tokens (P, N+1, D+1), targets (P,)) of ``cfg`` (train_size > 0)."""
    return icl.training_set(jax.random.key(cfg.data_seed), lam=lam, n_context=cfg.n_context, size=cfg.train_size)


def set_theory(cfg, lam: np.ndarray, params) -> dict:
    """The theory for the training set actually trained on (train_size > 0), from its moments.

    plateaus_set: (D+1,) its on-manifold fixed points (``theory.attention_icl.set_plateau_fixed_points``,
    paper normalisation); floors_set: how low its loss goes off the manifold (``set_plateau_floors``);
    plateaus_set_se: the Monte-Carlo standard error of each fixed point's loss about the population's
    L(M_m): the fixed point's loss is the set's mean of r_p² (r_p: sequence p's residual), and by the
    delta method (the fixed point is stationary, so moving Γ is second order) its standard error is
    std_p(r_p²)/√P (i.i.d. sequences; the set's centring and whitening remove part of this scatter, so it
    overstates the error); set_escape_*: ``theory.attention_heads.separate_kq_set_head_escapes`` with the
    set's residual correlations B_m at each fixed point (times in the units as simulated)."""
    tokens, targets = training_data(cfg, lam)
    mom = icl.empirical_moments(tokens, targets, divide_by_n=cfg.divide_by_n)
    d = lam.size
    levels, gammas = th.set_plateau_fixed_points(mom.yy, mom.phi_y, mom.phi_phi, order=th.separate_kq_drop_order(lam))
    floors, floor_tensors = th.set_plateau_floors(mom.yy, mom.phi_y, mom.phi_phi, gammas)
    n = tokens.shape[1] - 1
    zfeat = jnp.einsum("bn,bnc->bc", tokens[:, :, d], tokens[:, :, :d])[:, :, None] * tokens[:, n, None, :d]
    zfeat = np.asarray(zfeat) / (n if cfg.divide_by_n else 1)  # φ_{D,b,c} = S_Db x_qc (/N), b, c < D
    resid = np.asarray(targets)[None] - np.einsum("mbc,pbc->mp", gammas, zfeat)
    se = np.std(resid**2, axis=1) / np.sqrt(cfg.train_size)
    phi_y, phi_phi = np.asarray(mom.phi_y), np.asarray(mom.phi_phi)
    full = np.zeros((d + 1,) + phi_y.shape)
    full[:, d, :d] = gammas
    init = dict(v0=np.asarray(params["v"][:, d, d]), k0=np.asarray(params["k"][:, 0]), q0=np.asarray(params["q"][:, 0, :d]))
    corrs = phi_y[d][None] - np.einsum("bcABC,mABC->mbc", phi_phi[d], full)[:d]
    esc = th_heads.separate_kq_set_head_escapes(corrs, phi_phi[d, :, :, d], **init)
    # The same with the residual correlations at the off-manifold floors: where the learned heads end up
    # if they reach them before the next escape (the truth lies between).
    corrs_floor = phi_y[d][None] - np.einsum("bcABC,mABC->mbc", phi_phi[d], floor_tensors)[:d]
    esc_floor = th_heads.separate_kq_set_head_escapes(corrs_floor, phi_phi[d, :, :, d], **init)
    return {"plateaus_set": levels, "floors_set": floors, "plateaus_set_se": se,
            "set_escape_times": esc.times, "set_escape_dirs": esc.directions, "set_escape_times_floor": esc_floor.times}


def reading_bias(lam, n_context: int, time_factor: float, levels, t_read, events) -> np.ndarray:
    """Relative bias of each plateau reading from its fixed point: the plateau is left before converged.

    Leading order of the depth-3 mode ODE du/dt = 3u^{4/3}(s − ρu) (``theory.attention_icl``, paper's 1/N
    units, s = λ², ρ from ``mode_moments``; direction order largest λ first):
      * the next head has started: u^{−1/3} falls at rate s and is (u*/2)^{−1/3} at its drop (u* = s/ρ),
        so at the reading, Δt before the drop, x = u/u* = (2^{1/3} + s u*^{1/3} Δt)^{−3}, and the loss is
        already lower by (2x − x²) × that drop;
      * the last head has not settled: from half learned (¼ of its drop left) it relaxes at the linear rate
        κ = 3ρu*^{4/3} = 3s^{4/3}ρ^{−1/3}, so e^{−2κΔt}/4 of its drop is left a time Δt after its drop.
    GD's contraction per step (1 − ηκ) is faster than the flow's e^{−ηκ}, so the flow's tail is an upper
    estimate for GD (the Euler error of the plateau itself is nil: GD's fixed points are the flow's).
    levels: (D+1,) fixed-point losses; t_read: (D+1,) reading times; events: (D,) the run's drop times
    (times as simulated; time_factor converts them to the paper's 1/N model, ``paper_scale``).
    Returns (D+1,) bias / level (our derivation)."""
    tf = time_factor
    s, rho = th.mode_moments(lam, n_context=n_context)
    order = th.separate_kq_drop_order(lam)
    drops = -np.diff(th.separate_kq_plateau_losses(lam, n_context=n_context))
    out = np.zeros(len(levels))
    for k in range(len(levels)):
        bias = 0.0
        if k < len(events):
            d, dt = order[k], max(0.0, (events[k] - t_read[k]) * tf)
            x = (2 ** (1 / 3) + s[d] * (s[d] / rho[d]) ** (1 / 3) * dt) ** -3
            bias += drops[k] * (2 * x - x * x)
        if k >= 1:
            d, dt = order[k - 1], max(0.0, (t_read[k] - events[k - 1]) * tf)
            bias += 0.25 * drops[k - 1] * np.exp(-6.0 * s[d] ** (4 / 3) * rho[d] ** (-1 / 3) * dt)
        out[k] = bias / levels[k]
    return out
