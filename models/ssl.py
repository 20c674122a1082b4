"""Linear non-contrastive SSL (BYOL / SimSiam / DirectPred) of Tian, Chen & Ganguli 2021 (arXiv 2102.06810).

Params: online W: (n_out, n_in), predictor W_p: (n_out, n_out) (symmetric: the objective reads
(W_p + W_pᵀ)/2, which symmetrises its flow as Assumption 3 asks), EMA target W_a: (n_out, n_in).
Objective (Eq. 1) on views x1, x2 of one x: J = (1/2B) Σ_μ ‖W_p W x1_μ − StopGrad(target x2_μ)‖²,
target = W_a (BYOL) or τW (SimSiam τ = 1; Assumption 1's proportional target).

The SSL flow is not the gradient flow of one loss (stop-gradient, EMA, a predictor rate ratio),
so ``training_loss`` builds a surrogate whose gradient flow dθ/dt = −∇L is exactly Lemma 1
(Eqns. 2-4) with weight decay η:

    L = J(W, W_p^{α_p}, sg(target)) + (η/2)(‖W‖² + ‖W_p‖²) + (β/2)‖W_a − sg(W)‖²,

where W_p^{α_p} = sg(W_p) + α_p(W_p − sg(W_p)) has the value of W_p and α_p times its gradient.
Its value is not J (``objective`` is); ``dynamics.gradient_flow`` / ``dynamics.descend`` run it.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Params(NamedTuple):
    online: jax.Array     # W: (n_out, n_in)
    predictor: jax.Array  # W_p: (n_out, n_out), kept symmetric
    target: jax.Array     # W_a: (n_out, n_in), EMA of W (unused when ema_rate = 0)


def _sym(a):
    return 0.5 * (a + a.T)


def init(key, n_in: int, n_out: int, *, scale: float, predictor_mean: float = 0.0, predictor_scale: float = 0.1) -> Params:
    """Random init: W entries N(0, scale²/n_in) (so F = WWᵀ ≈ scale² I), W_p = predictor_mean·I +
    predictor_scale·(symmetric Gaussian matrix, entries N(0, 1/n_out)), W_a = W."""
    if n_out > n_in:
        raise ValueError(f"n_out={n_out} is invalid; allowed: n_out ≤ n_in (F = WWᵀ of full rank)")
    k1, k2 = jax.random.split(key)
    w = scale * jax.random.normal(k1, (n_out, n_in)) / jnp.sqrt(n_in)
    g = jax.random.normal(k2, (n_out, n_out)) / jnp.sqrt(n_out)
    wp = predictor_mean * jnp.eye(n_out) + predictor_scale * (g + g.T) / jnp.sqrt(2.0)
    return Params(w, wp, w)


def init_aligned(key, n_in: int, *, p0, s0) -> tuple:
    """W_p and F = WWᵀ sharing a random eigenbasis U: W = U diag(√s0) Vᵀ, W_p = U diag(p0) Uᵀ, W_a = W.

    p0, s0: (n_out,) predictor and F eigenvalues (s0 ≥ 0). Returns (params, U: (n_out, n_out)); the
    flow keeps W_p and F diagonal in U (Eqns. 11-12), read them with ``aligned_modes(params, U)``."""
    p0, s0 = jnp.asarray(p0, dtype=float), jnp.asarray(s0, dtype=float)
    n_out = p0.shape[0]
    if n_out > n_in:
        raise ValueError(f"len(p0)={n_out} is invalid; allowed: ≤ n_in={n_in}")
    ku, kv = jax.random.split(key)
    u, _ = jnp.linalg.qr(jax.random.normal(ku, (n_out, n_out)))
    v, _ = jnp.linalg.qr(jax.random.normal(kv, (n_in, n_out)))
    w = (u * jnp.sqrt(s0)) @ v.T
    return Params(w, (u * p0) @ u.T, w), u


def correlation(params: Params) -> jax.Array:
    """F = W X Wᵀ = WWᵀ (X = I, Assumption 2): (n_out, n_out), the predictor's input correlation."""
    return params.online @ params.online.T


def directpred_predictor(w, *, epsilon: float = 0.0) -> jax.Array:
    """DirectPred (Eq. 18): W_p = U diag(√s_j + ε max_k s_k) Uᵀ from F = WWᵀ = U diag(s) Uᵀ.

    Here F is the population correlation (no moving average, Eq. 19 with ρ = 0) and gradients do
    not flow through it."""
    s, u = jnp.linalg.eigh(jax.lax.stop_gradient(w @ w.T))
    s = jnp.maximum(s, 0.0)
    return (u * (jnp.sqrt(s) + epsilon * jnp.max(s))) @ u.T


def population_objective(params: Params, predictor, target, noise_var) -> jax.Array:
    """J = ½E‖W_p W x1 − target x2‖² for x ~ N(0, I), x1,2 = x + σξ1,2 (Assumption 2):
    ½[(1 + σ²)‖W_p W‖² − 2 tr(W_p W targetᵀ) + (1 + σ²)‖target‖²]."""
    c = 1.0 + noise_var
    pw = predictor @ params.online
    return 0.5 * (c * jnp.sum(pw**2) - 2.0 * jnp.sum(pw * target) + c * jnp.sum(target**2))


