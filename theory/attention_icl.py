"""Training dynamics of linear attention on in-context linear regression
(Zhang, Singh, Latham & Saxe, ICML 2025, arXiv 2501.16265).

Setting (``tasks.icl``): xₙ, x_q ~ N(0, Λ), Λ = diag(lam), w ~ N(0, I_D),
y = wᵀx (+ ε, ε ~ N(0, σ²), σ = ``noise_std``, 0 in the paper), N = ``n_context``
context pairs; multi-head linear attention as in ``models.attention``.

NORMALISATION — read this before comparing numbers.
  * Every loss *value* returned here is in the paper's normalisation
        L_paper = E[(y_q − ŷ)²]          (no ½: L(M₀) = E y_q² = tr Λ + σ²),
    which is twice saddle's DESIGN loss L = ½E[(y_q − ŷ)²] (what
    ``models.attention.population_loss`` returns and ``dynamics`` integrates).
  * Every *time* is in the DESIGN convention: gradient flow τ dθ/dt = −∂L/∂θ on
    the ½-loss. Gradient flow on L_paper at the same τ runs twice as fast, so
    the paper's GD step k at learning rate η (torch MSELoss, no ½) sits at
    t = 2kη here (τ = 1).

Reduction (derived in ``tasks.icl`` / ``models.attention``): on the invariant
manifold of the paper's init, ŷ = ⟨Γ, z⟩ with z = (1/N) Σₙ yₙ xₙ x_qᵀ and
    L = ½(trΛ + σ²) − tr(Λ²Γ) + ½ Σ_ab A_a λ_b Γ_ab²,  A = ((N+1)λ² + (trΛ+σ²)λ)/N,
so diagonal mode d has correlation s_d = λ_d² and input variance
ρ_d = A_d λ_d = λ_d² ((N+1)λ_d + trΛ + σ²)/N, and off-diagonal modes have none.
Learning mode d lowers L_paper by s_d²/ρ_d = λ_d / (1 + (1 + (trΛ+σ²)/λ_d)/N).
"""
from __future__ import annotations

import diffrax
import jax.numpy as jnp
import numpy as np

from theory.linear import deep_mode_time, mode_strength


def _lam(lam):
    lam = np.asarray(lam, dtype=float)
    if lam.ndim != 1 or lam.size == 0 or np.any(lam <= 0):
        raise ValueError(f"lam must be a non-empty 1-D array of positive eigenvalues of Λ, got {lam!r}")
    return lam


def _n(n_context):
    if int(n_context) != n_context or n_context < 1:
        raise ValueError(f"n_context must be an integer ≥ 1, got {n_context!r}")
    return int(n_context)


def mode_moments(lam, *, n_context: int, noise_std: float = 0.0):
    """(s, ρ) per eigen-direction d of Λ (in the input order): s_d = λ_d², ρ_d = λ_d²((N+1)λ_d + trΛ + σ²)/N.

    The correlation and input variance of the diagonal cubic-feature mode
    z_dd in the ½-loss convention (see module docstring).
    """
    lam, n = _lam(lam), _n(n_context)
    return lam**2, lam**2 * ((n + 1) * lam + lam.sum() + noise_std**2) / n


def separate_kq_drop_order(lam) -> np.ndarray:
    """Indices of ``lam`` in the order separate-KQ attention learns them: largest eigenvalue first.

    Principal component regression in context with one more component per
    saddle-to-saddle transition (arXiv 2501.16265); ties keep input order.
    """
    lam = _lam(lam)
    return np.argsort(-lam, kind="stable")


def separate_kq_plateau_losses(lam, *, n_context: int, noise_std: float = 0.0) -> np.ndarray:
    """Plateau losses L(M₀), …, L(M_D) of separate-KQ linear attention, PAPER normalisation E[(y_q − ŷ)²].

        L(M_m) = tr Λ − Σ_{d ≤ m} λ_d / (1 + (1 + tr Λ/λ_d)/N)

    with λ₁ ≥ λ₂ ≥ … (learned largest first; ``lam`` may come in any order);
    M_m is the fixed point that does principal component regression on the top
    m components (arXiv 2501.16265, plateau-loss formula). With noise,
    tr Λ → tr Λ + σ² in both places (the loss floor and the in-context
    variance). This is twice saddle's ½-loss (DESIGN); e.g. Λ ∝ diag(1,2,3,4),
    tr Λ = 1, N = 31 gives 1, 0.6406, 0.3774, 0.2098, 0.1360.
    Returns (D+1,) numpy array.
    """
    lam = _lam(lam)
    order = separate_kq_drop_order(lam)
    s, rho = mode_moments(lam, n_context=n_context, noise_std=noise_std)
    drops = (s**2 / rho)[order]
    return lam.sum() + noise_std**2 - np.concatenate([[0.0], np.cumsum(drops)])


