"""Saddle-to-saddle dynamics of a diagonal linear network on sparse regression
(Pesme & Flammarion 2023, "Saddle-to-saddle dynamics in diagonal linear
networks", arXiv 2304.00488, Fig. 1 and Algorithm 1), and the contrast of
Zhang, Saxe & Latham (arXiv 2512.20607): initialization-induced saddles give
sparse weights, data-induced saddles give low-rank ones.

A diagonal network β = u ⊙ v (u₀ = √2 α, v₀ = 0, loss (1/2P)‖y − Xβ‖², f64
gradient flow, all α in one vmapped solve) learns y = Xβ* with a 4-sparse β*.
In rescaled time t̃ = t/ln(1/α) the trajectory is piecewise constant: it sits at
saddles β_k (loss minimisers on signed faces) and jumps at times t̃_k, both
computed by ``theory.diagonal.incremental_learning`` (their Algorithm 1).
Finite-α jump times differ from t̃_k by C_k/ln(1/α); the verify table checks
each jump at the smallest α (relative tol 1/ln(1/α)), the extrapolation of the
jump times to 1/ln(1/α) → 0 (tolerance from the extrapolation's own error
estimate, ``extrapolate_to_zero``), the saddle values at the
theory's plateau midpoints, the number of jumps, and the conserved u² − v²
(``verify`` gives every tolerance's reason). A two-layer linear net from a small
random (non-aligned) init on a rank-3 teacher is the contrast: its W becomes
low-rank but dense, the diagonal net's β sparse.

    saddle run diagonal-sparse            # ~25 s on 2 CPU cores
    saddle run diagonal-sparse --smoke    # ~15 s
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dynamics
import tasks
from dynamics.extrapolation import crossing_error, extrapolate_to_zero
from experiments import plotting
from experiments.common import POSITIVE, POSITIVE_INT, POSITIVE_TUPLE, check, check_fields, field, row, worst_point_row
from models import diagonal, linear
from theory.diagonal import dual_path, incremental_learning, n_jumps, saddle_losses, saddle_path
from theory.saddle import transition_times

NAME = "diagonal-sparse"
DESCRIPTION = "diagonal linear nets jump saddle to saddle, one coordinate at a time (Pesme & Flammarion 2023)"

_ALPHAS = (lambda a: all(0 < x < 0.1 for x in a) and len(set(a)) == len(a), "distinct numbers in (0, 0.1)")
_NONZERO = (lambda b: all(x != 0 for x in b), "comma-separated nonzero numbers")


@dataclasses.dataclass(frozen=True)
class Config:
    DEPRECATED_KEYS = {"lin_eta": "lin_learning_rate", "horizon": "horizon_escapes"}  # old name -> new name, accepted (with a warning) for one release
    d: int = field(15, POSITIVE_INT, "dimension of β")
    n_samples: int = field(40, POSITIVE_INT, "P, samples with i.i.d. N(0, 1) inputs (P < d or P ≥ d)")
    beta_star: Tuple[float, ...] = field((2.0, -1.3, 0.8, 0.45), _NONZERO, "nonzero entries of β* (placed at random coordinates)")
    alphas: Tuple[float, ...] = field((1e-3, 1e-4, 1e-5, 1e-6, 1e-8, 1e-10, 1e-12), _ALPHAS, "init scales α (u₀ = √2α, v₀ = 0)")
    horizon_escapes: float = field(1.5, (lambda h: h > 1, "a number > 1"), "simulated rescaled time in multiples of the last predicted jump time t̃_K")
    n_record: int = field(3000, (lambda n: n >= 100, "an integer ≥ 100"), "recording times (uniform in t̃)")
    rtol: float = field(1e-9, POSITIVE, "ODE solver relative tolerance")
    fit_below: float = field(1e-4, POSITIVE, "the extrapolation in 1/ln(1/α) uses the α ≤ fit_below")
    threshold: float = field(0.05, POSITIVE, "|βᵢ|, |W_ij| and singular values above it count as nonzero")
    lin_s: Tuple[float, ...] = field((3.0, 2.0, 1.0), POSITIVE_TUPLE, "linear contrast: singular values of Σyx")
    lin_width: int = field(8, POSITIVE_INT, "linear contrast: n_in = hidden = n_out")
    lin_std: float = field(1e-3, POSITIVE, "linear contrast: std of the i.i.d. Gaussian init of both layers")
    lin_learning_rate: float = field(0.02, (lambda e: 0 < e <= 0.05, "a number in (0, 0.05]"), "linear contrast: GD rate η (τ = 1/η)")
    lin_horizon: float = field(10.0, POSITIVE, "linear contrast: simulated time t/τ = steps × η")
    seed: int = field(0, None, "PRNG seed (design, support of β*, linear task and init)")

    def __post_init__(self):
        check_fields(self)
        check("beta_star", self.beta_star, len(self.beta_star) <= self.d, f"at most d = {self.d} entries")
        check("lin_s", self.lin_s, list(self.lin_s) == sorted(self.lin_s, reverse=True) and len(self.lin_s) <= self.lin_width,
              f"non-increasing, at most lin_width = {self.lin_width} values")
        check("threshold", self.threshold, self.threshold < min(self.lin_s) / 2, f"< min(lin_s)/2 = {min(self.lin_s) / 2}")


def smoke() -> Config:
    return Config(alphas=(1e-3, 1e-4, 1e-5, 1e-6, 1e-8), n_record=800)


def sparse_regression(key, *, d: int, n_samples: int, beta_star):
    """x: (P, d) i.i.d. N(0, 1), β* with the given nonzeros at random coordinates, y = xβ*."""
    k_x, k_s = jax.random.split(key)
    x = jax.random.normal(k_x, (n_samples, d))
    support = jax.random.permutation(k_s, d)[: len(beta_star)]
    b = jnp.zeros((d,), x.dtype).at[support].set(jnp.asarray(beta_star, x.dtype))
    return x, x @ b, b


def _diagonal_flows(x, y, alphas, grid, rtol):
    """Gradient flow of u ⊙ v from the paper's init at every α (one vmapped solve)."""
    loss, d = dynamics.model_loss(diagonal.apply), x.shape[1]
    atol = 1e-6 * min(alphas) ** 2  # the small coordinates are O(α²): control them relatively

    def one(alpha):
        p0 = diagonal.init(d, alpha=alpha)
        traj = dynamics.gradient_flow(loss, p0, (x, y), times=grid * jnp.log(1.0 / alpha),
                                      observe=lambda p: {"beta": diagonal.beta(p)}, rtol=rtol, atol=atol)
        # Drift relative to the size of the terms, max(u² + v²) (u² − v² = 2α² is their tiny difference).
        drift = jnp.max(jnp.abs(diagonal.conserved(traj.params) - diagonal.conserved(p0)))
        return traj.loss, traj.stats["beta"], drift / jnp.max(traj.params["u"] ** 2 + traj.params["v"] ** 2)

    return jax.jit(jax.vmap(one))(jnp.asarray(alphas))


