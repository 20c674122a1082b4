"""Per-frequency dynamics of a two-layer network learning (a + b) mod p.

He, Wang, Chen & Yang, "On the Mechanism and Dynamics of Modular Addition: Fourier
Features, Lottery Ticket, and Grokking", arXiv 2602.16849 (the four-variable ODE of
their "decoupled dynamics" section, the phase-alignment theorem and the lottery
ticket mechanism).

Network (the paper's, with its quadratic activation "Quad"): one-hot inputs, M neurons,

    f(x, y)_j = Σ_m ξ_m[j] (θ_m[x] + θ_m[y])²,      θ_m, ξ_m ∈ R^p,

trained on all p² pairs with the *mean* cross-entropy
L = (1/p²) Σ_{x,y} −log softmax(f(x, y))_{(x+y) mod p}, by gradient flow
τ dθ/dt = −∂L/∂θ (GD with rate η: τ = 1/η, step k at t = k).

Fourier parametrisation, frequency ω_k = 2πk/p, k = 1 … (p−1)/2 (p odd):

    θ_m[j] = Σ_k a_k cos(ω_k j + φ_k) + const,   ξ_m[j] = Σ_k b_k cos(ω_k j + ψ_k) + const,
    D_k = ψ_k − 2φ_k   (the paper writes D = 2φ − ψ; only the sign differs).

Small-init regime (our derivation of the paper's decoupled dynamics, from its setting;
its text was not available to us, its code was, see below). While every
logit is small, softmax(f) ≈ 1/p, so ∂L/∂f(x,y)_j ≈ (1/p²)(1/p − δ_{j,(x+y) mod p}).
Then −∂L/∂ξ[j] = (2/p²)[(θ ⋆ θ)[j] − mean] with (θ ⋆ θ)[j] = Σ_{x+y≡j} θ[x]θ[y], and
−∂L/∂θ[i] = (4/p²) Σ_y ξ̃[i+y] θ[y] (ξ̃ = ξ minus its mean): convolution and correlation
are diagonal in Fourier space, so every (neuron, frequency) evolves alone. With the
complex amplitudes z = a e^{iφ}, w = b e^{iψ} of one frequency:

    pτ dz/dt = 2 z̄ w,      pτ dw/dt = z²,                                       (1)

i.e. for the magnitudes and the phase difference D = ψ − 2φ,

    pτ da/dt = 2ab cos D,   pτ db/dt = a² cos D,   pτ dD/dt = −(4b + a²/b) sin D.   (2)

The paper's code (github.com/Y-Agent/modular-addition-feature-learning, its app's
"four-variable ODE") writes 2p, p in place of 2/p, 1/p, i.e. time for the summed rather
than the mean loss (t_paper = t/p²), and D = 2φ − ψ; its phase equations there carry the
opposite sign to ours, which would make alignment unstable, while its simulation code
(gradients ∝ cos(ωj + ψ − φ), cos(ωj + 2φ)) agrees with (1). Ours is checked against the
full network in tests/test_modular_addition.py. Equation (2) conserves

    a² − 2b²        (``conserved_quantity``; for the full network ‖θ_m‖² − 2‖ξ_m‖² is
                     conserved exactly by any loss, since f is invariant under θ → cθ, ξ → ξ/c²)
    a² b sin D      (``phase_invariant``; d(z̄²w)/dt = (a⁴ + 4a²b²)/(pτ) is real),

so sin D = const/(a² b) → 0 as the magnitudes grow: the output phase locks to twice
the input phase, ψ = 2φ (phase alignment; D = 0 attracts, D = π repels). (1) is
quadratic, so an aligned mode blows up in finite time t* (``blow_up_time``): with
R = a² b cos D, pτ dR/dt = a²(a² + 4b²) > 0 and R² + (a²b sin D)² = a⁴b², so

    t* = pτ ∫_{R0}^{∞} dR / [(C + 2u)(C + 6u)],   C = a² − 2b²,  (C + 2u)² u = R² + K²,  u = b².

Lottery ticket (paper, "lottery ticket mechanism"): inside a neuron all frequencies
start small and race; the one whose mode escapes first takes the neuron. We predict
it as the frequency with the smallest t* from the init's (a_k, b_k, D_k)
(``winning_frequencies``); ``rule="growth"`` instead takes the largest initial growth
rate d ln(a²b)/dt = cos D (4b + a²/b)/(pτ). The reduced ODE holds while the logits are
small: a single aligned neuron's logits reach ~8b³ ≈ 1 at b ≈ 1/2, a time pτ before
its t* (from b = pτ/(2(t* − t)) when a² ≈ 2b²); within that window the softmax, and
the other neurons, decide. Neurons whose modes escape after the first ones meet a
residual that is already shrinking at the learned frequencies, a coupling the reduced
flow leaves out, so the rule is not exact for every neuron.
"""
from __future__ import annotations

