"""Rich vs lazy learning in Kunin et al.'s single-neuron model (arXiv 2406.06158, Sec. 3).

Model: f(x) = a wᵀx with a scalar a and w: (d,), i.e. a two-layer linear
network with one hidden unit (``models.linear`` with sizes (d, 1, 1): W1 = wᵀ,
W2 = a). Write β = a w for the function it computes.

Conventions (ours, docs/design.md). Loss L = (1/2P) Σ_μ (y_μ − a wᵀx_μ)², so with
Σxx = XᵀX/P and Σyx = Xᵀy/P, L = ½ E y² − βᵀΣyx + ½ βᵀΣxx β. Gradient flow
τ dθ/dt = −∂L/∂θ for θ = (a, w), one τ for both layers. Kunin et al. write
the same loss without the 1/P (their XᵀX, Xᵀy are our Σxx, Σyx: the published
code uses XX = I, XY = β*) and give each layer its own learning rate η_a, η_w;
ours is their η_a = η_w = 1/τ, and then their conserved quantity
δ = η_w a² − η_a ‖w‖² is (1/τ)·(a² − ‖w‖²). Here δ means

    δ = a² − ‖w‖²            (conserved: τ d(a²)/dt = −2a wᵀ(Σxxβ − Σyx) = τ d‖w‖²/dt)

which is the ``R`` of their code. δ = 0 is balanced (from a small init: rich,
sigmoidal learning); for δ ≫ s the tangent kernel M = a² I + w wᵀ stays ≈ δ I
(lazy); for δ ≪ −s it is ≈ w wᵀ, rank one, and turns as w turns, so the
kernel distance can be large there although the learning is slow.

Exact solution (white inputs Σxx = I, β* = Σyx, s = ‖β*‖ > 0). The
ratio ν = wᵀβ*/a obeys the closed Riccati equation (Kunin et al. Sec. 3)

    τ dν/dt = s² − ν(ν + δ),

and 1/a² obeys a linear ODE driven by ν, so with u = t/τ, c = √(δ² + 4s²),
ν₊ = (c − δ)/2, λ = (c + δ)/2 (a² at the minimum), m = e^{−cu}, and splitting
w0 = p0 β*/s + q0 (q0 ⊥ β*):

    h(u)  = a0 + (p0 s − a0 ν₊)(1 − m)/c
    N²(u) = 1 + 2 ∫₀ᵘ e^{2λu'} h(u')² du'          (elementary: three exponentials)
    a(u)  = h e^{λu} / N
    wᵀβ*(u) = e^{λu} (ν₊ h + (p0 s − a0 ν₊) m) / N
    q(u)  = q0 / N                                  (the part of w ⊥ β* only shrinks)

derived here (not copied from the paper's φ/θ parametrisation, which needs
separate branches for δ ≷ 0); it is smooth through δ = 0 and through a = 0
(possible when δ < 0) and is checked against float64 gradient flow in
tests/test_rich_lazy.py. Everything is evaluated with e^{−2λu}-scaled
factors, so long times do not overflow.

NTK of this model: ∂f/∂a = wᵀx, ∂f/∂w = a x, so Θ(x, x') = xᵀ M x' with
M = a² I + w wᵀ (``single_neuron_kernel``); on data, K = X M Xᵀ. Kernel
distance (Fort et al. 2020, arXiv 2010.15110; Kunin et al. Fig. 2):

    S(t) = 1 − ⟨K0, Kt⟩_F / (‖K0‖_F ‖Kt‖_F).
"""
from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from theory._domain import positive, require


class SingleNeuron(NamedTuple):
    """Single-neuron state over time: a: (*t.shape,), w: (*t.shape, d)."""

    a: jnp.ndarray
    w: jnp.ndarray


def conserved_delta(a, w):
    """δ = a² − ‖w‖² (Kunin et al. 2024, arXiv 2406.06158, with η_a = η_w); w: (..., d)."""
    return jnp.asarray(a) ** 2 - jnp.sum(jnp.asarray(w) ** 2, axis=-1)