@functools.partial(jax.jit, static_argnames=("d", "n_samples", "beta_star", "n", "s", "std"))
def _tasks(key, *, d, n_samples, beta_star, n, s, std):
    """The sparse regression data, the linear contrast's teacher and its init."""
    key_reg, key_lin, key_init = jax.random.split(key, 3)
    x, y, b_star = sparse_regression(key_reg, d=d, n_samples=n_samples, beta_star=beta_star)
    task = tasks.teacher(key_lin, n_in=n, n_out=n, s=s)  # population statistics, Σxx = I
    return x, y, b_star, task, linear.init_gaussian(key_init, (n, n, n), std=std)


def simulate(cfg: Config, progress: bool = False) -> dict:
    x, y, b_star, task, lin_p0 = _tasks(jax.random.key(cfg.seed), d=cfg.d, n_samples=cfg.n_samples, beta_star=cfg.beta_star,
                                        n=cfg.lin_width, s=cfg.lin_s, std=cfg.lin_std)
    path = incremental_learning(x, y)
    k = int(n_jumps(path.times))
    times, saddles = np.asarray(path.times[: k + 1]), np.asarray(path.saddles[: k + 1])
    grid = np.linspace(0.0, cfg.horizon_escapes * times[-1], cfg.n_record)
    losses, betas, drift = _diagonal_flows(x, y, cfg.alphas, grid, cfg.rtol)
    out = {
        "beta_star": np.asarray(b_star), "alphas": np.asarray(cfg.alphas), "t_rescaled": grid, "x": np.asarray(x), "y": np.asarray(y),
        "jump_times": times, "saddles": saddles, "saddle_losses": np.asarray(saddle_losses(saddles, x, y)),
        "loss": np.asarray(losses), "beta": np.asarray(betas), "conserved_drift": np.asarray(drift),
        "path_complete": np.bool_(not np.isfinite(path.times[-1])),
    }

    # Contrast: two-layer linear net, small non-aligned init, rank-3 teacher, full-batch GD.
    n_steps = int(round(cfg.lin_horizon / cfg.lin_learning_rate))
    record = np.unique(np.linspace(0, n_steps, 301).round().astype(np.int64))

    def observe(params):
        w = linear.end_to_end(params)
        return {"sv": jnp.linalg.svd(w, compute_uv=False), "entries": jnp.sum(jnp.abs(w) > cfg.threshold)}

    def lin_loss(params, stats):  # = (1/2P)Σ‖y − W₂W₁x‖² on any data with these moments
        return dynamics.linear_loss_from_stats(linear.end_to_end(params), *stats)

    lin = dynamics.descend(lin_loss, lin_p0, optax.sgd(cfg.lin_learning_rate), (task.sigma_xx, task.sigma_yx, task.trace_yy),
                           record_steps=record, observe=observe, progress=progress)
    out.update(lin_t=record * cfg.lin_learning_rate, lin_sv=np.asarray(lin.stats["sv"]), lin_entries=np.asarray(lin.stats["entries"]),
               lin_loss=np.asarray(lin.loss), lin_s=np.asarray(task.s),
               lin_w_star=np.asarray(task.sigma_yx) @ np.linalg.inv(np.asarray(task.sigma_xx)),
               lin_w_final=np.asarray(linear.end_to_end(lin.params)))
    return out