import functools

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from theory._domain import positive, require


def n_frequencies(p: int) -> int:
    """(p − 1)/2 non-zero frequencies ω_k = 2πk/p, k = 1 … (p−1)/2 (p odd)."""
    return (int(p) - 1) // 2


def _check_p(p) -> None:
    require("an odd integer p ≥ 3", lambda p: (p >= 3) & (p % 2 == 1) & (p == np.round(p)), p=p)


def _unit_field(_, y, args):
    """(1) in the scaled time T = s t/(pτ), for y = (Re z, Im z, Re w, Im w) / s."""
    zr, zi, wr, wi = y
    return jnp.stack([2 * (zr * wr + zi * wi), 2 * (zr * wi - zi * wr), zr * zr - zi * zi, 2 * zr * zi])


def _quad(f, lo, hi, n):
    """Gauss–Legendre ∫_lo^hi f over the last axis (n nodes); lo, hi (...,)."""
    x, wq = np.polynomial.legendre.leggauss(n)
    half = (hi - lo)[..., None] / 2
    return jnp.sum(jnp.asarray(wq) * f(lo[..., None] + half * (jnp.asarray(x) + 1)), axis=-1) * half[..., 0]


@functools.partial(jax.jit, static_argnums=(3, 4))
def _unit_blow_up(a0, b0, d0, n_nodes, n_newton=40):
    """T* of (1) in scaled time (pτ = 1) for one mode; any shapes, broadcast.

    In v = a²: v²(v − C) = 2(R² + K²) and pτ dR/dt = v(3v − 2C), so T* = ∫ dR/[v(3v − 2C)].
    Near R = 0 with C < 0 and K small, a² dips to ~|K|: a peak of width ~|K| in R,
    taken by R = κ sinh s; from R1 > 0 on, R = R1/y³ makes the R^{-4/3} tail smooth."""
    shape = jnp.broadcast_shapes(jnp.shape(a0), jnp.shape(b0), jnp.shape(d0))
    a0, b0, d0 = (jnp.broadcast_to(v, shape) for v in (a0, b0, d0))
    c = a0**2 - 2 * b0**2
    k = a0**2 * b0 * jnp.sin(d0)
    r0 = a0**2 * b0 * jnp.cos(d0)
    scale = jnp.maximum(jnp.maximum(jnp.abs(r0), jnp.abs(k)), jnp.abs(c) ** 1.5)
    kappa = jnp.maximum(jnp.abs(k), 1e-14 * scale)
    r1 = jnp.maximum(r0, 0.0) + scale

    def rate_inv(r, c=c[..., None]):
        q2 = 2 * (r**2 + k[..., None] ** 2)
        # v³ − C v² − 2Q is increasing and convex for v > max(0, C): Newton from the right.
        v = jnp.maximum(0.0, c) + q2 ** (1 / 3)

        def newton(_, v):
            return jnp.maximum(v - (v * v * (v - c) - q2) / (v * (3 * v - 2 * c)), jnp.maximum(0.0, c))

        v = jax.lax.fori_loop(0, n_newton, newton, v)
        return 1.0 / (v * (3 * v - 2 * c))

    def near(s):
        r = kappa[..., None] * jnp.sinh(s)
        return rate_inv(r) * kappa[..., None] * jnp.cosh(s)

    def tail(y):
        return rate_inv(r1[..., None] / y**3) * 3 * r1[..., None] / y**4

    s0, s1 = jnp.arcsinh(r0 / kappa), jnp.arcsinh(r1 / kappa)
    return _quad(near, s0, s1, n_nodes) + _quad(tail, jnp.zeros_like(r1), jnp.ones_like(r1), n_nodes // 4)


def blow_up_time(*, p, a0, b0, phase0, tau=1.0, n_nodes: int = 256):
    """Time t* at which the reduced mode (2) from (a0, b0, D0 = phase0) blows up.

    t* = pτ ∫_{R0}^∞ dR / [(C + 2u)(C + 6u)] (module docstring), by Gauss–Legendre
    quadrature (R = κ sinh s near R = 0, R = R1/y³ in the tail). Closed forms it reproduces:
    D0 = 0, a0² = 2b0²: t* = pτ/(2 b0); D0 = 0, C = a0² − 2b0² > 0:
    t* = pτ [π/2 − arctan(b0 √(2/C))]/√(2C). a0, b0 > 0, phase0 broadcast together.
    (At exactly D0 = π with a0² < 2b0², a → 0 and t* = ∞; the quadrature, cut at
    |R| ~ 1e-14, returns a large finite time there.)
    """
    _check_p(p)
    positive("a0", a0)
    positive("b0", b0)
    positive("tau", tau)
    a0, b0, phase0 = (jnp.asarray(v, dtype=float) for v in (a0, b0, phase0))
    s = a0 + b0
    return p * tau / s * _unit_blow_up(a0 / s, b0 / s, phase0, n_nodes)


def frequency_flow(t, *, p, a0, b0, phase0, tau=1.0, rtol: float = 1e-11):
    """(a, b, D)(t) of one neuron's mode at one frequency under the reduced flow (2).

    θ_j = a cos(ωj + φ), ξ_j = b cos(ωj + ψ), D = ψ − 2φ (arXiv 2602.16849, decoupled
    dynamics; our derivation of the constants for the mean cross-entropy over all p²
    pairs, module docstring). Integrates (1) (smooth where b = 0, unlike (2)) with
    diffrax Tsit5 in the scaled time T = (a0 + b0) t/(pτ).

    Args:
      t: (T,) non-decreasing times ≥ 0 (GD: step k, with τ = 1/η).
      p: odd modulus; a0, b0 > 0: initial magnitudes; phase0: initial D.
    Returns:
      (a, b, D), each (T,); D in (−π, π]. At t ≥ t* (``blow_up_time``) the mode has
      blown up and all three are NaN.
    """
    _check_p(p)
    positive("a0", a0)
    positive("b0", b0)
    positive("tau", tau)
    t = jnp.asarray(t, dtype=float)
    require("times ≥ 0, non-decreasing", lambda t: (t >= 0) & (np.diff(t, prepend=0.0) >= 0), t=t)
    # Pad t to a power-of-two length (repeating its last entry): calls with similar
    # lengths share one compiled solver.
    n = t.shape[0]
    padded = jnp.concatenate([t, jnp.full((max(16, 1 << (n - 1).bit_length()) - n,), t[-1], dtype=t.dtype)])
    a0, b0, phase0 = (jnp.asarray(v, dtype=t.dtype) for v in (a0, b0, phase0))
    s = a0 + b0
    out = _flow(padded * s / (p * tau), a0 / s, b0 / s, phase0, _unit_blow_up(a0 / s, b0 / s, phase0, 256), rtol)
    out = (s * out[0], s * out[1], out[2])
    return tuple(x[:n] for x in out)


@functools.partial(jax.jit, static_argnums=(5,))
def _flow(big_t, a0, b0, phase0, t_star, rtol):
    """(1) in the scaled time T = s t/(pτ) from (a0, b0) scaled by s = a0 + b0; t_star: the scaled T*."""
    # Save at most just before the blow-up; those entries are masked to NaN below.
    ts = jnp.minimum(big_t, t_star * (1 - 1e-6))
    y0 = jnp.stack([a0, 0.0 * a0, b0 * jnp.cos(phase0), b0 * jnp.sin(phase0)])
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_unit_field), diffrax.Tsit5(), t0=0.0, t1=ts[-1], dt0=None, y0=y0,
        saveat=diffrax.SaveAt(ts=ts), stepsize_controller=diffrax.PIDController(rtol=rtol, atol=rtol * 1e-3),
        max_steps=200_000, throw=False)
    zr, zi, wr, wi = (sol.ys[:, i] for i in range(4))
    a = jnp.hypot(zr, zi)
    b = jnp.hypot(wr, wi)
    x, y = zr * zr - zi * zi, -2 * zr * zi  # z̄² = x + iy; D = arg(w z̄²)
    d = jnp.arctan2(wr * y + wi * x, wr * x - wi * y)
    gone = (big_t >= t_star) | ~jnp.isfinite(a) | ~jnp.isfinite(b)
    return jnp.where(gone, jnp.nan, a), jnp.where(gone, jnp.nan, b), jnp.where(gone, jnp.nan, d)