def converged_loss(lam, *, n_context: int, noise_std: float = 0.0) -> float:
    """Global-minimum loss L(M_D) (paper normalisation), reached by merged and separate KQ alike.

    tr Λ + σ² − Σ_d λ_d/(1 + (1 + (trΛ+σ²)/λ_d)/N); white Λ = λI_D, σ = 0:
    D λ (D+1)/(N+D+1), e.g. 5/36 = 0.1389 for Λ = I₄/4, N = 31, and 5/9 = 0.5556 for Λ = I₄.
    """
    return float(separate_kq_plateau_losses(lam, n_context=n_context, noise_std=noise_std)[-1])


def separate_kq_drop_times(lam, *, n_context: int, w_init: float, tau: float = 1.0, noise_std: float = 0.0) -> np.ndarray:
    """Drop times, in learning order, for one rank-one head aligned with each eigen-direction.

    A rank-one separate-KQ head with v = k_d = q_d = a (balanced, aligned with
    eigen-direction d) has mode strength u = Γ_dd = a³ obeying the depth-3 mode
    ODE  τ du/dt = 3u^{4/3}(s_d − ρ_d u)  (a sum of three-layer linear networks,
    arXiv 2501.16265). ``w_init`` = u0 = a0³, the initial mode strength.
    Returned: the exact time for u to reach s_d/(2ρ_d) (half its final value),
    from ``theory.linear.deep_mode_time`` after the rescaling ũ = ρu, τ' = τρ^{1/3}.
    Leading order for small u0: t_d ≈ τ/(s_d u0^{1/3}) = τ/(λ_d² u0^{1/3}), i.e.
    ∝ λ_d^{−2}. In multi-head runs from random init the heads compete and the
    times shift by O(1) factors (for Λ ∝ diag(1,2,3,4), N = 31, 4 heads with
    i.i.d. std-0.05 entries, the drops sit within ×0.6–1.2 of these), the order stays.
    """
    if w_init <= 0:
        raise ValueError(f"w_init must be > 0, got {w_init}")
    order = separate_kq_drop_order(lam)
    s, rho = mode_moments(lam, n_context=n_context, noise_std=noise_std)
    s, rho = s[order], rho[order]
    t = deep_mode_time(rho * w_init, s / 2.0, s=s, depth=3, tau=tau * rho ** (1.0 / 3.0))
    return np.asarray(t)


def separate_kq_leading_drop_times(lam, *, w_init: float, tau: float = 1.0) -> np.ndarray:
    """Leading-order drop times τ/(λ_d² w_init^{1/3}) in learning order (w_init = u0 = a0³).

    The small-u0 limit of ``separate_kq_drop_times``: the depth-3 mode ODE
    τ du/dt = 3u^{4/3} s_d without its ρ term blows up at t = τ/(s_d u0^{1/3}) (our derivation
    from the reduction of arXiv 2501.16265 to a sum of three-layer linear networks)."""
    lam = _lam(lam)[separate_kq_drop_order(lam)]
    return tau / (lam**2 * w_init ** (1.0 / 3.0))


