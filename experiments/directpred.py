"""Non-contrastive SSL without collapse: eigen-dynamics, phase diagram and DirectPred
(Tian, Chen & Ganguli, ICML 2021, arXiv 2102.06810, Figs. 3-4, Theorems 1 and 3, Sec. 4).

Linear online net W: (n_out, n_in), symmetric linear predictor W_p, target τW (SimSiam, τ = 1)
or an EMA W_a (BYOL, rate β = ``ema_rate``); isotropic data with augmentation variance σ²
(``noise_var``), weight decay η (``weight_decay``), predictor rate ratio α_p (``alpha_p``).
Simulation (``models.ssl``): the full matrix flow of Lemma 1 in float64 (diffrax, one
``dynamics.sweep.run_sweep`` over every run below, so one compiled program), and SGD on
sampled views (``dynamics.descend``). Theory: ``theory.directpred``. Time t in flow units
(dθ/dt = −∂L/∂θ; SGD: step × learning_rate).

* aligned runs (W_p, F sharing an eigenbasis) at η = ``aligned_weight_decays``: p_j(t), s_j(t) vs
  Eqns. 11-12, the end points vs p₊* and s₊* = p₊*²/α_p, the collapsed modes vs the basin;
* random inits, SimSiam and BYOL (EMA): the commutator [F, W_p] → 0 (Theorem 3), every eigenvalue
  ends at p₊* or at the collapse 0; an unsymmetrised predictor: Theorem 1's balance
  F − W_pᵀW_p/α_p = e^{−2ηt}C;
* DirectPred (W_p = U diag(√s) Uᵀ from F, Eq. 18, ε = 0) from the same init: s_j(t) vs our
  reduction to Eq. 16, and which modes survive (√s_j(0) > p₋*), vs the trained predictor;
* phase diagram: η × σ² grid (random init), collapse iff η > η_c = 1/(4(1 + σ²));
* SGD on P sampled view pairs: eigenvalues at p₊*, commutator at the noise floor.

    saddle run directpred            # 63 flows + 15000 SGD steps: 30 s CPU (118 s wall on 2 cores under load ~20)
    saddle run directpred --smoke    # 19 flows + 4000 SGD steps: 30 s CPU (measured 2026-12-04, load ~8)

Both are dominated by compiling the one vmapped flow (and the SGD scan, two theory solves), so
the smoke costs what the full run does; the full run adds cells, not programs.

Paper (arXiv 2102.06810) next to saddle (full config, float64, measured 2026-12-04):

* Sec. 3.2 / Fig. 4: on the parabola p±* = [τ ± √(τ² − 4η(1+σ²))]/(2(1+σ²)), p₊* stable, p₋* a saddle
  bounding the collapse basin p < p₋*. saddle: aligned matrix flows follow Eqns. 11-12 to ≤ 1.2e-9
  (η = 0.02, 0.1, 0.2; σ² = 0.5, α_p = 2); end points p = 0.646028 (η = 0.02, p₊* = 0.646028, rel.
  3e-7) and 0.5441518440112250 (η = 0.1, p₊* to 5e-16); surviving modes 4/4, 3/3, 0/0 as predicted.
* Obs#5: η > η_c = τ²/(4(1+σ²)) leaves only collapse. saddle: 56/56 cells of the η × σ² grid
  (random init, t = 300) collapse iff η > η_c.
* Theorem 1 (Eq. 5): WWᵀ − W_pᵀW_p/α_p = e^{−2ηt}C. saddle: exact for the unsymmetrised predictor
  (worst entry 1.7e-11); with Assumption 3's symmetrised flow it is not an invariant (extra terms
  ∝ [W_p, F]; 2.6e-3 worst entry for the SimSiam run, smoke config), so it is checked on the
  asymmetric run only.
* Theorem 3 (Eqs. 8-10): ‖[F, W_p]‖ ≤ e^{−2λ₀t}‖[F, W_p](0)‖. saddle: holds with slack ≥ 0.07 in
  log (λ₀ = 0.272); the relative commutator ends at 2e-27 (SimSiam; with EMA, BYOL, a little later);
  SGD on P = 32768 sampled pairs stalls at its noise floor 2e-5, eigenvalues 0.54418 vs p₊* 0.54415.
* Sec. 4, DirectPred (Eq. 18): STL-10 top-1 77.86% vs 74.51% for a trained linear predictor,
  ImageNet 72.4% vs 69.9% (not reproducible here: no images). saddle checks its linear mechanism:
  with ε = 0 the F spectrum follows Eq. 16 exactly (our reduction; rel. error 2.5e-9), every mode with
  √s_j(0) > p₋* survives (4/4), ending at s = p₊*² where a trained predictor ends at p₊*²/α_p (Obs#2).
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dynamics
from dynamics.sweep import product_grid, run_sweep
from experiments import plotting
from experiments.common import POSITIVE, POSITIVE_INT, POSITIVE_TUPLE, bound_row, check, check_fields, field, row
from models import ssl
from theory import directpred as theory

NAME = "directpred"
DESCRIPTION = "linear BYOL/SimSiam: predictor eigenvalues p±*, collapse above η_c, eigenspace alignment, DirectPred (Tian et al. 2021)"
KINDS = {"trained": 0, "aligned": 1, "directpred": 2, "asymmetric": 3}
NONNEG = (lambda v: v >= 0, "a number ≥ 0")


@dataclasses.dataclass(frozen=True)
class Config:
    n_in: int = field(8, POSITIVE_INT, "input dimension n_in")
    n_out: int = field(4, POSITIVE_INT, "representation dimension n_out (≤ n_in)")
    weight_decay: float = field(0.1, NONNEG, "weight decay η of the random-init, DirectPred and SGD runs")
    noise_var: float = field(0.5, NONNEG, "augmentation variance σ² (X' = σ²I)")
    alpha_p: float = field(2.0, POSITIVE, "predictor learning-rate ratio α_p")
    ema_rate: float = field(0.5, NONNEG, "EMA rate β of the BYOL run and of `saddle sweep` cells (0 = SimSiam)")
    init_scale: float = field(1.5, POSITIVE, "random init: W entries N(0, init_scale²/n_in)")
    predictor_mean: float = field(0.5, None, "random init: W_p = predictor_mean·I + noise")
    predictor_scale: float = field(0.1, NONNEG, "random init: size of W_p's symmetric noise")
    aligned_p0: Tuple[float, ...] = field((1.0, 0.4, 0.15, 0.03), None, "aligned runs: initial predictor eigenvalues")
    aligned_s0: Tuple[float, ...] = field((0.8, 0.05, 0.3, 0.004), POSITIVE_TUPLE, "aligned runs: initial F eigenvalues")
    aligned_weight_decays: Tuple[float, ...] = field((0.02, 0.1, 0.2), POSITIVE_TUPLE, "η of the aligned runs")
    phase_weight_decays: Tuple[float, ...] = field((0.02, 0.06, 0.1, 0.14, 0.18, 0.22, 0.26, 0.3), POSITIVE_TUPLE,
                                                   "phase diagram: η values")
    phase_noise_vars: Tuple[float, ...] = field((0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0), (lambda v: all(x >= 0 for x in v),
                                                "comma-separated numbers ≥ 0"), "phase diagram: σ² values")
    horizon: float = field(300.0, POSITIVE, "simulated time t in units of τ (flow time)")
    n_times: int = field(120, (lambda n: n >= 10, "an integer ≥ 10"), "recording times (log-spaced)")
    learning_rate: float = field(0.02, POSITIVE, "SGD learning rate (t = step × learning_rate)")
    batch_size: int = field(64, POSITIVE_INT, "SGD minibatch of view pairs")
    n_samples: int = field(32768, POSITIVE_INT, "SGD: number P of sampled view pairs")
    seed: int = field(0, None, "PRNG seed")

    def __post_init__(self):
        check_fields(self)
        check("n_out", self.n_out, self.n_out <= self.n_in, "≤ n_in")
        check("aligned_p0", self.aligned_p0, len(self.aligned_p0) == self.n_out, "n_out values")
        check("aligned_s0", self.aligned_s0, len(self.aligned_s0) == self.n_out, "n_out values")


def smoke() -> Config:
    # SGD at learning_rate 0.05 (4000 steps, not 10000): its rows' tolerance grows with √(lr/B) as
    # ``verify`` derives it (0.15 → 0.18 relative); the step is still far below 2/(largest curvature)
    return Config(phase_weight_decays=(0.05, 0.15, 0.25, 0.35), phase_noise_vars=(0.0, 0.5, 1.5), horizon=200.0,
                  n_times=80, n_samples=8192, learning_rate=0.05)


def _times(cfg: Config) -> np.ndarray:
    return dynamics.log_times(cfg.horizon, cfg.n_times, t_min=1e-2)


# ------------------------------------------------------------------ one flow (every run and sweep cell)
SWEEP_FIELDS = ("weight_decay", "noise_var", "alpha_p", "ema_rate", "seed")
SWEEP_METRIC = "s_max_final"


def cell(cfg: Config, values: dict) -> dict:
    """One float64 (float32 in fast sweeps) gradient flow of Lemma 1 (arXiv 2102.06810, Eqns. 2-4)
    from the init of ``values["seed"]``; ``values["kind"]`` (default trained): 0 = random init,
    trained predictor; 1 = aligned init (``aligned_p0``/``aligned_s0``); 2 = DirectPred (Eq. 18);
    3 = random init, trained predictor without symmetrisation (Lemma 1 as is).
    ``ema_rate`` 0 = SimSiam. Returns the spectra along t (``models.ssl.spectra``), the aligned
    mode variables and ``s_max_final`` = largest eigenvalue of F at the horizon (0: collapse)."""
    get = lambda k, default: jnp.asarray(values[k]) if k in values else jnp.asarray(default)
    eta, sig, ap, beta = (get(k, getattr(cfg, k)) for k in ("weight_decay", "noise_var", "alpha_p", "ema_rate"))
    kind = get("kind", KINDS["trained"])
    key = jax.random.key(values["seed"])
    random = ssl.init(key, cfg.n_in, cfg.n_out, scale=cfg.init_scale, predictor_mean=cfg.predictor_mean,
                      predictor_scale=cfg.predictor_scale)
    aligned, basis = ssl.init_aligned(key, cfg.n_in, p0=cfg.aligned_p0, s0=cfg.aligned_s0)
    # the asymmetric run starts from a non-symmetric W_p: its symmetric part plus an antisymmetric kick
    kick = cfg.predictor_scale * jax.random.normal(jax.random.fold_in(key, 1), (cfg.n_out, cfg.n_out))
    random = random._replace(predictor=random.predictor + jnp.where(kind == KINDS["asymmetric"], kick - kick.T, 0.0))
    params0 = jax.tree_util.tree_map(lambda a, r: jnp.where(kind == KINDS["aligned"], a, r), aligned, random)
    loss = ssl.training_loss(weight_decay=eta, noise_var=sig, alpha_p=ap, ema_rate=beta,
                             directpred=kind == KINDS["directpred"], symmetric=kind != KINDS["asymmetric"])

    def observe(p):
        return {**ssl.spectra(p, noise_var=sig, alpha_p=ap, weight_decay=eta),
                **{f"{k}_aligned": v for k, v in ssl.aligned_modes(p, basis).items()}}

    rtol = 1e-10 if jax.config.jax_enable_x64 else 1e-6  # float32 sweeps cannot resolve 1e-10
    flow = dynamics.gradient_flow(loss, params0, jnp.zeros(()), times=_times(cfg), observe=observe,
                                  rtol=rtol, atol=rtol * 1e-2)
    return {"t": flow.t, "loss": flow.loss, **flow.stats, "s_max_final": flow.stats["s"][-1, -1]}


def _runs(cfg: Config) -> dict:
    """The cells of ``simulate``'s one sweep: the phase grid, then the named runs."""
    grid = product_grid({"weight_decay": cfg.phase_weight_decays, "noise_var": cfg.phase_noise_vars})
    n = len(grid["weight_decay"])
    named = [("aligned", w, cfg.noise_var, 0.0, "aligned") for w in cfg.aligned_weight_decays] + [
        ("simsiam", cfg.weight_decay, cfg.noise_var, 0.0, "trained"),
        ("byol", cfg.weight_decay, cfg.noise_var, cfg.ema_rate, "trained"),
        ("directpred", cfg.weight_decay, cfg.noise_var, 0.0, "directpred"),
        ("asymmetric", cfg.weight_decay, cfg.noise_var, 0.0, "asymmetric")]
    cols = {"weight_decay": list(grid["weight_decay"]) + [r[1] for r in named],
            "noise_var": list(grid["noise_var"]) + [r[2] for r in named],
            "ema_rate": [0.0] * n + [r[3] for r in named],
            "kind": [KINDS["trained"]] * n + [KINDS[r[4]] for r in named]}
    total = len(cols["kind"])
    cells = {k: np.asarray(v, dtype=float) for k, v in cols.items()}
    cells.update(alpha_p=np.full(total, cfg.alpha_p), seed=np.full(total, cfg.seed, dtype=np.int64))
    index = {"phase": np.arange(n), "aligned": n + np.arange(len(cfg.aligned_weight_decays))}
    index.update({name: n + len(cfg.aligned_weight_decays) + i for i, name in enumerate(["simsiam", "byol", "directpred", "asymmetric"])})
    return cells, index