# ------------------------------------------------------------ measurement

def _first_below(t, values, level):
    """First time the (non-increasing) ``values`` reach ``level``, linearly interpolated; NaN if never."""
    below = np.nonzero(values <= level)[0]
    if below.size == 0 or below[0] == 0:
        return np.nan
    i = below[0]
    return t[i - 1] + (values[i - 1] - level) / (values[i - 1] - values[i]) * (t[i] - t[i - 1])


def measured_jump_times(arrays) -> np.ndarray:
    """(n_alpha, K): time t̃ at which the loss crosses the midpoint (L(β_{k−1}) + L(β_k))/2."""
    levels = 0.5 * (arrays["saddle_losses"][:-1] + arrays["saddle_losses"][1:])
    return np.array([[_first_below(arrays["t_rescaled"], loss, lv) for lv in levels] for loss in arrays["loss"]])


def jump_time_read_errors(arrays) -> np.ndarray:
    """(n_alpha, K): ``dynamics.extrapolation.crossing_error`` of every entry of ``measured_jump_times``."""
    levels = 0.5 * (arrays["saddle_losses"][:-1] + arrays["saddle_losses"][1:])
    return np.array([[crossing_error(arrays["t_rescaled"], loss, lv) for lv in levels] for loss in arrays["loss"]])


def _eps(alphas):
    return 1.0 / np.log(1.0 / np.asarray(alphas))


def extrapolated_jump_times(arrays, fit_below) -> np.ndarray:
    """Least-squares fit t̃_sim(α) = t̃_∞ + C ε, ε = 1/ln(1/α), per jump, over the α ≤ fit_below;
    returns (t̃_∞, C): (2, K), or None with fewer than two such α."""
    use = arrays["alphas"] <= fit_below
    if np.sum(use) < 2:
        return None
    eps = _eps(arrays["alphas"][use])
    return np.linalg.lstsq(np.stack([np.ones_like(eps), eps], axis=1), measured_jump_times(arrays)[use], rcond=None)[0]