def merged_kq_loss(t, *, lam, n_context: int, w_init: float, tau: float = 1.0, noise_std: float = 0.0, rtol: float = 1e-10):
    """Loss curve of merged-KQ linear attention, PAPER normalisation E[(y_q − ŷ)²]; time in DESIGN units.

    Merged-KQ attention is a two-layer linear network ŷ = Σ_i v_i ⟨K_i, z⟩ on the
    cubic feature z (arXiv 2501.16265) whose input covariance is
    Σ_zz = A ⊗ Λ and input-output correlation β = Λ² (``tasks.icl.cubic_feature_moments``).
    Init (``models.attention.init_merged_aligned`` with direction Λ²): balanced,
    rank one, Γ(0) = Σ_i v_i K_i = w_init · β/‖β‖_F; ``w_init`` = u0 is the
    initial mode strength ⟨Γ(0), β̂⟩_F. Gradient flow τ dθ/dt = −∂L/∂θ with the
    ½-loss (DESIGN).

    * White Λ = λI (β an eigenvector of Σ_zz): one Saxe mode with s = ‖β‖_F = λ²√D,
      ρ = λ²((N+1)λ + Dλ + σ²)/N; u(t) = (s/ρ)/(1 − e^{−2st/τ} + (s/(ρu0)) e^{−2st/τ})
      (Saxe et al. 2014, ``theory.linear.mode_strength``) and
          L_paper(t) = trΛ + σ² − 2 s u(t) + ρ u(t)²  — one abrupt drop,
      from trΛ + σ² to ``converged_loss`` near t ≈ (τ/2s) ln(s/(ρu0)).
    * Other Λ: Γ stays diagonal, γ = diag Γ obeys the exact reduced ODE of a
      rank-one balanced scalar-output net, τ dγ/dt = ‖γ‖(I + γ̂γ̂ᵀ)(β − ργ),
      solved with diffrax (Tsit5, rtol); still a single drop.

    t: array of times ≥ 0 (non-decreasing for the ODE branch). ``lam`` must be
    concrete (the branch is chosen in numpy). Returns an array shaped like t.
    """
    lam = _lam(lam)
    n = _n(n_context)
    if w_init <= 0:
        raise ValueError(f"w_init must be > 0, got {w_init}")
    s_d, rho_d = mode_moments(lam, n_context=n, noise_std=noise_std)
    yy = lam.sum() + noise_std**2
    t = jnp.asarray(t, dtype=jnp.result_type(float))
    if np.allclose(lam, lam[0], rtol=1e-12, atol=0.0):
        s, rho = float(np.sqrt(np.sum(s_d**2))), float(rho_d[0])
        u = mode_strength(t, s=s, u0=w_init, tau=tau, lam_x=rho)
        return yy - 2.0 * s * u + rho * u**2

    beta, rho = jnp.asarray(s_d, t.dtype), jnp.asarray(rho_d, t.dtype)
    ts = np.asarray(t, dtype=float).reshape(-1)
    if ts.size == 0 or ts.min() < 0 or np.any(np.diff(ts) < 0):
        raise ValueError("for anisotropic lam, t must be a non-empty non-decreasing array of times ≥ 0")

    def field(_, g, __):
        norm = jnp.linalg.norm(g)
        grad = beta - rho * g
        return norm * grad + g * jnp.dot(g, grad) / norm

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field), diffrax.Tsit5(), t0=0.0, t1=float(ts[-1]) / tau, dt0=None,
        y0=w_init * beta / jnp.linalg.norm(beta),
        saveat=diffrax.SaveAt(ts=jnp.asarray(ts / tau)),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=rtol * 1e-2),
        max_steps=1_000_000,
    )
    g = sol.ys
    loss = yy - 2.0 * g @ beta + (g**2) @ rho
    return loss.reshape(t.shape)


def predict(lam, *, n_context: int, w_init: float, noise_std: float = 0.0, tau=None, learning_rate=None):
    """The staircase of separate-KQ linear attention with rank-one heads, as a ``Staircase``.

    plateau_losses: ``separate_kq_plateau_losses`` converted to saddle's
    ½-loss (DESIGN: L = ½E[(y_q − ŷ)²], what ``models.attention.population_loss``
    and ``dynamics`` use), i.e. half the paper's values; transition_times:
    ``separate_kq_drop_times`` (a head aligned with each direction half
    learned, so level = 0.75, the same quadratic loss in u as a linear mode);
    ranks: eigen-directions learned, 0..D. Time in DESIGN units: ``tau``
    (flow) or ``learning_rate`` η (GD, τ = 1/η, times in steps). For heads from
    random init see ``theory.attention_heads.predict``.
    """
    from theory.staircase import staircase, time_constant

    tau = time_constant(tau, learning_rate)
    losses = 0.5 * separate_kq_plateau_losses(lam, n_context=n_context, noise_std=noise_std)
    times = separate_kq_drop_times(lam, n_context=n_context, w_init=w_init, tau=tau, noise_std=noise_std)
    return staircase(losses, times, np.arange(losses.size), 0.75)