def _sgd(cfg: Config, progress: bool) -> dict:
    """SimSiam trained by SGD on P sampled view pairs x1,2 = x + σξ1,2 (x, ξ ~ N(0, I))."""
    k_data, k_init, k_sgd = jax.random.split(jax.random.key(cfg.seed + 1), 3)

    @jax.jit  # one compiled program for the draws, not one per eager op
    def draw(k_data):
        kx, k1, k2 = jax.random.split(k_data, 3)
        x = jax.random.normal(kx, (cfg.n_samples, cfg.n_in))
        sd = np.sqrt(cfg.noise_var)
        views = (x + sd * jax.random.normal(k1, x.shape), x + sd * jax.random.normal(k2, x.shape))
        return views, ssl.init(jax.random.key(cfg.seed), cfg.n_in, cfg.n_out, scale=cfg.init_scale,
                               predictor_mean=cfg.predictor_mean, predictor_scale=cfg.predictor_scale)

    views, params0 = draw(k_data)
    loss = ssl.training_loss(weight_decay=cfg.weight_decay, noise_var=cfg.noise_var, alpha_p=cfg.alpha_p, sampled=True)
    n_steps = int(round(cfg.horizon / cfg.learning_rate))
    traj = dynamics.descend(loss, params0, optax.sgd(cfg.learning_rate), views, record_steps=dynamics.log_steps(n_steps, cfg.n_times),
                            batch_size=cfg.batch_size, key=k_sgd, progress=progress,
                            observe=lambda p: ssl.spectra(p, noise_var=cfg.noise_var, alpha_p=cfg.alpha_p,
                                                          weight_decay=cfg.weight_decay))
    return {"sgd_t": np.asarray(traj.t) * cfg.learning_rate, **{f"sgd_{k}": np.asarray(traj.stats[k])
                                                               for k in ("s", "p", "commutator_rel")}}


