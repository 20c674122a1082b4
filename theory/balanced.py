"""Exact dynamics of λ-balanced two-layer linear networks (white inputs).

Braun, Dominé, Fitzgerald & Saxe, NeurIPS 2022, "Exact learning dynamics of deep
linear networks with prior knowledge"; Dominé et al. 2025,
"From lazy to rich" (arXiv 2409.14623).

Setting (docs/design.md conventions): f(x) = W2 W1 x, w1: (hidden, in), w2: (out, hidden),
loss L = (1/2P) Σ_μ ‖y_μ − W2W1x_μ‖² with Σxx = XᵀX/P = I (white inputs),
Σyx = YᵀX/P: (out, in), gradient flow τ dW/dt = −∂L/∂W. With E = Σyx − W2W1,

    τ dW1/dt = W2ᵀE,    τ dW2/dt = E W1ᵀ,

and W2ᵀW2 − W1W1ᵀ = λ I_hidden is conserved. Stack Q = [W1ᵀ; W2]: (in+out, hidden),

    QQᵀ = [[W1ᵀW1, W1ᵀW2ᵀ], [W2W1, W2W2ᵀ]].

The λ-balance turns the cubic terms into ones in Q: with J = diag(I_in, −I_out),
[[0, W1ᵀW2ᵀ], [W2W1, 0]] Q = ½ QQᵀQ + (λ/2) J Q, hence, *exactly*,

    τ dQ/dt = F Q − ½ Q QᵀQ,     F = [[−(λ/2) I_in, Σyxᵀ], [Σyx, (λ/2) I_out]],

so X = QQᵀ obeys the matrix Riccati equation

    τ dX/dt = F X + X F − X².

Its solution (checked by differentiating; B' = AᵀA below) is, with s = t/τ,

    X(t) = A (I_h + Q0ᵀ K Q0)⁻¹ Aᵀ,   A = e^{Fs} Q0,   K = ∫₀^s e^{2Fu} du,

and B = I_h + Q0ᵀKQ0 ⪰ I_h is always invertible: no condition on F (λ = 0 with
rank-deficient Σyx has zero eigenvalues), on hidden, or on Q0. With F = O diag(f) Oᵀ,
K = O diag(k) Oᵀ, k_i = (e^{2f_i s} − 1)/(2f_i) (→ s when f_i = 0). The papers
write K = ½F⁻¹(e^{2Fs} − I), which needs F invertible; the form above does not.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _log_k(f, s):
    """log k with k = (e^{2fs} − 1)/(2f) = s·(e^y − 1)/y, y = 2fs; s > 0, any f (f = 0 gives log s)."""
    y = 2.0 * f * s
    ay = jnp.abs(y)
    safe = jnp.where(ay == 0, 1.0, ay)
    tail = jnp.where(ay == 0, 0.0, jnp.log(-jnp.expm1(-safe) / safe))
    return jnp.log(s) + jnp.maximum(y, 0.0) + tail


def _step(s, f, z):
    """Exact flow map in F's eigenbasis: Z(s) with X̃(s) = Z(s)Z(s)ᵀ from Z(0) = z, one time s > 0.

    With S = diag(√k) and W = S Z (Z = OᵀQ0), X̃ = D W (I + WᵀW)⁻¹ Wᵀ D, D = diag(e^{fs}/√k).
    The middle factor is U_b U_bᵀ, U_b the W-rows of the orthonormal factor of
    G = [I_h; W] (G = U R, GᵀG = B). G is scaled by one number (U is unchanged)
    against overflow and its rows sorted by decreasing size, which makes
    Householder QR row-wise stable on the exponentially graded rows.
    """
    h = z.shape[1]
    log_k = _log_k(f, s)
    c = 0.5 * jnp.max(log_k)
    g = jnp.concatenate([jnp.exp(-c) * jnp.eye(h, dtype=z.dtype), jnp.exp(0.5 * log_k - c)[:, None] * z])
    size = jnp.concatenate([jnp.full((h,), -c), 0.5 * log_k - c + 0.5 * jnp.log(jnp.sum(z * z, axis=1))])
    order = jnp.argsort(-size)
    u, _ = jnp.linalg.qr(g[order], mode="reduced")
    u = jnp.zeros_like(u).at[order].set(u)
    d = jnp.exp(f * s - 0.5 * log_k)  # e^{fs}/√k: → √(2f) (f > 0), → 0 (f < 0), 1/√s (f = 0)
    return d[:, None] * u[h:]


def _flow(s, f, z):
    """Z(s) for one s > 0, as m exact steps of s/m (the Riccati flow is a semigroup).

    m = ⌈max(f, 0)·s / c⌉ with e^{±2c} inside the float range (c ≈ 284 in f64), so the rows of G
    (from e^{−max f·s/m} to 1) stay representable; m = 1 unless f_max·s ≳ 280 (f64).
    """
    limit = 0.4 * jnp.log(jnp.finfo(z.dtype).max)
    m = jnp.maximum(1, jnp.ceil(jnp.maximum(jnp.max(f), 0.0) * s / limit)).astype(jnp.int32)
    return jax.lax.fori_loop(0, m, lambda _, zi: _step(s / m.astype(s.dtype), f, zi), z)


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def qqt(t, *, sigma_yx, q0, lam, tau=1.0):
    """Exact QQᵀ(t) of a λ-balanced two-layer linear network with white inputs.

    Solves the Riccati equation (Braun et al., NeurIPS 2022; Dominé et al. 2025,
    arXiv 2409.14623)

        τ dX/dt = F X + X F − X²,   X = QQᵀ,  Q = [W1ᵀ; W2],
        F = [[−(λ/2) I_in, Σyxᵀ], [Σyx, (λ/2) I_out]],

    for L = (1/2P) Σ‖y − W2W1x‖², Σxx = I, τ dW/dt = −∂L/∂W, in closed form

        X(t) = e^{Ft/τ} Q0 [I_h + Q0ᵀ (∫₀^{t/τ} e^{2Fu} du) Q0]⁻¹ Q0ᵀ e^{Ft/τ},

    through the eigendecomposition of F (no ODE solve; see the module docstring).

    Args:
      t: times ≥ 0, scalar or any shape (units of t, not t/τ).
      sigma_yx: (out, in) input-output correlation Σyx = YᵀX/P.
      q0: (in+out, hidden) = [W1ᵀ; W2] at t = 0, λ-balanced: W2ᵀW2 − W1W1ᵀ = λ I_hidden
        (checked when q0 is concrete; any hidden width, e.g. from
        ``models.linear.init_lambda_balanced``).
      lam: the balance λ (positive, negative or zero).
      tau: time constant τ > 0.

    Returns:
      t.shape + (in+out, in+out) array QQᵀ(t) = [[W1ᵀW1, W1ᵀW2ᵀ], [W2W1, W2W2ᵀ]].

    Exact up to rounding for every t ≥ 0: rows growing like e^{f t/τ} are rescaled, and
    when f_max t/τ ≳ 280 (f64) the flow map is applied in ⌈f_max t/(280τ)⌉ exact pieces
    (f_max = max(√(s_α² + λ²/4), |λ|/2), s_α the singular values of Σyx).
    Works under ``jax.jit``, ``jax.vmap`` and forward-mode autodiff (the pieces are a
    ``lax.fori_loop`` with a traced count, so not reverse mode); the balance check is
    skipped on tracers.
    """
    q = q_factor(t, sigma_yx=sigma_yx, q0=q0, lam=lam, tau=tau)
    return jnp.einsum("...ih,...jh->...ij", q, q)


def q_factor(t, *, sigma_yx, q0, lam, tau=1.0):
    """A factor Q(t): t.shape + (in+out, hidden) with Q(t)Q(t)ᵀ = ``qqt(t, ...)``.

    Equals the network's [W1ᵀ; W2](t) up to an orthogonal rotation of the hidden
    units, Q(t) R(t), so it stays λ-balanced: Q(t)ᵀ J Q(t) = λ I, J = diag(−I_in, I_out).
    Q(t) = e^{Ft/τ} Q0 B^{−1/2} with B as in the module docstring (Braun et al., NeurIPS 2022;
    Dominé et al. 2025, arXiv 2409.14623; the factor form is our derivation: QQᵀ = ``qqt``).
    Arguments and conventions as in ``qqt``.
    """
    sigma_yx, q0, n_in = _check_shapes(sigma_yx, q0, tau)
    if _is_concrete(q0) and _is_concrete(lam):
        _check_balance(q0, n_in, lam)
    if _is_concrete(t) and np.any(np.asarray(t) < 0):
        raise ValueError(f"t must be ≥ 0 (the flow runs forward from q0 at t = 0), got min t = {np.min(t)}")
    return _q_factor(jnp.asarray(t, q0.dtype), sigma_yx, q0, lam, tau)


@jax.jit
def _q_factor(t, sigma_yx, q0, lam, tau):
    f, o = jnp.linalg.eigh(driving_matrix(sigma_yx, lam=lam))
    z = o.T @ q0
    s = (t / tau).reshape(-1)
    positive = s > 0
    zs = jax.vmap(lambda si: _flow(si, f, z))(jnp.where(positive, s, 1.0))
    q = jnp.where(positive[:, None, None], jnp.einsum("ij,tjh->tih", o, zs), q0[None])
    return q.reshape(t.shape + q0.shape)


def _check_shapes(sigma_yx, q0, tau):
    """Validated (sigma_yx, q0, n_in), both cast to one float dtype."""
    sigma_yx, q0 = jnp.asarray(sigma_yx), jnp.asarray(q0)
    if sigma_yx.ndim != 2:
        raise ValueError(f"sigma_yx must be (out, in), got shape {sigma_yx.shape}")
    n_out, n_in = sigma_yx.shape
    if q0.ndim != 2 or q0.shape[0] != n_in + n_out:
        raise ValueError(
            f"q0 must be (in+out, hidden) = ({n_in + n_out}, hidden) = [W1ᵀ; W2] for sigma_yx of shape "
            f"(out, in) = {sigma_yx.shape}, got shape {q0.shape}"
        )
    if _is_concrete(tau) and not float(tau) > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    dtype = jnp.result_type(sigma_yx, q0, float)
    return sigma_yx.astype(dtype), q0.astype(dtype), n_in


def driving_matrix(sigma_yx, *, lam):
    """F = [[−(λ/2) I_in, Σyxᵀ], [Σyx, (λ/2) I_out]]: (in+out, in+out), symmetric.

    Its eigenvalues are ±√(s_α² + λ²/4) per singular value s_α of Σyx, and −λ/2
    (in − r times), +λ/2 (out − r times) on the null spaces. The F of the Riccati equation
    τ dQQᵀ/dt = F QQᵀ + QQᵀ F − (QQᵀ)² (Braun et al., NeurIPS 2022; Dominé et al. 2025,
    arXiv 2409.14623; derived in the module docstring).
    """
    sigma_yx = jnp.asarray(sigma_yx)
    n_out, n_in = sigma_yx.shape
    half = 0.5 * jnp.asarray(lam, sigma_yx.dtype)
    top = jnp.concatenate([-half * jnp.eye(n_in, dtype=sigma_yx.dtype), sigma_yx.T], axis=1)
    bottom = jnp.concatenate([sigma_yx, half * jnp.eye(n_out, dtype=sigma_yx.dtype)], axis=1)
    return jnp.concatenate([top, bottom], axis=0)


def _check_balance(q0, n_in, lam):
    w1t, w2 = np.asarray(q0[:n_in]), np.asarray(q0[n_in:])
    gram = w2.T @ w2 - w1t.T @ w1t
    resid = np.max(np.abs(gram - float(lam) * np.eye(gram.shape[0])), initial=0.0)
    scale = max(1.0, float(np.max(np.abs(w1t), initial=0.0)) ** 2, float(np.max(np.abs(w2), initial=0.0)) ** 2, abs(float(lam)))
    tol = 100.0 * np.sqrt(np.finfo(q0.dtype).eps) * scale
    if resid > tol:
        raise ValueError(
            f"q0 = [W1ᵀ; W2] must be λ-balanced, W2ᵀW2 − W1W1ᵀ = λ I with lam={float(lam)}; "
            f"max deviation {resid:.3g} > tolerance {tol:.3g}"
        )


def network_map(qqt_t, n_in):
    """The network map W2W1 (out, in): the lower-left block of QQᵀ; qqt_t: (..., in+out, in+out).

    QQᵀ = [[W1ᵀW1, W1ᵀW2ᵀ], [W2W1, W2W2ᵀ]] for Q = [W1ᵀ; W2] (module docstring; Braun et al. 2022)."""
    return qqt_t[..., n_in:, :n_in]
