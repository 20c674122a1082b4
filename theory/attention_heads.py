"""Which head learns which eigen-direction, and when: separate-KQ linear attention
with rank-one heads from small random init (Zhang, Singh, Latham & Saxe, ICML 2025,
arXiv 2501.16265; heads as the units of saddle-to-saddle dynamics, arXiv 2512.20607).

Setting and conventions as in ``theory.attention_icl``: Λ = diag(lam), ½-loss
(DESIGN), gradient flow τ dθ/dt = −∂L/∂θ. On the invariant manifold head h has a
value scalar v_h = W^V_h[D, D] and rank-one key/query x-parts k_h, q_h ∈ R^D, and
Γ_dd = Σ_h v_h k_hd q_hd. Near the origin the loss is linear in Γ,
L ≈ ½ trΛ − Σ_d s_d Γ_dd (s_d = λ_d²), so the heads decouple and each obeys

    v̇ = Σ_d s_d k_d q_d,   k̇_d = s_d v q_d,   q̇_d = s_d v k_d        (τ = 1).

With T(t) = ∫₀ᵗ v dt', (k_d ± q_d)(t) = (k_d ± q_d)(0) e^{±s_d T}, hence one scalar
ODE per head,

    T̈ = Σ_d s_d [c_d² e^{2 s_d T} − e_d² e^{−2 s_d T}] / 4,   c = k + q, e = k − q,
    Γ^h_dd(t) = v [c_d² e^{2 s_d T} − e_d² e^{−2 s_d T}] / 4,

which blows up in finite time (a depth-3 escape). The first head whose Γ^h_dd
reaches half its learned value s_d/(2ρ_d) (ρ_d from ``mode_moments``) takes
direction d: the loss drops by one plateau. A rank-one head cannot take a
second direction (its off-diagonal Γ_ab = v k_a q_b would cost A_a λ_b Γ_ab²),
and a learned direction has zero residual gradient, so both leave the race; the
other heads keep their (T, v) and go on with the remaining directions. Repeating
gives the head order, the direction order and the drop times. Equal eigenvalues
(e.g. white Λ): the eigenspace has no preferred axes, the escaping head learns its
own direction u ∝ P c (P: projector on the still-unlearned part of the eigenspace),
and the other heads go on with c, e projected on u's complement; c_d² above then
reads |P c|² summed over the eigenspace (our derivation; the same ODE, since
Σ_d c_d² e^{2sT} only depends on |P c|² when the s_d are equal). Leading order in
the init scale: it neglects the quadratic loss terms before each escape and the
finite width of each drop.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.integrate import solve_ivp

from theory.attention_icl import mode_moments


def eigen_groups(lam, rtol: float = 1e-9) -> list:
    """Indices of ``lam`` grouped by equal eigenvalue (|λ_a − λ_b| ≤ rtol·max λ), in input order.

    A degenerate eigenspace of Λ has no preferred axes: heads learn arbitrary directions in it
    (module docstring; our derivation)."""
    lam = np.asarray(lam, dtype=float)
    groups = []
    for d in range(lam.size):
        for g in groups:
            if abs(lam[g[0]] - lam[d]) <= rtol * np.max(np.abs(lam)):
                g.append(d)
                break
        else:
            groups.append([d])
    return groups


class HeadEscapes(NamedTuple):
    """Escapes in time order (one per eigen-direction, at most H).

    times: (M,) time at which head ``heads[m]`` has learned half of direction ``directions[m]``.
    heads: (M,) index of the head that switches on at drop m.
    directions: (M,) index (into ``lam``) of the eigen-direction it learns. Within a
      degenerate eigenspace (equal λ, ``eigen_groups``) the learned direction is the
      head's own k + q, not a coordinate; the group's indices are then reported in
      input order, one per drop (only the eigenspace is determined).
    """

    times: np.ndarray
    heads: np.ndarray
    directions: np.ndarray


def separate_kq_head_escapes(lam, *, n_context: int, v0, k0, q0, tau: float = 1.0,
                             noise_std: float = 0.0, rtol: float = 1e-9) -> HeadEscapes:
    """Predicted switch-on order and times of rank-one separate-KQ heads from their init.

    Our derivation (module docstring) from the reduction of arXiv 2501.16265 (Zhang, Singh,
    Latham & Saxe 2025) near the origin; heads as saddle-to-saddle units, arXiv 2512.20607.

    Args:
      lam: (D,) eigenvalues of Λ (diagonal Λ, directions = coordinates).
      v0: (H,) initial value scalars W^V_h[D, D].
      k0, q0: (H, D) initial x-parts of the rank-one key and query of each head
        (``params["k"][:, 0, :D]``, ``params["q"][:, 0, :D]``).
      tau: time constant; times come out in DESIGN units (½-loss).
    Returns ``HeadEscapes`` with min(H, D) escapes (fewer if some head never
    escapes, which needs an exactly degenerate init).
    """
    lam = np.asarray(lam, dtype=float)
    v0, k0, q0 = (np.asarray(a, dtype=float) for a in (v0, k0, q0))
    n_heads, d = k0.shape if k0.ndim == 2 else (0, 0)
    if lam.ndim != 1 or v0.shape != (n_heads,) or k0.shape != (n_heads, lam.size) or q0.shape != k0.shape or n_heads == 0:
        raise ValueError(f"need v0: (H,), k0, q0: (H, D) with D = len(lam) = {lam.size}; got {v0.shape}, {k0.shape}, {q0.shape}")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    s, rho = mode_moments(lam, n_context=n_context, noise_std=noise_std)
    groups = eigen_groups(lam)
    c, e = (k0 + q0) / 2.0, (k0 - q0) / 2.0
    # Unlearned part of each eigenspace: an orthonormal basis (columns) in the group's coordinates.
    basis = [np.eye(len(g)) for g in groups]
    slots = [list(g) for g in groups]  # coordinates reported for the group's successive drops

    def projected(v, gi):  # (H,) |P_g v_h|² over the unlearned part of group gi
        return np.sum((v[:, groups[gi]] @ basis[gi]) ** 2, axis=1)

    heads_left = list(range(n_heads))
    t_now, big_t, vel = 0.0, np.zeros(n_heads), v0.copy()
    times, heads, directions = [], [], []
    while heads_left and any(slots):
        hs, gs = np.array(heads_left), np.array([g for g in range(len(groups)) if slots[g]])
        sd = s[[groups[g][0] for g in gs]]
        target = (s / (2.0 * rho))[[groups[g][0] for g in gs]]
        c2h = np.stack([projected(c, g)[hs] for g in gs], axis=1)
        e2h = np.stack([projected(e, g)[hs] for g in gs], axis=1)

        def kq(big_t_h):  # (h, g) k·q of each live head within each live eigenspace
            return c2h * np.exp(2 * sd * big_t_h[:, None]) - e2h * np.exp(-2 * sd * big_t_h[:, None])

        def field(_, y):
            bt, v = y[: hs.size], y[hs.size:]
            return np.concatenate([v, kq(bt) @ sd])

        def progress(_, y):  # > 0 once some head has learned half of one direction
            bt, v = y[: hs.size], y[hs.size:]
            return float(np.max(v[:, None] * kq(bt) / target)) - 1.0

        progress.terminal, progress.direction = True, 1
        y0 = np.concatenate([big_t[hs], vel[hs]])
        # Escapes are finite-time blow-ups: the horizon only needs to exceed the next one.
        sol = solve_ivp(field, (t_now, t_now + 1e12), y0, method="LSODA", events=progress,
                        rtol=rtol, atol=1e-14)
        if sol.status != 1:
            break
        y = sol.y_events[0][0]
        t_now = float(sol.t_events[0][0])
        big_t[hs], vel[hs] = y[: hs.size], y[hs.size:]
        frac = y[hs.size:, None] * kq(y[: hs.size]) / target
        i, j = np.unravel_index(np.argmax(frac), frac.shape)
        h, g = int(hs[i]), int(gs[j])
        # The head learns u ∝ P_g c_h (its e-part has decayed); the others go on in u's complement.
        u = basis[g].T @ c[h, groups[g]]
        u = basis[g] @ (u / np.linalg.norm(u))
        rest = np.linalg.svd(basis[g] - np.outer(u, u @ basis[g]))[0][:, : basis[g].shape[1] - 1]
        basis[g] = rest
        times.append(t_now * tau)
        heads.append(h)
        directions.append(slots[g].pop(0))
        heads_left.remove(h)
    return HeadEscapes(np.asarray(times), np.asarray(heads, dtype=int), np.asarray(directions, dtype=int))


def predict(lam, *, n_context: int, v0, k0, q0, noise_std: float = 0.0, tau=None, learning_rate=None):
    """The staircase of rank-one separate-KQ heads from their actual init, as a ``Staircase``.

    Escapes from ``separate_kq_head_escapes``; each drop removes direction d's
    share s_d²/(2ρ_d) of saddle's ½-loss (``theory.attention_icl`` module
    docstring), from L₀ = ½(trΛ + σ²). Times: a head half-learning its
    direction (level = 0.75). ranks: directions learned. Time in DESIGN
    units: ``tau`` (flow) or ``learning_rate`` η (GD, τ = 1/η, times in steps).
    """
    from theory.staircase import staircase, time_constant

    tau = time_constant(tau, learning_rate)
    esc = separate_kq_head_escapes(lam, n_context=n_context, v0=v0, k0=k0, q0=q0, tau=tau, noise_std=noise_std)
    s, rho = mode_moments(lam, n_context=n_context, noise_std=noise_std)
    drops = (s**2 / (2.0 * rho))[esc.directions]
    first = 0.5 * (float(np.sum(lam)) + noise_std**2)
    losses = first - np.concatenate([[0.0], np.cumsum(drops)])
    return staircase(losses, esc.times, np.arange(losses.size), 0.75)


def separate_kq_set_head_escapes(corrs, curvature, *, v0, k0, q0, horizon: float = 1e12,
                                 rtol: float = 1e-9) -> HeadEscapes:
    """Switch-on order and times of rank-one separate-KQ heads on a FINITE training set.

    The population theory (``separate_kq_head_escapes``) has the linear term of the loss diagonal,
    −∂L/∂Γ = diag(s) on the unlearned directions. On a set of P sequences the linear term at plateau m
    is the set's residual correlation B_m = E_set[(y_q − ŷ_m) φ_{D,·,·}] ((D+1, D): the value's y row
    sees the features S_b· x_q, b ≤ D, the key's y slot included), a full matrix whose singular values
    differ from λ_d² by O(1/√P), a large relative change for the smallest λ. Near the fixed point M_m the
    unlearned heads (v, k ∈ R^{D+1}, q ∈ R^D) then obey, to leading order in their size (τ = 1, ½-loss),

        v̇ = kᵀ B_m q,   k̇ = v B_m q,   q̇ = v B_mᵀ k,

    integrated here as they stand (scipy LSODA) until the first head h has learned half of a singular
    pair (σ_i, u_i, w_i) of B_m: v (u_iᵀk)(w_iᵀq) = σ_i/(2ρ_i), ρ_i = (u_i w_iᵀ)·R·(u_i w_iᵀ), on the pair
    that carries most of its loss decrease v (u_iᵀk)(w_iᵀq) σ_i. That head
    leaves the race (its direction is learned), the others go on, with B_{m+1}, from where they are.
    With the population's B_m = diag(s) on unlearned directions this is ``separate_kq_head_escapes``
    (a second route to the same times, tested). Our derivation (reduction of arXiv 2501.16265);
    leading order in the init, as there.

    Args:
      corrs: (M, D+1, D) B_0, …, B_{M−1}, in the units of the simulated loss (½-loss; with or without
        the 1/N: times come out in the same units).
      curvature: (D+1, D, D+1, D) E_set[φ_D·· ⊗ φ_D··] (``phi_phi[D, :, :, D]``).
      v0: (H,), k0: (H, D+1), q0: (H, D): the heads' initial value scalar, key and query.
    Returns ``HeadEscapes``; directions: the coordinate d < D where the learned pair has most weight,
      |u_i[d] w_i[d]| largest.

    Known gap (diagnosed, not derived; linattn-icl's README run, P = 5000, seeds 0-7, GD at 0.02): the
    prediction itself, not its tolerance, is off by up to 8% at some drops (seed 3, drop 3: 444.8 vs
    410.4), for two reasons found by rerunning the same set with every head held on the manifold
    (k_y = v_x = 0, GD): (1) B_m's key-y-slot row D gives the unlearned heads a growth channel
    (seed 3, m = 2: a third singular value 0.22 beside the pair's 1.18) which the simulation closes:
    there the learned heads' keys take y-slot components and zero row D on the learned query
    directions (B(t)'s third singular value 0.001), and held on the manifold nobody can use it; the
    fixed point with the learned keys' y slot free moves seed 3's drop 3 from +8.4% to +6.3%, and
    dropping row D moves the held run's drop-4 errors from 12-30% to ≤ 2% at seeds 2, 5, 6;
    (2) what remains (the held run vs the theory without row D: +6.2% at seed 3 drop 3, −8% to −19%
    at seed 2 drop 3, seed 4 drop 3, seed 1 drop 4; ≤ 2% elsewhere) is in the on-manifold dynamics on
    the set and is not the reading of the sampled curve (≤ 1.2% at n_points = 400), the escaping head's
    own saturation (J τ_w/t ≤ 1.2%, J = ∫_{2^{1/3}}^∞ dy/(y³ − 1) = 0.41, τ_w = (ρ/σ)^{1/3}/σ) or the
    off-manifold drift (held off, it stays). No per-seed term for it is derived here.
    """
    corrs, curv = np.asarray(corrs, dtype=float), np.asarray(curvature, dtype=float)
    v0, k0, q0 = (np.asarray(a, dtype=float) for a in (v0, k0, q0))
    n_heads = v0.shape[0] if v0.ndim == 1 else 0
    if corrs.ndim != 3 or n_heads == 0 or k0.shape != (n_heads,) + corrs.shape[1:2] or q0.shape != (n_heads, corrs.shape[2]) \
            or curv.shape != corrs.shape[1:] * 2:
        raise ValueError("need corrs: (M, D+1, D), curvature: (D+1, D, D+1, D), v0: (H,), k0: (H, D+1), q0: (H, D); "
                         f"got {corrs.shape}, {curv.shape}, {v0.shape}, {k0.shape}, {q0.shape}")
    d1, d = corrs.shape[1:]
    state = {h: (v0[h], k0[h].copy(), q0[h].copy()) for h in range(n_heads)}
    t_now, times, heads, directions = 0.0, [], [], []
    for b in corrs:
        if not state:
            break
        live = sorted(state)
        uu, sv, wt = np.linalg.svd(b, full_matrices=False)
        keep = sv > 1e-12 * max(sv.max(), 1e-300)
        uu, sv, wt = uu[:, keep], sv[keep], wt[keep]
        rho = np.einsum("bi,ci,bcBC,Bi,Ci->i", uu, wt.T, curv, uu, wt.T)
        target = sv / (2.0 * rho)

        def unpack(y):
            y = y.reshape(len(live), 1 + d1 + d)
            return y[:, 0], y[:, 1:1 + d1], y[:, 1 + d1:]

        def field(_, y):
            v, k, q = unpack(y)
            bq, bk = q @ b.T, k @ b
            return np.concatenate([np.sum(k * bq, axis=1)[:, None], v[:, None] * bq, v[:, None] * bk], axis=1).reshape(-1)

        def frac(y):  # (h, i) share of half the learned value of pair i that head h holds, on its own pair
            v, k, q = unpack(y)
            gam = v[:, None] * (k @ uu) * (q @ wt.T)
            # A head counts only on the pair that carries most of its loss decrease γ_i σ_i (a growing head
            # also projects on pairs with small targets σ_i/2ρ_i, e.g. ones through the key's y slot).
            own = np.argmax(gam * sv, axis=1)
            return np.where(np.arange(sv.size) == own[:, None], gam / target, -np.inf)

        def progress(_, y):
            return float(np.max(frac(y))) - 1.0

        progress.terminal, progress.direction = True, 1
        y0 = np.concatenate([np.concatenate([[state[h][0]], state[h][1], state[h][2]]) for h in live])
        sol = solve_ivp(field, (t_now, t_now + horizon), y0, method="LSODA", events=progress, rtol=rtol, atol=1e-14)
        if sol.status != 1:
            break
        y = sol.y_events[0][0]
        t_now = float(sol.t_events[0][0])
        i, j = np.unravel_index(np.argmax(frac(y)), (len(live), sv.size))
        v, k, q = unpack(y)
        state = {h: (v[n], k[n], q[n]) for n, h in enumerate(live) if n != i}
        times.append(t_now)
        heads.append(live[i])
        directions.append(int(np.argmax(np.abs(uu[:d, j] * wt[j]))))
    return HeadEscapes(np.asarray(times), np.asarray(heads, dtype=int), np.asarray(directions, dtype=int))