def simulate(cfg: Config, progress: bool = False) -> dict:
    cells, index = _runs(cfg)
    outputs, failed = run_sweep(lambda v: cell(cfg, v), cells, batch_size=len(cells["kind"]), progress=progress,
                                write_results=False)
    out = {f"run_{k}": np.asarray(v) for k, v in outputs.items()}
    out.update({f"cell_{k}": v for k, v in cells.items()}, failed=failed, t=out.pop("run_t")[0])
    out.update({f"index_{k}": np.atleast_1d(v) for k, v in index.items()})
    # theory: Eqns. 11-12 from the aligned init (one solve, η broadcast over runs), DirectPred's reduction
    # from the simulated s(0) of its run (the random init), fixed points, η_c on the phase grid
    eta_a = np.asarray(cfg.aligned_weight_decays)[:, None]
    p0 = np.broadcast_to(np.asarray(cfg.aligned_p0), (eta_a.shape[0], cfg.n_out))
    s0 = np.broadcast_to(np.asarray(cfg.aligned_s0), p0.shape)
    # one solve: the recording times, then 40/min η (many e-folds of the slowest rate η at the
    # collapse) for ``theory.collapses``'s criterion on the end point
    t_long = np.append(out["t"], max(40.0 / float(np.min(eta_a)), 2.0 * cfg.horizon))
    th = theory.eigen_trajectory(t_long, p0, s0, weight_decay=eta_a, noise_var=cfg.noise_var, alpha_p=cfg.alpha_p)
    out.update(aligned_p_theory=np.moveaxis(np.asarray(th.p[:-1]), 1, 0), aligned_s_theory=np.moveaxis(np.asarray(th.s[:-1]), 1, 0),
               aligned_collapses=np.asarray(theory.nearer_collapse(th.p[-1], th.s[-1], weight_decay=eta_a,
                                                                   noise_var=cfg.noise_var, alpha_p=cfg.alpha_p)))
    s0_dp = out["run_s"][index["directpred"], 0]
    out["directpred_s_theory"] = np.asarray(theory.directpred_trajectory(
        out["t"], s0_dp, weight_decay=cfg.weight_decay, noise_var=cfg.noise_var))
    out["phase_eta_c"] = np.asarray(theory.critical_weight_decay(noise_var=np.asarray(cfg.phase_noise_vars)))
    out.update(_sgd(cfg, progress))
    return out