def _counts(arrays, threshold):
    return {
        "diag": np.sum(np.abs(arrays["beta"][int(np.argmin(arrays["alphas"]))]) > threshold, axis=-1),
        "diag_theory": np.sum(np.abs(arrays["saddles"]) > threshold, axis=-1),
        "rank": np.sum(arrays["lin_sv"] > threshold, axis=-1),
    }


def _changes(seq):
    """(number of changes, largest |step|) of a count sequence."""
    return int(np.sum(np.diff(seq) != 0)), int(np.max(np.abs(np.diff(seq)), initial=0))


def _support_changes(beta, threshold):
    """Recordings at which the set {i : |βᵢ| > threshold} differs from the previous one."""
    on = np.abs(beta) > threshold
    return int(np.sum(np.any(on[1:] != on[:-1], axis=1)))


def lin_final_error(cfg: Config, w_star) -> float:
    """Bound on max|W − W*| at the end of the linear contrast, from the theory (no simulation).

    Mode k of the aligned solution is the logistic u_k(t) = s_k/(1 + e^{−2s_k(t − t_k)})
    (Saxe et al. 2014, arXiv 1312.6120, Eq. 8; τ = 1), t_k its half-learning time from
    i.i.d. N(0, σ²) init (``theory.saddle.transition_times``) taken at its 99% quantile
    over inits (a late seed) and stretched by the Euler factor 2sη/ln(1 + 2sη) (GD grows
    a small mode by 1 + 2ηs per step; near u = s it contracts faster than the flow, so the
    logistic tail is an upper bound). W − W* = Σ_k (u_k − s_k) a_k b_kᵀ (a_k, b_k the
    singular vectors of W*), so max|W − W*| ≤ Σ_k (s_k − u_k) max|a_k| max|b_k|, plus the
    directions no mode learns, which stay at their init product ≲ σ² h.
    """
    a, s, bt = np.linalg.svd(np.asarray(w_star, dtype=np.float64))
    r = int(np.sum(s > 1e-12 * s[0]))
    a, s, bt = a[:, :r], s[:r], bt[:r]
    t_half = np.asarray(transition_times(s, init_scale=cfg.lin_std, depth=2, width=cfg.lin_width, quantile=0.99))
    t_half = t_half * 2 * s * cfg.lin_learning_rate / np.log1p(2 * s * cfg.lin_learning_rate)
    tail = s / (1.0 + np.exp(2 * s * (cfg.lin_horizon - t_half)))
    return float(np.sum(tail * np.max(np.abs(a), axis=0) * np.max(np.abs(bt), axis=1)) + cfg.lin_std**2 * cfg.lin_width)


def saddle_gradients(arrays):
    """(G, ∇L(β_j)): the input Gram matrix G = XᵀX/P (d, d) and the loss gradient Gβ_j − Xᵀy/P at every
    saddle of the theory, (K + 1, d)."""
    x, y = arrays["x"], arrays["y"]
    g_mat = x.T @ x / x.shape[0]
    return g_mat, arrays["saddles"] @ g_mat.T - x.T @ y / x.shape[0]


