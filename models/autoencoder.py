"""Nonnegative, energy-regularised autoencoders of low-dimensional sources
(Dorrell, Hsu et al., ICLR 2025, arXiv 2410.06232, Sec. 2 and App. on the
autoencoding experiments; authors' code github.com/kylehkhsu/modular).

Params are a dict of arrays (sources d_s, latents d_z, MLP hidden width h)::

    linear: {"w_in": (d_z, d_s), "b_in": (d_z,), "w_out": (d_s, d_z), "b_out": (d_s,)}
    mlp:    {"w_in": (h, d_s), "b_in": (h,), "w_z": (d_z, h), "b_z": (d_z,),
             "w_dec": (h, d_z), "b_dec": (h,), "w_out": (d_s, h), "b_out": (d_s,)}

``encode`` gives the code z: (P, d_z) = W_in s + b_in (linear) or
W_z relu(W_in s + b_in) + b_z (mlp, one ReLU hidden layer each way, as their
``MLPAutoencoder`` with two MLP layers); ``decode`` maps it back. The code is
made nonnegative by a penalty on relu(−z), as the paper's experiments do.

Loss (their App. loss terms, in our conventions; batch = (s: (P, d_s),
weight: (P,) summing to 1, so padded samples of weight 0 drop out)::

    L = ½ Σ_μ w_μ ‖s_μ − ŝ_μ‖²  +  λ_act ½ Σ_μ w_μ ‖z_μ‖²  +  λ_neg Σ_μ w_μ Σ_j relu(−z_jμ)
        + λ_w ½ Σ_W ‖W‖²_F        (weight matrices only, biases free)

Modularity (``modularity``). The Jacobian J_μ = ∂z/∂s at each sample gives the
share of neuron j's variance that source i drives, C_ji = Σ_μ w_μ J_jiμ² Var(s_i);
a neuron is single-source when max_i C_ji / Σ_i C_ji = 1. Over the active neurons
(range of z_j above a tenth of the largest range, the authors' ``z_active``
rule) the score is (mean share − 1/d_s)/(1 − 1/d_s): 1 for a modular code, 0 when
every neuron weighs all sources equally (normalised as their InfoM). For the
linear code J = W_in, so C_ji = W_ji² Var(s_i).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def init_linear(key, n_sources: int, n_latent: int, *, init_scale: float):
    """Weights N(0, init_scale²/fan_in) (the authors' ``small_init``), biases 0."""
    k1, k2 = jax.random.split(key)
    return {"w_in": init_scale * jax.random.normal(k1, (n_latent, n_sources)) / jnp.sqrt(n_sources),
            "b_in": jnp.zeros(n_latent),
            "w_out": init_scale * jax.random.normal(k2, (n_sources, n_latent)) / jnp.sqrt(n_latent),
            "b_out": jnp.zeros(n_sources)}


def init_mlp(key, n_sources: int, n_latent: int, hidden: int, *, init_scale: float):
    """One ReLU hidden layer in the encoder and one in the decoder; same init rule."""
    ks = jax.random.split(key, 4)
    shapes = {"w_in": (hidden, n_sources), "w_z": (n_latent, hidden), "w_dec": (hidden, n_latent),
              "w_out": (n_sources, hidden)}
    params = {name: init_scale * jax.random.normal(k, shape) / jnp.sqrt(shape[1])
              for k, (name, shape) in zip(ks, shapes.items())}
    params.update(b_in=jnp.zeros(hidden), b_z=jnp.zeros(n_latent), b_dec=jnp.zeros(hidden),
                  b_out=jnp.zeros(n_sources))
    return params


def encode(params, s):
    """s: (P, d_s) -> z: (P, d_z)."""
    h = s @ params["w_in"].T + params["b_in"]
    if "w_z" not in params:
        return h
    return jax.nn.relu(h) @ params["w_z"].T + params["b_z"]


def decode(params, z):
    """z: (P, d_z) -> ŝ: (P, d_s)."""
    if "w_dec" in params:
        z = jax.nn.relu(z @ params["w_dec"].T + params["b_dec"])
    return z @ params["w_out"].T + params["b_out"]


def loss_terms(params, batch):
    """The four terms of L before their λs: (reconstruction, activity, negativity, weights)."""
    s, weight = batch
    z = encode(params, s)
    s_hat = decode(params, z)
    rec = 0.5 * jnp.sum(weight * jnp.sum((s - s_hat) ** 2, axis=1))
    act = 0.5 * jnp.sum(weight * jnp.sum(z ** 2, axis=1))
    neg = jnp.sum(weight * jnp.sum(jax.nn.relu(-z), axis=1))
    wts = 0.5 * sum(jnp.sum(v ** 2) for k, v in params.items() if k.startswith("w_"))
    return rec, act, neg, wts


def make_loss(lam_act: float, lam_neg: float, lam_w: float):
    """loss(params, batch) = rec + λ_act act + λ_neg neg + λ_w wts (module docstring)."""
    def loss(params, batch):
        rec, act, neg, wts = loss_terms(params, batch)
        return rec + lam_act * act + lam_neg * neg + lam_w * wts
    return loss


def modularity(params, s, weight):
    """Single-source-per-neuron score of the code (module docstring).

    Args: s: (P, d_s); weight: (P,) summing to 1.
    Returns: (score, share: (d_z,), active: (d_z,) bool)."""
    jac = jax.vmap(jax.jacfwd(lambda x: encode(params, x[None])[0]))(s)          # (P, d_z, d_s)
    mean = weight @ s
    var = weight @ (s - mean) ** 2
    contrib = jnp.einsum("p,pji->ji", weight, jac ** 2) * var                     # (d_z, d_s)
    share = jnp.max(contrib, axis=1) / jnp.maximum(jnp.sum(contrib, axis=1), jnp.finfo(s.dtype).tiny)
    z = encode(params, s)
    kept = weight[:, None] > 0
    span = jnp.max(jnp.where(kept, z, -jnp.inf), axis=0) - jnp.min(jnp.where(kept, z, jnp.inf), axis=0)
    active = span > 0.1 * jnp.max(span)
    d_s = s.shape[1]
    mean_share = jnp.sum(jnp.where(active, share, 0.0)) / jnp.maximum(jnp.sum(active), 1)
    return (mean_share - 1 / d_s) / (1 - 1 / d_s), share, active