# ------------------------------------------------------------------ verification
def _fixed(cfg: Config, eta, sig=None):
    sig = cfg.noise_var if sig is None else sig
    p_plus, p_minus = (float(v) for v in theory.predictor_fixed_points(eta, noise_var=sig, alpha_p=cfg.alpha_p))
    return p_plus, p_minus


def _bottleneck_band(cfg: Config, sig: float) -> float:
    """η above η_c whose collapse is not over by the horizon. On the parabola near p* = 1/(2(1 + σ²)),
    ṗ ≈ −p*[(1 + σ²)(p − p*)² + η − η_c] (Eq. 16 expanded; our derivation), a saddle-node ghost passed
    in π/(p*√((1 + σ²)(η − η_c))); allowing it a third of the horizon gives η − η_c ≥ (3π/(p* T))²/(1 + σ²)."""
    c = 1.0 + sig
    p_star = 1.0 / (2.0 * c)
    return (3.0 * np.pi / (p_star * cfg.horizon)) ** 2 / c


def _survival_level(cfg: Config, eta: float, sig: float) -> float:
    """s above which a mode counts as not collapsed at the horizon: the saddle's s₋* = p₋*²/α_p
    (Sec. 3.2), or above η_c (no saddle) 1% of s at the bifurcation, p*²/α_p with p* = 1/(2(1 + σ²))."""
    _, p_minus = _fixed(cfg, eta, sig)
    return p_minus**2 / cfg.alpha_p if np.isfinite(p_minus) else 0.01 * (1.0 / (2.0 * (1.0 + sig))) ** 2 / cfg.alpha_p