def plateau_readings(arrays, alpha):
    """Where and how closely the flow at init scale ``alpha`` must sit on each saddle β_k, k = 1..K.

    Read at the grid point nearest the midpoint of the theory's plateau, (t̃_k + t̃_{k+1})/2
    (the last plateau: between t̃_K and the end of the grid), decided by the theory alone.
    Tolerance (absolute, our derivation from the mirror flow of ``theory.diagonal``): every
    coordinate obeys βᵢ = α² sinh(2 ln(1/α) s_α,ᵢ(t̃)) exactly, and s_α → s (``dual_path``).
    s_α − s = ∫(∇L(β°) − ∇L(β_α))dt̃ is nonzero only where a jump is late or early; with
    each jump j within ε t̃_j of t̃_j, ε = 1/ln(1/α) (the jump-time rows check this),
    |s_α,ᵢ − sᵢ| ≤ ε Σ_{j≤k} t̃_j |∇ᵢL(β_{j−1}) − ∇ᵢL(β_j)| =: ε cᵢ. So a coordinate β_k
    leaves at 0 is |βᵢ| ≤ ½ α^{2(1−|sᵢ|)} e^{2cᵢ} (ε ln(1/α) = 1: an α-independent factor),
    and the active ones A, the least-squares solution given the inactive ones I, move by
    |G_AA⁻¹G_AI| times that, plus what is left of their approach to β_k after the jump: the
    mirror flow linearised at β_k, dβ_A/dt = −2|β_k,A| G_AA(β_A − β_k,A), shrinks the jump
    max|β_k − β_{k−1}| at least as e^{−λt}, λ the least eigenvalue of 2|β_k,A|^{½}G_AA|β_k,A|^{½},
    over the real time since the jump, (t̃ − t̃_k) ln(1/α) − t̃_k. tol_k = the largest entry of
    that bound. Returns (indices (K,), tolerances (K,)).
    """
    times, saddles, grid = arrays["jump_times"], arrays["saddles"], arrays["t_rescaled"]
    g_mat, grads = saddle_gradients(arrays)
    ends = np.append(times[2:], grid[-1])
    idx = np.array([int(np.argmin(np.abs(grid - 0.5 * (a + e)))) for a, e in zip(times[1:], ends)], dtype=int)
    duals = np.asarray(dual_path(grid[idx], times, saddles, arrays["x"], arrays["y"]))
    tols = []
    for k, s_k in enumerate(duals, start=1):
        act = saddles[k] != 0
        shift = np.sum(times[1:k + 1, None] * np.abs(np.diff(grads[:k + 1], axis=0)), axis=0)  # cᵢ, (d,)
        off = 0.5 * alpha ** (2 * (1 - np.abs(s_k))) * np.exp(2 * shift)
        off = np.where(act, 0.0, off)
        on = np.zeros(0)
        if act.any():
            g_aa = g_mat[np.ix_(act, act)]
            on = np.abs(np.linalg.solve(g_aa, g_mat[np.ix_(act, ~act)])) @ off[~act]
            # approach after the jump: linearised mirror flow dβ_A/dt = −2|β_A| G_AA (β_A − β_k,A), slowest
            # rate λ; real time since the (at most ε t̃_k late) jump (t̃ − t̃_k) ln(1/α) − t̃_k
            root = np.sqrt(2 * np.abs(saddles[k][act]))
            rate = float(np.min(np.linalg.eigvalsh(root[:, None] * g_aa * root[None, :])))
            elapsed = max(0.0, (grid[idx[k - 1]] - times[k]) * np.log(1 / alpha) - times[k])
            on = on + np.max(np.abs(saddles[k] - saddles[k - 1])) * np.exp(-rate * elapsed)
        tols.append(float(max(np.max(off), np.max(on, initial=0.0))))
    return idx, np.asarray(tols)