def conserved_quantity(a, b):
    """a² − 2b²: conserved by (2) (d(a²)/dt = 4a²b cos D/(pτ) = 2 d(b²)/dt)."""
    return jnp.asarray(a) ** 2 - 2 * jnp.asarray(b) ** 2


def phase_invariant(a, b, phase):
    """a² b sin D: conserved by (2), so sin D = K/(a²b) → 0 as a, b grow (phase alignment)."""
    return jnp.asarray(a) ** 2 * jnp.asarray(b) * jnp.sin(phase)


def fourier_modes(w, p):
    """Magnitudes and phases of w (..., p) at ω_k = 2πk/p, k = 1 … (p−1)/2.

    w_j = Σ_k m_k cos(ω_k j + φ_k) + const with c_k = (2/p) Σ_j w_j e^{−iω_k j} = m_k e^{iφ_k}.
    Returns (m, φ), each (..., (p−1)/2).
    """
    _check_p(p)
    w = jnp.asarray(w)
    angle = 2 * np.pi * np.outer(np.arange(p), np.arange(1, n_frequencies(p) + 1)) / p  # (p, K)
    re = (2.0 / p) * w @ jnp.asarray(np.cos(angle), dtype=w.dtype)
    im = -(2.0 / p) * w @ jnp.asarray(np.sin(angle), dtype=w.dtype)
    return jnp.hypot(re, im), jnp.arctan2(im, re)