def final_commutator_bound(arrays: dict, i: int, lam0: float, horizon: float) -> float:
    """Upper bound on ‖[F, W_p]‖_F/(‖F‖_F‖W_p‖_F) of run i at t = T = ``horizon``, from Theorem 3
    (arXiv 2102.06810: ‖C(t)‖ ≤ ‖C(0)‖e^{−2λ₀t}, λ₀ = min_t λ_min K(t)) and ‖F‖_F = ‖s‖, ‖W_p‖_F ≥ ‖p‖
    (p: W_p's diagonal in F's eigenbasis, ``models.ssl.spectra``): ‖C(0)‖e^{−2λ₀T}/(‖s(T)‖‖p(T)‖), and
    not below 1e-10, the flow's rtol (the relative commutator is not resolved below it)."""
    c0 = float(arrays["run_commutator"][i, 0])
    norms = float(np.linalg.norm(arrays["run_s"][i, -1]) * np.linalg.norm(arrays["run_p"][i, -1]))
    bound = c0 * np.exp(-2.0 * lam0 * horizon) / norms if norms > 0 else np.nan  # all collapsed: no claim, the row fails
    return float(max(bound, 1e-10))


def verify(arrays: dict, cfg: Config) -> list:
    """Rows and why their tolerances:

    aligned runs — the matrix flow and Eqns. 11-12 are both solved at rtol 1e-10 over O(1) values:
    tol 1e-7 absolute leaves room for the global error of two adaptive solves over t ≤ 300. End points
    of the surviving modes vs p₊*, s₊*: relative tol 10·e^{−|Re λ_slow|T} (λ_slow the slower Jacobian
    eigenvalue at p₊*, ``fixed_point_eigenvalues``; initial distances are O(1)). Surviving-mode count:
    modes with s(T) above ``_survival_level`` vs ``theory.collapses``, exact (tol 0). Floor 1e-9 on
    the end-point tolerance: ten times the solver's rtol.
    random inits — Theorem 1 (unsymmetrised W_p, where it is exact; with Assumption 3 it gains terms
    ∝ [W_p, F]): F − W_pᵀW_p/α_p − e^{−2ηt}(F − W_pᵀW_p/α_p)(0) = 0, tol 1e-7 (flow rtol 1e-10).
    Theorem 3 with λ₀ = min_t λ_min K(t): log(‖C(t)‖/‖C(0)‖) + 2λ₀t ≤ 1e-6 (rounding) for t > 0 while
    ‖C‖ is above the float64 floor (relative 1e-10); the value shown is the worst (least negative)
    slack. EMPIRICAL slack: near that floor the solver's rtol 1e-10 on F and W_p allows an O(1)
    relative error of C, so 1e-6 is not derived (it holds because the solver's errors in C are
    smooth in t, which is not bounded here). Final relative commutator: at most ``final_commutator_bound`` (Theorem 3 at t = T over a
    lower bound of ‖F‖‖W_p‖, or the solver's rtol 1e-10, below which it is not resolved). End: every p_j within 1e-4 of p₊* or 0 (distance e^{−|λ|T} to either attractor, ×10⁴
    margin for the transient; EMPIRICAL: the transient from a random init is not bounded here).
    DirectPred — s_j(t) vs our reduction of Eq. 12 with Eq. 18 (ε = 0): relative tol 1e-6 (two solves at
    rtol 1e-10, the flow through an eigendecomposition); survivors: √s_j(0) > p₋*, exact.
    phase diagram — collapse (max s(T) below ``_survival_level``) iff η > η_c, counted
    over cells outside the bottleneck band (``_bottleneck_band``); exact (tol 0).
    SGD — mean p over surviving modes vs p₊*: relative tol 3√(n_in/P) + 3√(learning_rate/B): the
    finite-P error of the second moments (operator-norm scale √(n_in/P)) plus the stationary SGD
    spread (∝ √(lr/B)), each ×3. Final relative commutator ≤ the same amount (both push W_p and F
    apart at that order)."""
    rows = []
    t, T = arrays["t"], cfg.horizon
    ia = arrays["index_aligned"]
    for i, eta in enumerate(cfg.aligned_weight_decays):
        p_sim, s_sim = arrays["run_p_aligned"][ia[i]], arrays["run_s_aligned"][ia[i]]
        p_th, s_th = arrays["aligned_p_theory"][i], arrays["aligned_s_theory"][i]
        jp, js = np.unravel_index(np.argmax(np.abs(p_sim - p_th)), p_sim.shape), np.unravel_index(np.argmax(np.abs(s_sim - s_th)), s_sim.shape)
        rows.append(row(f"aligned eta={eta:g}: p_j(t) vs Eqs. 11-12 (worst t, j)", p_th[jp], p_sim[jp], tol=1e-7, relative=False))
        rows.append(row(f"aligned eta={eta:g}: s_j(t) vs Eqs. 11-12 (worst t, j)", s_th[js], s_sim[js], tol=1e-7, relative=False))
        collapse = arrays["aligned_collapses"][i]
        survive_sim = s_sim[-1] > _survival_level(cfg, eta, cfg.noise_var)
        rows.append(row(f"aligned eta={eta:g}: surviving modes (theory.collapses)", np.sum(~collapse), np.sum(survive_sim), tol=0, relative=False))
        if np.any(~collapse):
            p_plus, _ = _fixed(cfg, eta)
            lam = theory.fixed_point_eigenvalues(eta, noise_var=cfg.noise_var, alpha_p=cfg.alpha_p)["plus"]
            tol = max(10.0 * np.exp(-np.min(np.abs(np.real(np.asarray(lam)))) * T), 1e-9)
            j = int(np.argmax(np.abs(p_sim[-1] - p_plus) * ~collapse))
            rows.append(row(f"aligned eta={eta:g}: final p_j vs p+* (worst surviving j)", p_plus, p_sim[-1, j], tol=tol))
            rows.append(row(f"aligned eta={eta:g}: final s_j vs s+* = p+*^2/alpha_p", p_plus**2 / cfg.alpha_p, s_sim[-1, j], tol=tol))

    p_plus, p_minus = _fixed(cfg, cfg.weight_decay)
    i = int(arrays["index_asymmetric"][0])
    imb = arrays["run_imbalance"][i]
    pred = np.exp(-2 * cfg.weight_decay * t)[:, None, None] * imb[0]
    rows.append(row("asymmetric Wp: Theorem 1, F - Wp'Wp/alpha_p - e^(-2 eta t) C (worst entry)", 0.0,
                    np.max(np.abs(imb - pred)), tol=1e-7, relative=False))
    for name in ("simsiam", "byol"):
        i = int(arrays[f"index_{name}"][0])
        p_end = arrays["run_p"][i, -1]
        rows.append(bound_row(f"{name}: final p_j, distance to nearest of p+*={p_plus:.4g} and 0 (worst j)",
                              np.max(np.minimum(np.abs(p_end - p_plus), np.abs(p_end))), at_most=1e-4))
    i = int(arrays["index_simsiam"][0])
    c, lam = arrays["run_commutator"][i], arrays["run_lambda_min_k"][i]
    lam0 = float(np.min(lam))
    live = (arrays["run_commutator_rel"][i] > 1e-10) & (t > 0)  # at t = 0 the bound holds with equality
    excess = np.log(c[live] / c[0]) + 2.0 * lam0 * t[live]
    rows.append(bound_row(f"simsiam: Theorem 3, log(|C(t)|/|C(0)|) + 2 lambda0 t, lambda0={lam0:.3g}", np.max(excess), at_most=1e-6))
    rows.append(bound_row("simsiam: final |[F,Wp]|/(|F||Wp|) ≤ Theorem 3's bound (or the solver's rtol 1e-10)",
                          arrays["run_commutator_rel"][i, -1], at_most=final_commutator_bound(arrays, i, lam0, T)))

    i = int(arrays["index_directpred"][0])
    s_sim, s_th = arrays["run_s"][i], arrays["directpred_s_theory"]
    rel = np.abs(s_sim - s_th) / np.maximum(np.abs(s_th), 1e-12)
    j = np.unravel_index(np.argmax(rel), rel.shape)
    rows.append(row("directpred: s_j(t) vs Eq. 12 with p = sqrt(s) (worst t, j)", s_th[j], s_sim[j], tol=1e-6))
    rows.append(row("directpred: surviving modes, sqrt(s_j(0)) > p-*", np.sum(np.sqrt(s_th[0]) > p_minus),
                    np.sum(s_sim[-1] > p_minus**2), tol=0, relative=False))

    agree, counted = 0, 0
    for k in arrays["index_phase"]:
        eta, sig = arrays["cell_weight_decay"][k], arrays["cell_noise_var"][k]
        eta_c = float(theory.critical_weight_decay(noise_var=sig))
        if eta_c < eta < eta_c + _bottleneck_band(cfg, sig):
            continue
        collapsed = arrays["run_s_max_final"][k] < _survival_level(cfg, eta, sig)
        counted += 1
        agree += int(collapsed == (eta > eta_c))
    rows.append(row(f"phase diagram: cells with collapse iff eta > eta_c (of {counted} outside the bottleneck band)",
                    counted, agree, tol=0, relative=False))

    tol = 3.0 * np.sqrt(cfg.n_in / cfg.n_samples) + 3.0 * np.sqrt(cfg.learning_rate / cfg.batch_size)
    tail = arrays["sgd_t"] >= 0.8 * cfg.horizon
    p_tail = arrays["sgd_p"][tail].mean(0)
    alive = p_tail > 0.5 * p_plus
    rows.append(row("sgd: mean final p_j of surviving modes vs p+*", p_plus, p_tail[alive].mean() if alive.any() else 0.0, tol=tol))
    rows.append(bound_row("sgd: final |[F,Wp]|/(|F||Wp|)", arrays["sgd_commutator_rel"][tail].mean(), at_most=tol))
    return rows