# ------------------------------------------------------------ a finite training set
# The paper's plateaus M_m are fixed points of the POPULATION loss. A fixed training set of P sequences
# (linattn-icl trains full-batch on 5000) has its own loss, quadratic in Γ with the set's moments, and its
# own fixed points: M_m continued to the set. These functions take the set's moments as arrays (any units:
# with or without the 1/N; losses come out the same, times in the units of the moments given).


def _set_blocks(yy, phi_y, phi_phi):
    phi_y, phi_phi = np.asarray(phi_y, dtype=float), np.asarray(phi_phi, dtype=float)
    d1 = phi_y.shape[0]
    if phi_y.ndim != 3 or phi_y.shape != (d1, d1, d1 - 1) or phi_phi.shape != phi_y.shape * 2:
        raise ValueError(f"need phi_y: (D+1, D+1, D) and phi_phi: (D+1, D+1, D, D+1, D+1, D), got {phi_y.shape}, {phi_phi.shape}")
    d = d1 - 1
    return float(yy), phi_y[d, :d], phi_phi[d, :d, :, d, :d]


def set_plateau_fixed_points(yy, phi_y, phi_phi, *, order, tol: float = 1e-15, max_iter: int = 20000):
    """Plateaus of separate-KQ attention with rank-one heads on a FINITE training set: its own fixed points.

    On the invariant manifold of the paper's init Γ = Σ_h v_h k_h q_hᵀ (D, D) and the set's loss (paper
    normalisation, 2 × the ½-loss) is  L(Γ) = yy − 2⟨Γ, b⟩ + ⟨Γ, R Γ⟩ with b = phi_y[D, :D] = E_set[y_q z],
    R = phi_phi[D, :D, :, D, :D] = E_set[z ⊗ z] (z: the cubic feature, ``tasks.icl.empirical_moments``).
    m learned rank-one heads make Γ any matrix of rank ≤ m, and a fixed point with v_h ≠ 0 has
    G q_h = 0, Gᵀ k_h = 0 (G = RΓ − b): the plateau M_m of the set is the least L over rank-m Γ near the
    population's M_m = Σ_{d ∈ order[:m]} γ_d e_d e_dᵀ (arXiv 2501.16265, where b = diag λ², R diagonal).
    On a set, b and R have O(1/√P) off-diagonal parts, so M_m tilts and its loss moves by O(1/√P)
    (the set's L(M_0) = mean y_q² already does). Computed by alternating least squares Γ = U Wᵀ (U, W:
    (D, m)), from the set's diagonal fit on order[:m], until L changes by < tol (our derivation).

    Args: yy = E_set[y_q²]; phi_y (D+1, D+1, D), phi_phi (D+1, D+1, D, D+1, D+1, D): the set's moments
      (``ICLMoments`` fields as arrays); order: (D,) directions in learning order (``separate_kq_drop_order``).
    Returns (losses (D+1,), gammas (D+1, D, D)): L(M_0..M_D) and Γ at each fixed point.
    """
    yy, b, r = _set_blocks(yy, phi_y, phi_phi)
    d = b.shape[0]
    order = np.asarray(order, dtype=int)
    if sorted(order.tolist()) != list(range(d)):
        raise ValueError(f"order must be a permutation of 0..{d - 1}, got {order!r}")
    rm = r.reshape(d * d, d * d)
    loss = lambda g: yy - 2.0 * np.sum(g * b) + g.reshape(-1) @ rm @ g.reshape(-1)
    losses, gammas = [yy], [np.zeros((d, d))]
    for m in range(1, d + 1):
        sel = order[:m]
        diag_r = np.array([[r[i, i, j, j] for j in sel] for i in sel])
        u = np.zeros((d, m))
        u[sel, np.arange(m)] = np.linalg.solve(diag_r, b[sel, sel])
        w = np.zeros((d, m))
        w[sel, np.arange(m)] = 1.0
        prev = np.inf
        for _ in range(max_iter):
            # Γ = U Wᵀ is linear in U (W fixed) and in W (U fixed): exact least squares for each in turn.
            a_u = np.einsum("abAB,bh,BH->ahAH", r, w, w).reshape(d * m, d * m)
            u = np.linalg.lstsq(a_u, (b @ w).reshape(-1), rcond=None)[0].reshape(d, m)
            a_w = np.einsum("abAB,ah,AH->bhBH", r, u, u).reshape(d * m, d * m)
            w = np.linalg.lstsq(a_w, (b.T @ u).reshape(-1), rcond=None)[0].reshape(d, m)
            cur = loss(u @ w.T)
            if prev - cur < tol:
                break
            prev = cur
        losses.append(loss(u @ w.T))
        gammas.append(u @ w.T)
    return np.asarray(losses), np.asarray(gammas)