def frequency_state(params, p):
    """(a, b, D) per neuron and frequency of params = (θ, ξ), each (M, p): (M, (p−1)/2) each.

    θ[m] is neuron m's input weight (θ[m, x] for token x), ξ[m] its output weight
    (ξ[m, j] to logit j), as in ``models.modular_addition.Params``."""
    theta, xi = params
    a, phi = fourier_modes(theta, p)
    b, psi = fourier_modes(xi, p)
    return a, b, wrap_phase(psi - 2 * phi)


def wrap_phase(x):
    """x mod 2π in [−π, π)."""
    return jnp.mod(jnp.asarray(x) + np.pi, 2 * np.pi) - np.pi


def growth_rates(a, b, phase, *, p, tau=1.0):
    """Initial d ln(a²b)/dt = cos D (4b + a²/b)/(pτ) of each mode under (2)."""
    return jnp.cos(phase) * (4 * b + a**2 / b) / (p * tau)


def winning_frequencies(params, p, *, rule: str = "blow_up"):
    """Predicted frequency k ∈ {1 … (p−1)/2} each neuron ends up with, from its init.

    The lottery ticket of arXiv 2602.16849: every (neuron, frequency) mode follows (2)
    on its own while the logits are small; the neuron's first mode to escape wins.
    rule="blow_up" (default): smallest ``blow_up_time``; rule="growth": largest
    ``growth_rates`` at t = 0. params = (θ, ξ), each (M, p). Returns (M,) int.
    """
    if rule not in ("blow_up", "growth"):
        raise ValueError(f"rule={rule!r} is invalid; allowed: 'blow_up', 'growth'")
    a, b, d = frequency_state(params, p)
    if rule == "growth":
        return jnp.argmax(growth_rates(a, b, d, p=p), axis=-1) + 1
    return jnp.argmin(blow_up_time(p=p, a0=a, b0=b, phase0=d), axis=-1) + 1