# ------------------------------------------------------------------ figures
def _edges(v) -> np.ndarray:
    """Cell edges around sorted grid values: midpoints, and half a step beyond each end."""
    v = np.asarray(v, dtype=float)
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = 0.5 * (v[1:] + v[:-1])
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def plot(arrays: dict, cfg: Config) -> dict:
    t = arrays["t"]
    fig, axes = plotting.figure(4, width=4.0)
    ax = axes[0]
    cs = plotting.colors(len(cfg.aligned_weight_decays))
    for i, eta in enumerate(cfg.aligned_weight_decays):
        k = arrays["index_aligned"][i]
        for j in range(cfg.n_out):
            ax.plot(t[1:], arrays["run_p_aligned"][k, 1:, j], color=cs[i], label=f"η={eta:g}" if j == 0 else None, **plotting.SIM)
            ax.plot(t[1:], arrays["aligned_p_theory"][i, 1:, j], **plotting.THEORY)
        p_plus, p_minus = _fixed(cfg, eta)
        if np.isfinite(p_plus):
            ax.axhline(p_plus, color=cs[i], lw=0.8, ls=":")
    ax.plot([], [], label="Eqs. 11-12", **plotting.THEORY)
    ax.set(xscale="log", xlabel="time t/τ (log)", ylabel="predictor eigenvalue p_j", title=f"aligned modes (σ²={cfg.noise_var:g}; p₊* dotted)")
    ax.legend(fontsize=7, frameon=False)

    ax = axes[1]
    etas, sigs = np.asarray(cfg.phase_weight_decays), np.asarray(cfg.phase_noise_vars)
    smax = arrays["run_s_max_final"][arrays["index_phase"]].reshape(len(etas), len(sigs))
    im = ax.pcolormesh(_edges(sigs), _edges(etas), np.log10(np.maximum(smax, 1e-12)), cmap="viridis", shading="flat")
    fig.colorbar(im, ax=ax, label="log₁₀ max_j s_j(T)")
    sig_fine = np.linspace(_edges(sigs)[0], _edges(sigs)[-1], 200)
    ax.plot(sig_fine, theory.critical_weight_decay(noise_var=np.maximum(sig_fine, 0.0)), color="w", ls="--", lw=1.6,
            label="η_c = 1/(4(1+σ²))")
    ax.set(xlim=_edges(sigs)[[0, -1]], ylim=_edges(etas)[[0, -1]], xlabel="augmentation variance σ²",
           ylabel="weight decay η", title=f"collapse above η_c (t/τ = {cfg.horizon:g})")
    ax.legend(fontsize=7, loc="upper right")

    ax = axes[2]
    for name, color in (("simsiam", "C0"), ("byol", "C1")):
        i = int(arrays[f"index_{name}"][0])
        ax.plot(t[1:], arrays["run_commutator_rel"][i, 1:], color=color, label=f"{name} (flow)", **plotting.SIM)
    ax.plot(arrays["sgd_t"][1:], arrays["sgd_commutator_rel"][1:], color="C2", label="SGD, sampled views", **plotting.SIM)
    i = int(arrays["index_simsiam"][0])
    lam0 = np.min(arrays["run_lambda_min_k"][i])
    ax.plot(t[1:], arrays["run_commutator_rel"][i, 0] * np.exp(-2 * lam0 * t[1:]), label="Theorem 3 bound (SimSiam)", **plotting.THEORY)
    ax.set(xscale="log", yscale="log", ylim=(1e-14, 1), xlabel="time t/τ (log; SGD: step × lr)",
           ylabel="‖[F, W_p]‖ / (‖F‖‖W_p‖)", title="eigenspace alignment")
    ax.legend(fontsize=7, frameon=False)

    ax = axes[3]
    i_dp, i_tr = int(arrays["index_directpred"][0]), int(arrays["index_simsiam"][0])
    for j in range(cfg.n_out):
        ax.plot(t[1:], arrays["run_s"][i_dp, 1:, j], color="C3", label="DirectPred" if j == 0 else None, **plotting.SIM)
        ax.plot(t[1:], arrays["directpred_s_theory"][1:, j], **plotting.THEORY)
        ax.plot(t[1:], arrays["run_s"][i_tr, 1:, j], color="C0", label="trained W_p (SimSiam)" if j == 0 else None, **plotting.SIM)
    p_plus, _ = _fixed(cfg, cfg.weight_decay)
    ax.axhline(p_plus**2, color="C3", ls=":", lw=0.8)
    ax.axhline(p_plus**2 / cfg.alpha_p, color="C0", ls=":", lw=0.8)
    ax.plot([], [], label="Eq. 16 (DirectPred)", **plotting.THEORY)
    ax.set(xscale="log", yscale="log", xlabel="time t/τ (log)", ylabel="eigenvalues s_j of F = WWᵀ",
           title=f"DirectPred vs trained (η={cfg.weight_decay:g}, α_p={cfg.alpha_p:g})")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return {"directpred": fig}
