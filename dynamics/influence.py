"""Bayesian influence from local-posterior draws (Kreer et al. 2025, arXiv 2509.26544;
Lee et al. 2025, "Stagewise data attribution", arXiv 2510.12071).

Upweighting training sample i by δ in the tempered posterior
p_δ(w) ∝ exp(−β Σ_k (1 + δ_k) ℓ_k(w) − γ‖w − w*‖²/2) moves the posterior mean of
any observable φ by dE[φ]/dδ_i = −β Cov(ℓ_i, φ). The Bayesian influence of i on
j is BIF_ij = −Cov(ℓ_i(w), ℓ_j(w)) under the local posterior (the β factor left
out, as in both papers), estimated from SGLD draws of ``dynamics.sgld.sample``.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from dynamics import sgld


@functools.lru_cache(maxsize=32)
def _functions(per_sample_loss):
    """(mean loss, observe) built once per per_sample_loss, so repeated calls (one per
    checkpoint) reuse one compiled sampler."""
    each = jax.vmap(per_sample_loss, in_axes=(None, 0, 0))

    def mean_loss(p, batch):
        return jnp.mean(each(p, *batch))

    def observe(p, data):
        losses = each(p, *data)
        return losses, losses

    return mean_loss, observe


class Influence(NamedTuple):
    """matrix: (n_i, n_j) −Cov(ℓ_i, ℓ_j), the mean over chains of each chain's
    covariance; se: (n_i, n_j) its Monte-Carlo standard error (std across chains/√C);
    mean_loss_i, mean_loss_j: posterior mean per-sample losses; per_chain: (chains,
    n_i, n_j) each chain's estimate (for the error of any average over pairs)."""
    matrix: np.ndarray
    se: np.ndarray
    mean_loss_i: np.ndarray
    mean_loss_j: np.ndarray
    per_chain: np.ndarray


def influence_from_losses(losses_i, losses_j=None) -> Influence:
    """BIF from per-sample losses at the draws: losses_i (chains, draws, n_i),
    losses_j (chains, draws, n_j) (default losses_i). All pairs at once (one
    centred matrix product per chain); needs ≥ 2 chains for the standard error."""
    li = np.asarray(losses_i, dtype=np.float64)
    lj = li if losses_j is None else np.asarray(losses_j, dtype=np.float64)
    if li.ndim != 3 or lj.ndim != 3 or li.shape[:2] != lj.shape[:2]:
        raise ValueError(f"losses must be (chains, draws, samples) with the same chains and draws; got {li.shape}, {lj.shape}")
    if li.shape[0] < 2 or li.shape[1] < 2:
        raise ValueError(f"need ≥ 2 chains and ≥ 2 draws for the influence and its error; got {li.shape[:2]}")
    ci, cj = li - li.mean(axis=1, keepdims=True), lj - lj.mean(axis=1, keepdims=True)
    per_chain = -np.einsum("cti,ctj->cij", ci, cj) / (li.shape[1] - 1)
    se = per_chain.std(axis=0, ddof=1) / math.sqrt(li.shape[0])
    return Influence(per_chain.mean(axis=0), se, li.mean(axis=(0, 1)), lj.mean(axis=(0, 1)), per_chain)


def bayesian_influence(per_sample_loss: Callable, params, train, query=None, *, key: jax.Array,
                       step_size: float, num_chains: int = 8, num_steps: int = 2000,
                       burn_in_fraction: float = 0.25, n_beta: Optional[float] = None, gamma: float = 1.0,
                       batch_size: Optional[int] = None, sampler: str = "sgld") -> Influence:
    """BIF between the training samples (x_i, y_i) of ``train`` and the samples of
    ``query`` (default: train itself) at the checkpoint ``params``.

    per_sample_loss(params, x, y) → scalar (vmapped over samples here); the chains
    sample the local posterior of the mean training loss (``dynamics.sgld.sample``),
    recording every sample's loss at every step. Use a step size from
    ``dynamics.sgld.estimate_llc`` on the same loss.
    """
    if not 0.0 <= burn_in_fraction < 0.9:
        raise ValueError(f"burn_in_fraction={burn_in_fraction!r} is invalid; allowed: a number in [0, 0.9)")
    mean_loss, observe = _functions(per_sample_loss)
    if query is not None:
        each = jax.vmap(per_sample_loss, in_axes=(None, 0, 0))
        observe = lambda p, data: (each(p, *data), each(p, *query))
    run = sgld.sample(mean_loss, params, train, key=key, step_size=step_size, num_chains=num_chains,
                      num_steps=num_steps, n_beta=n_beta, gamma=gamma, batch_size=batch_size, sampler=sampler,
                      observe=observe)
    burn_in = int(burn_in_fraction * num_steps)
    li, lj = run.stats
    return influence_from_losses(li[:, burn_in:], lj[:, burn_in:])