def verify(arrays: dict, cfg: Config) -> list:
    """Theory (α → 0 limit, Algorithm 1) vs f64 gradient flow at finite α.

    Jump times are where the loss crosses the midpoint of two successive saddle
    losses. At finite α they differ from t̃_k by C_k ε + o(ε), ε = 1/ln(1/α): for
    whitened inputs the exact solution (``theory.diagonal.orthogonal_time``)
    gives C = ln(2|β*|)/(2|β*|) = t̃ · ln(2|β*|)/2, a relative error below ε for
    0.07 < |β*| < 3.7, so the smallest-α rows use relative tol ε(α_min). With
    three or more α ≤ fit_below the times are extrapolated to ε = 0 by a quadratic
    in ε (``dynamics.extrapolation.extrapolate_to_zero``), the tolerance is computed, not chosen: the
    distance between the quadratic's and the line's intercepts (the error of the
    lower order bounds the higher order's while the series in ε converges) plus
    the grid-interpolation error of each read time (``jump_time_read_errors``)
    pushed through the fit; relative to t̃_k.
    Saddle values: β at the midpoint of the theory's plateau k, smallest α, vs β_k
    (absolute tol from the mirror flow, ``plateau_readings``: ½α^{δ_k} times the
    active coordinates' coupling, δ_k the theory's dual gap there), and the loss
    there vs L(β_k) (tol: that bound pushed through L, first order ∇L(β_k)·δ plus
    the quadratic ½δᵀGδ). Conserved
    u² − v² (= 2α² exactly), its drift relative to the size of the terms
    max(u² + v²): tol 10³ × the solver rtol (local error ≤ rtol per step,
    accumulated over ≲ 10³ steps). Linear contrast: the count of entries of W
    above ``threshold`` may miss those entries of W* that lie within the theory's
    bound on the final max|W − W*| (``lin_final_error``) of the threshold.
    """
    rows = []
    times, saddles = arrays["jump_times"], arrays["saddles"]
    k_jumps = len(times) - 1
    rows.append(row("Algorithm 1 path ended (1 = yes)", 1.0, float(arrays["path_complete"]), tol=0, relative=False))
    counts = _counts(arrays, cfg.threshold)
    i_min = int(np.argmin(arrays["alphas"]))
    rows.append(row("number of jumps = support changes at smallest α", k_jumps,
                    _support_changes(arrays["beta"][i_min], cfg.threshold), tol=0, relative=False))
    a_min, eps_min = arrays["alphas"][i_min], _eps(arrays["alphas"][i_min])
    measured = measured_jump_times(arrays)
    for k in range(1, k_jumps + 1):
        rows.append(row(f"jump {k} time t/ln(1/α) at α={a_min:g} (tol 1/ln(1/α))", times[k], measured[i_min, k - 1], tol=eps_min))
    use = arrays["alphas"] <= cfg.fit_below
    if np.sum(use) >= 3:
        t_inf, bound = extrapolate_to_zero(_eps(arrays["alphas"][use]), measured[use], jump_time_read_errors(arrays)[use])
        for k in range(1, k_jumps + 1):
            rows.append(row(f"jump {k} time extrapolated to 1/ln(1/α) → 0 (quadratic in ε; tol: distance to the line's + read error)",
                            times[k], t_inf[k - 1], tol=bound[k - 1] / abs(times[k])))
    grid, beta = arrays["t_rescaled"], arrays["beta"][i_min]
    g_mat, grads = saddle_gradients(arrays)
    for k, (j, tol) in enumerate(zip(*plateau_readings(arrays, a_min)), start=1):
        rows.append(worst_point_row(f"saddle {k} value β_k at the plateau's midpoint t̃={grid[j]:.3f}, α={a_min:g}",
                                    saddles[k], beta[j], tol=tol, relative=False))
        # L(β_k + δ) − L(β_k) = ∇L(β_k)·δ + ½δᵀGδ with every |δᵢ| ≤ tol
        loss_tol = np.sum(np.abs(grads[k])) * tol + 0.5 * np.sum(np.abs(g_mat)) * tol**2
        rows.append(row(f"plateau {k} loss at its midpoint vs L(β_k), α={a_min:g} (absolute)", arrays["saddle_losses"][k],
                        arrays["loss"][i_min][j], tol=loss_tol, relative=False))
    rows.append(row("conserved u²−v² drift / max(u²+v²), worst α", 0.0, float(np.max(arrays["conserved_drift"])), tol=1e3 * cfg.rtol, relative=False))
    # Contrast: data-induced saddles (linear net) lower the rank, init-induced ones (diagonal) sparsify.
    rank_changes, rank_step = _changes(counts["rank"])
    rows.append(row("linear net: final rank W = rank Σyx", len(arrays["lin_s"]), counts["rank"][-1], tol=0, relative=False))
    rows.append(row("linear net: largest rank increment between recordings", 1, rank_step, tol=0, relative=False))
    # Entries of W* within the theory's bound on the final error max|W − W*| of the threshold may be counted either way.
    w_star = arrays["lin_w_star"]
    rows.append(row("linear net: final nonzero entries of W = those of W*", np.sum(np.abs(w_star) > cfg.threshold),
                    arrays["lin_entries"][-1], tol=np.sum(np.abs(np.abs(w_star) - cfg.threshold) <= lin_final_error(cfg, w_star)),
                    relative=False))
    rows.append(row("diagonal net: final nonzero coordinates = those of β_K", counts["diag_theory"][-1], counts["diag"][-1], tol=0, relative=False))
    rows.append(row("diagonal net: largest change of nonzero count per recording", _changes(counts["diag_theory"])[1],
                    _changes(counts["diag"])[1], tol=0, relative=False))
    return rows


# ------------------------------------------------------------------ plots