def sampled_objective(params: Params, predictor, target, views) -> jax.Array:
    """J on a batch of view pairs ``views = (x1, x2)``, each (B, n_in): (1/2B) Σ‖W_p W x1 − target x2‖²."""
    x1, x2 = views
    r = x1 @ (predictor @ params.online).T - x2 @ target.T
    return 0.5 * jnp.mean(jnp.sum(r**2, axis=-1))


def training_loss(*, weight_decay, noise_var=0.0, tau=1.0, alpha_p=1.0, ema_rate=0.0, directpred=False,
                  symmetric=True, epsilon: float = 0.0, sampled: bool = False):
    """``loss(params, data)`` whose gradient flow is Lemma 1 (Eqns. 2-4) with weight decay η
    (module docstring). ``ema_rate`` β > 0: BYOL, W_a follows Ẇ_a = β(W − W_a) (Eq. 4);
    β = 0: the target is τW (SimSiam at τ = 1). ``directpred``: the predictor is set from F
    by Eq. 18 at every evaluation (the predictor parameter is then not read; only weight decay
    moves it). ``symmetric=False`` reads W_p as it is (Lemma 1 without Assumption 3; Theorem 1's
    balance is exact only then). ``sampled`` (static): data = (x1, x2) views, each (B, n_in) (SGD); else the
    population objective with augmentation variance ``noise_var`` (data unused). Every other
    argument may be a traced scalar (``jnp.where`` picks the target and the predictor)."""

    def loss(params: Params, data):
        wp = jnp.where(symmetric, _sym(params.predictor), params.predictor)
        trained = jax.lax.stop_gradient(wp) + alpha_p * (wp - jax.lax.stop_gradient(wp))
        predictor = jnp.where(directpred, directpred_predictor(params.online, epsilon=epsilon), trained)
        target = jax.lax.stop_gradient(jnp.where(ema_rate > 0, params.target, tau * params.online))
        j = sampled_objective(params, predictor, target, data) if sampled else \
            population_objective(params, predictor, target, noise_var)
        decay = 0.5 * weight_decay * (jnp.sum(params.online**2) + jnp.sum(params.predictor**2))
        ema_term = 0.5 * ema_rate * jnp.sum((params.target - jax.lax.stop_gradient(params.online)) ** 2)
        return j + decay + ema_term

    return loss


def spectra(params: Params, *, noise_var=0.0, tau=1.0, alpha_p=1.0, weight_decay=0.0) -> dict:
    """What Theorem 3 and Eqns. 11-12 talk about, for a symmetric predictor:

    s: (n_out,) eigenvalues of F (ascending); p: (n_out,) W_p's Rayleigh quotients u_jᵀW_p u_j on F's
    eigenvectors (= its eigenvalues once aligned); commutator: ‖[F, W_p]‖_F; commutator_rel:
    that over ‖F‖_F‖W_p‖_F; lambda_min_k: λ_min of K = (1 + σ²)(α_p F/2 + W_p²) − τW_p + (3/2)ηI (Eq. 9);
    imbalance: F − W_pᵀW_p/α_p: (n_out, n_out), which Theorem 1 (Eq. 5) says is e^{−2ηt}C (for an
    unsymmetrised predictor); asymmetry: ‖W_p − W_pᵀ‖_F/‖W_p‖_F of the raw parameter. For an asymmetric
    W_p the other entries describe its symmetric part."""
    f, wp, raw = correlation(params), _sym(params.predictor), params.predictor
    s, u = jnp.linalg.eigh(f)
    comm = f @ wp - wp @ f
    k = (1.0 + noise_var) * (0.5 * alpha_p * f + wp @ wp) - tau * wp + 1.5 * weight_decay * jnp.eye(f.shape[0])
    c = jnp.linalg.norm(comm)
    return {"s": s, "p": jnp.einsum("ij,ik,kj->j", u, wp, u), "commutator": c,
            "commutator_rel": c / (jnp.linalg.norm(f) * jnp.linalg.norm(wp) + 1e-300),
            "lambda_min_k": jnp.linalg.eigvalsh(k)[0], "imbalance": f - raw.T @ raw / alpha_p,
            "asymmetry": jnp.linalg.norm(raw - raw.T) / (jnp.linalg.norm(raw) + 1e-300)}


def aligned_modes(params: Params, basis) -> dict:
    """p_j = u_jᵀ W_p u_j and s_j = u_jᵀ F u_j on a fixed basis ``basis``: (n_out, n_out) (columns u_j),
    e.g. the U of ``init_aligned``: the mode variables of Eqns. 11-12 without re-sorting eigenvalues."""
    f, wp = correlation(params), _sym(params.predictor)
    return {"p": jnp.einsum("ij,ik,kj->j", basis, wp, basis), "s": jnp.einsum("ij,ik,kj->j", basis, f, basis)}