def set_plateau_floors(yy, phi_y, phi_phi, gammas, *, max_iter: int = 3000) -> np.ndarray:
    """How far below each on-manifold fixed point the set's loss goes when the heads leave the manifold.

    On a finite set odd moments are not zero (E_set[w_a w_b w_c], E_set[w ⊗ x-moments] are O(1/√P)), so
    the gradient of the key's y column and of the value's x-part does not vanish at the fixed points of
    ``set_plateau_fixed_points``: the m learned heads, Γ_abc = Σ_h v_ha k_hb q_hc (v, k ∈ R^{D+1},
    q ∈ R^D: every weight of the value's last row, key and query), go on lowering the set's loss
    L = yy − 2⟨Γ, φy⟩ + ⟨Γ, Φ Γ⟩ (paper normalisation, all (D+1)²D features). The least L over m such
    heads need not be attained (a CP tensor rank: heads may grow without bound while L converges), so
    this is a descent (BFGS, ``max_iter`` steps, from the on-manifold fixed point split into m balanced
    heads by its SVD): an upper estimate of the infimum, reached by gradient descent only slowly
    (off-manifold weights start at 0 and grow from O(1/√P) gradients). Our derivation.

    gammas: (D+1, D, D) from ``set_plateau_fixed_points``. Returns (losses (D+1,), entry 0 = yy;
    tensors (D+1, D+1, D+1, D): Γ where each descent stopped).
    """
    from scipy.optimize import minimize

    phi_y, phi_phi = np.asarray(phi_y, dtype=float), np.asarray(phi_phi, dtype=float)
    d1 = phi_y.shape[0]
    d, nf = d1 - 1, phi_y.size
    pm, bv = phi_phi.reshape(nf, nf), phi_y.reshape(-1)
    yy = float(yy)
    out, tensors = [yy], [np.zeros(phi_y.shape)]
    for m in range(1, d + 1):
        uu, sv, wt = np.linalg.svd(np.asarray(gammas[m]))
        root = np.cbrt(sv[:m])
        x0 = np.zeros((m, 3 * d1 - 1))
        x0[:, d] = root
        x0[:, d1:d1 + d] = (uu[:, :m] * root).T
        x0[:, 2 * d1:] = wt[:m] * root[:, None]

        def loss_grad(x):
            x = x.reshape(m, -1)
            v, k, q = x[:, :d1], x[:, d1:2 * d1], x[:, 2 * d1:]
            g = np.einsum("ha,hb,hc->abc", v, k, q).reshape(-1)
            grad = (pm @ g - bv).reshape(phi_y.shape)
            return yy - 2.0 * g @ bv + g @ pm @ g, 2.0 * np.concatenate(
                [np.einsum("abc,hb,hc->ha", grad, k, q), np.einsum("abc,ha,hc->hb", grad, v, q),
                 np.einsum("abc,ha,hb->hc", grad, v, k)], axis=1).reshape(-1)

        res = minimize(loss_grad, x0.reshape(-1), jac=True, method="BFGS", options=dict(maxiter=max_iter, gtol=1e-10))
        x = res.x if res.fun < loss_grad(x0.reshape(-1))[0] else x0.reshape(-1)
        x = x.reshape(m, -1)
        tensors.append(np.einsum("ha,hb,hc->abc", x[:, :d1], x[:, d1:2 * d1], x[:, 2 * d1:]))
        out.append(loss_grad(x.reshape(-1))[0])
    return np.asarray(out), np.asarray(tensors)