def single_neuron_init(beta0, delta):
    """(a0, w0) with a0 w0 = β0, a0² − ‖w0‖² = δ and a0 > 0 (Kunin et al. code's ``coordinates``).

    a0² = (δ + √(δ² + 4‖β0‖²))/2, w0 = β0/a0. beta0: (d,), nonzero unless δ > 0.
    """
    beta0 = jnp.asarray(beta0)
    norm2 = jnp.sum(beta0**2)
    root = jnp.sqrt(delta**2 + 4 * norm2)
    # the two algebraically equal forms of a0², each free of cancellation on its side of δ = 0
    a2 = jnp.where(delta >= 0, (delta + root) / 2, 2 * norm2 / (root - delta))
    a0 = jnp.sqrt(a2)
    return a0, beta0 / a0


def _scaled_integrals(u, delta, c, lam, nu_plus):
    """e^{−2λu} ∫₀ᵘ e^{2λu'} m^k du' for k = 0, 1, 2 (m = e^{−cu'}), overflow-free.

    Exponents 2λ − kc are 2λ, δ and −2ν₊; the δ = 0 case of k = 1 is the limit u e^{−cu}.
    """
    psi0 = -jnp.expm1(-2 * lam * u) / (2 * lam)
    abs_d = jnp.abs(delta)
    safe = jnp.where(abs_d > 0, abs_d, 1.0)
    ratio = jnp.where(abs_d > 0, -jnp.expm1(-safe * u) / safe, u)
    psi1 = jnp.exp(-(c + jnp.minimum(delta, 0.0)) * u) * ratio
    psi2 = jnp.exp(-2 * lam * u) * (-jnp.expm1(-2 * nu_plus * u)) / (2 * nu_plus)
    return psi0, psi1, psi2


def single_neuron_solution(t, *, a0, w0, beta_star, tau=1.0) -> SingleNeuron:
    """Exact gradient flow of f(x) = a wᵀx on white inputs (Kunin et al. 2024, arXiv 2406.06158, Sec. 3).

    Solves τ dw/dt = −a(aw − β*), τ da/dt = −wᵀ(aw − β*) (our L and τ with
    Σxx = I, Σyx = β*); the closed form is in the module docstring.

    Args:
      t: times ≥ 0, any shape. a0: scalar. w0: (d,). beta_star: (d,), nonzero.
      tau: time constant τ > 0.
    Returns:
      SingleNeuron(a: t.shape, w: t.shape + (d,)).
    Out-of-domain arguments (τ ≤ 0, t < 0, β* = 0, shapes) raise ValueError
    (values unchecked when traced).
    """
    w0, beta_star = jnp.asarray(w0), jnp.asarray(beta_star)
    if w0.ndim != 1 or beta_star.shape != w0.shape:
        raise ValueError(f"w0.shape={w0.shape}, beta_star.shape={beta_star.shape} are invalid; allowed: both (d,)")
    positive("tau", tau)
    require("t ≥ 0 (the flow runs forward from the init at t = 0)", lambda t: t >= 0, t=t)
    require("a nonzero beta_star (the target direction e = β*/‖β*‖ is undefined at 0)",
            lambda beta_star: np.any(beta_star != 0), beta_star=beta_star)
    s = jnp.sqrt(jnp.sum(beta_star**2))
    e = beta_star / s
    p0 = jnp.dot(w0, e)
    q0 = w0 - p0 * e
    delta = a0**2 - jnp.sum(w0**2)
    c = jnp.sqrt(delta**2 + 4 * s**2)
    # λ = (c + δ)/2 and ν₊ = (c − δ)/2 with λ ν₊ = s²: take each from the cancellation-free side
    lam = jnp.where(delta >= 0, (c + delta) / 2, 2 * s**2 / (c - delta))
    nu_plus = jnp.where(delta <= 0, (c - delta) / 2, 2 * s**2 / (c + delta))

    u = jnp.asarray(t, dtype=jnp.result_type(float)) / tau
    m = jnp.exp(-c * u)
    kick = p0 * s - a0 * nu_plus  # a0 (ν0 − ν₊), finite even where a0 = 0
    alpha = a0 + kick / c  # h = alpha − gamma m
    gamma = kick / c
    psi0, psi1, psi2 = _scaled_integrals(u, delta, c, lam, nu_plus)
    scaled_n2 = jnp.exp(-2 * lam * u) + 2 * (alpha**2 * psi0 - 2 * alpha * gamma * psi1 + gamma**2 * psi2)
    n_scaled = jnp.sqrt(scaled_n2)  # N e^{−λu}

    h = alpha - gamma * m
    a = h / n_scaled
    p = (nu_plus * h + kick * m) / (s * n_scaled)
    q = jnp.exp(-lam * u)[..., None] / n_scaled[..., None] * q0
    return SingleNeuron(a, p[..., None] * e + q)