RESCALED_LABEL = "rescaled time t / ln(1/α)  (t in units of τ)"


def plot(arrays: dict, cfg: Config) -> dict:
    times, saddles, grid = arrays["jump_times"], arrays["saddles"], arrays["t_rescaled"]
    alphas = arrays["alphas"]
    i_min = int(np.argmin(alphas))
    theory_path = np.asarray(saddle_path(grid, times, saddles))
    ever = np.nonzero(np.any(np.abs(saddles) > 0, axis=0))[0]
    first_on = [int(np.argmax(np.abs(saddles[:, i]) > 0)) for i in ever]
    ever = ever[np.argsort(first_on)]
    cs = plotting.colors(max(len(ever), 2))

    fig, (ax_b, ax_loss, ax_err) = plotting.figure(3, width=4.6)
    for c, i in zip(cs, ever):
        ax_b.plot(grid, arrays["beta"][i_min][:, i], color=c, label=f"β_{i}", **plotting.SIM)
    others = [i for i in range(saddles.shape[1]) if i not in ever]
    for i in others:
        ax_b.plot(grid, arrays["beta"][i_min][:, i], color="0.7", lw=1.0)
    for i in range(saddles.shape[1]):
        ax_b.plot(grid, theory_path[:, i], **plotting.THEORY)
    ax_b.plot([], [], label="Algorithm 1 (α→0)", **plotting.THEORY)
    ax_b.set(title=f"coordinates βᵢ, α = {alphas[i_min]:g}", xlabel=RESCALED_LABEL, ylabel="βᵢ")
    ax_b.legend(fontsize=7, frameon=False, ncol=2, loc="upper left", bbox_to_anchor=(0.2, 0.93))

    acs = plotting.colors(len(alphas))
    order = np.argsort(alphas)[::-1]
    for c, j in zip(acs, order):
        ax_loss.plot(grid, arrays["loss"][j], color=c, label=f"α = {alphas[j]:g}", **plotting.SIM)
    theory_loss = np.asarray(arrays["saddle_losses"])[np.clip(np.searchsorted(times, grid, side="right") - 1, 0, len(times) - 1)]
    ax_loss.plot(grid, np.maximum(theory_loss, 1e-12), label="theory L(β_k)", **plotting.THEORY)
    floor = max(1e-6, 0.1 * np.min(arrays["saddle_losses"][arrays["saddle_losses"] > 0], initial=1.0))
    ax_loss.set(title="loss L = (1/2P)‖y − Xβ‖²", xlabel=RESCALED_LABEL, ylabel="loss", yscale="log",
                ylim=(floor, 2 * arrays["saddle_losses"][0]))
    ax_loss.legend(fontsize=7, frameon=False)

    measured = measured_jump_times(arrays)
    eps = _eps(alphas)
    jcs = plotting.colors(max(len(times) - 1, 2))
    e_line = np.linspace(0.0, eps.max() * 1.05, 20)
    fit = extrapolated_jump_times(arrays, cfg.fit_below)
    for k in range(1, len(times)):
        ax_err.plot(eps, measured[:, k - 1] - times[k], "o-", color=jcs[k - 1], label=f"jump {k}", **plotting.SIM)
        if fit is not None:
            ax_err.plot(e_line, fit[0, k - 1] - times[k] + fit[1, k - 1] * e_line, **plotting.THEORY)
    ax_err.axhline(0.0, color="0.5", lw=0.8)
    ax_err.plot([], [], label="fit t̃_∞ + C/ln(1/α)", **plotting.THEORY)
    ax_err.set(title="jump time error → 0 as α → 0", xlabel="ε = 1/ln(1/α)", ylabel="t̃_sim − t̃_k (Algorithm 1)",
               xlim=(0, None))
    ax_err.legend(fontsize=7, frameon=False)
    fig.tight_layout()

    counts = _counts(arrays, cfg.threshold)
    fig2, (ax_lin, ax_diag) = plotting.figure(2, width=4.8)
    t_lin = arrays["lin_t"]
    ax_lin.plot(t_lin, counts["rank"], color="C0", label=f"rank W (σ_k > {cfg.threshold:g})", **plotting.SIM)
    ax_lin.plot(t_lin, arrays["lin_entries"], color="C1", label=f"entries |W_ij| > {cfg.threshold:g}", **plotting.SIM)
    ax_lin.axhline(len(arrays["lin_s"]), **plotting.THEORY, label="rank Σyx, nnz(W*)")
    ax_lin.axhline(float(np.sum(np.abs(arrays["lin_w_star"]) > cfg.threshold)), **plotting.THEORY)
    n = cfg.lin_width
    ax_lin.axhline(n * n, color="0.6", ls=":", lw=1.0, label=f"all n² = {n * n} entries")
    ax_lin.set(title=f"linear net {n}-{n}-{n} (data-induced saddles): low rank, dense", xlabel=plotting.TIME_LABEL,
               ylabel="count", yscale="symlog", ylim=(0, 2 * n * n))
    ax_lin.legend(fontsize=7, frameon=False, loc="lower right")
    ax_diag.plot(grid, counts["diag"], color="C1", label=f"coordinates |βᵢ| > {cfg.threshold:g}", **plotting.SIM)
    stair = counts["diag_theory"][np.clip(np.searchsorted(times, grid, side="right") - 1, 0, len(times) - 1)]
    ax_diag.plot(grid, stair, label="Algorithm 1 saddles", **plotting.THEORY)
    ax_diag.axhline(cfg.d, color="0.6", ls=":", lw=1.0, label=f"all d = {cfg.d} coordinates")
    ax_diag.set(title=f"diagonal net d={cfg.d} (init-induced saddles): sparse", xlabel=RESCALED_LABEL,
                ylabel="count", yscale="symlog", ylim=(0, 2 * n * n))
    ax_diag.legend(fontsize=7, frameon=False, loc="upper left", title=f"α = {alphas[i_min]:g}", title_fontsize=7)
    ticks = [v for v in (0, 1, 2, 4, 8, 16, 32, 64, 128) if v < 2 * n * n]
    for ax in (ax_lin, ax_diag):  # symlog keeps 1, 2, 3 and 64 legible on one shared scale
        ax.set_yticks(ticks, [str(v) for v in ticks])
        ax.minorticks_off()
    fig2.tight_layout()
    return {"saddles": fig, "contrast": fig2}



# ------------------------------------------------------------------ sweeps
# `saddle sweep diagonal-sparse --grid seed=0,...,63`: every cell is one design and
# support of β*, with a flow per α in ``alphas``; the seed is traced.
SWEEP_FIELDS = ("seed",)
SWEEP_METRIC = "first_jump_rel_err"


def cell(cfg: Config, values: dict) -> dict:
    """One sparse-regression draw (seed traced) by gradient flow of u ⊙ v at every α
    in ``alphas``, on a grid of t̃ = t/ln(1/α) up to ``horizon_escapes`` × the last
    jump of Algorithm 1 (arXiv 2304.00488, here traced): loss curves (α, T), and
    the first jump's measured t̃ at the smallest α (the loss crosses the midpoint
    of the first two saddles' losses) and its relative error against Algorithm 1
    (an O(1/ln(1/α)) finite-α offset, as in ``verify``)."""
    from experiments.saxe_modes import crossing_time

    key_reg = jax.random.split(jax.random.key(values["seed"]), 3)[0]  # as _tasks
    x, y, _ = sparse_regression(key_reg, d=cfg.d, n_samples=cfg.n_samples, beta_star=cfg.beta_star)
    path = incremental_learning(x, y)
    t_last = path.times[n_jumps(path.times)]
    grid = jnp.linspace(0.0, cfg.horizon_escapes * t_last, cfg.n_record)
    rtol = cfg.rtol if jax.config.jax_enable_x64 else max(cfg.rtol, 1e-6)  # float32 sweeps cannot resolve 1e-9
    losses, _, _ = _diagonal_flows(x, y, cfg.alphas, grid, rtol)
    levels = saddle_losses(path.saddles[:2], x, y)
    first = crossing_time(grid, -losses[int(np.argmin(cfg.alphas))], -0.5 * (levels[0] + levels[1]))
    return {"loss": losses, "first_jump": first, "first_jump_rel_err": jnp.abs(first / path.times[1] - 1.0)}