def single_neuron_kernel(a, w):
    """M = a² I + w wᵀ: the NTK Θ(x, x') = xᵀ M x' of f = a wᵀx. a: (...), w: (..., d) → (..., d, d).

    ∇_w f = a x and ∂_a f = wᵀx give Θ = a² xᵀx' + (wᵀx)(wᵀx') (Kunin et al. 2024,
    arXiv 2406.06158, Sec. 3, the single-neuron model's kernel)."""
    a, w = jnp.asarray(a), jnp.asarray(w)
    eye = jnp.eye(w.shape[-1], dtype=w.dtype)
    return (a**2)[..., None, None] * eye + w[..., :, None] * w[..., None, :]


def kernel_distance(k0, kt, *, kernel_axes=None):
    """S = 1 − ⟨K0, Kt⟩_F / (‖K0‖_F ‖Kt‖_F) over the last ``kernel_axes`` axes (Fort et al. 2020,
    arXiv 2010.15110; used by Kunin et al. 2024, arXiv 2406.06158, Fig. 2).

    0 when the kernel only rescales (lazy), up to 1 for orthogonal kernels; k0, kt broadcast
    over the leading (batch) axes.
    kernel_axes: 2 for kernel matrices (..., n, n) (or M (..., d, d)); 4 for empirical NTKs
      (..., n, n, out, out) as ``dynamics.ntk.empirical_ntk`` returns them, compared as a
      whole (the same S as on ``dynamics.ntk.flatten_kernel``'s (n·out, n·out) matrix).
      Default None means 2, but two arrays of the same shape (n, n, o, o) — an empirical
      NTK passed as is, whose per-(out, out)-block distances would come back silently —
      are refused: say kernel_axes=4 (one NTK) or kernel_axes=2 (a stack of matrices).
    """
    k0, kt = jnp.asarray(k0), jnp.asarray(kt)
    if kernel_axes is None:
        if k0.ndim == 4 and k0.shape == kt.shape and k0.shape[0] == k0.shape[1] and k0.shape[2] == k0.shape[3]:
            raise ValueError(f"kernels of shape {k0.shape} look like empirical NTKs (n, n, out, out); pass "
                             "kernel_axes=4 to compare them whole or kernel_axes=2 for a stack of (out, out) matrices")
        kernel_axes = 2
    if kernel_axes not in (2, 4) or min(k0.ndim, kt.ndim) < kernel_axes:
        raise ValueError(f"kernel_axes={kernel_axes!r} is invalid for shapes {k0.shape}, {kt.shape}; "
                         "allowed: 2 (matrices) or 4 (empirical NTKs), at most the arrays' rank")
    axes = tuple(range(-kernel_axes, 0))
    inner = jnp.sum(k0 * kt, axis=axes)
    return 1.0 - inner / (jnp.sqrt(jnp.sum(k0**2, axis=axes)) * jnp.sqrt(jnp.sum(kt**2, axis=axes)))


def balanced_rich_limit_distance(d, cos2):
    """S(t → ∞) for a balanced init (δ = 0) on white inputs: 1 − (d + 2 + cos²)/(d + 3).

    Exact for any init scale: δ = 0 gives M0 = a0²(I + ŵ0ŵ0ᵀ), and the flow ends
    at β = β* with a² = ‖w‖² = s, w ∥ β*, so M∞ = s(I + êêᵀ); then
    ⟨M0, M∞⟩ ∝ d + 2 + cos², ‖I + uuᵀ‖²_F = d + 3, cos = ŵ0·β̂*. The init
    scale only sets how long the (rich, sigmoidal) path takes (Kunin et al.
    2024, arXiv 2406.06158). d: input dimension; cos2: cos² ∈ [0, 1].
    """
    return 1.0 - (d + 2.0 + cos2) / (d + 3.0)


__all__ = [
    "SingleNeuron", "conserved_delta", "single_neuron_init", "single_neuron_solution",
    "single_neuron_kernel", "kernel_distance", "balanced_rich_limit_distance",
]
