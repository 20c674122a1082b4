"""Localized, tempered SGLD around a point w*, and the local learning coefficient.

Local posterior (Lau et al. 2023, arXiv 2308.12108, Eq. 7; devinterp's convention):

    p(w) ∝ exp(−nβ L_n(w) − (γ/2) ‖w − w*‖²),

with L_n the mean per-sample loss (= negative log-likelihood per sample up to a
constant: with Gaussian noise σ, ℓ = ‖y − f‖²/(2σ²)), nβ the inverse temperature
times n (default n/log n, the WBIC temperature, Watanabe 2013) and γ the
localization strength (default 1, devinterp's default). SGLD step ε
(Welling & Teh 2011):

    w ← w − (ε/2) [nβ ∇L_B(w) + γ (w − w*)] + N(0, ε I),

L_B the mean loss on a minibatch of size ``batch_size`` (the full data when None).
The LLC estimate (Lau et al. Eq. 11) is λ̂ = nβ (E_p[L_n(w)] − L_n(w*)), the
expectation over post-burn-in draws (the minibatch loss at each draw is an
unbiased estimate of L_n there).

Who does what: BlackJAX supplies the diffusion integrators
(``blackjax.sgmcmc.diffusions.overdamped_langevin`` for SGLD and ``sghmc`` for
SGHMC, driven by the localized tempered log-density gradient built here) and the
chain diagnostics (``blackjax.diagnostics.effective_sample_size`` and
``potential_scale_reduction``). Written here: the localization and tempering, the
minibatching, chains under ``jax.vmap``, the LLC bookkeeping and the step-size rule
(``estimate_llc``). Params are any pytree; ``loss_fn(params, batch)`` is any
mean per-sample loss, so a flax module's ``apply`` + params works.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.diagnostics import effective_sample_size, potential_scale_reduction
from blackjax.sgmcmc import diffusions
from jax.flatten_util import ravel_pytree

SAMPLERS = ("sgld", "sghmc")


class SGLDRun(NamedTuple):
    """Chains of one sampler run.

    loss: (chains, steps) L_B(w_t) at every step, evaluated before the step moves w_t.
    stats: observe(w_t) stacked to (chains, steps, ...) every step (None without observe).
    final: the last params of each chain (pytree, leaves with a leading chains axis).
    """
    loss: jax.Array
    stats: Any
    final: Any


def num_samples(data) -> int:
    """n, the common leading axis of every leaf of ``data``; ValueError if they differ."""
    sizes = {int(np.shape(leaf)[0]) for leaf in jax.tree.leaves(data) if np.ndim(leaf) > 0}
    if len(sizes) != 1:
        raise ValueError(f"every leaf of data needs the same leading (sample) axis; got sizes {sorted(sizes)}")
    return sizes.pop()


def default_n_beta(n: int) -> float:
    """nβ = n / log n (β = 1/log n, the WBIC temperature, Watanabe 2013, arXiv 1208.6338)."""
    if n < 2:
        raise ValueError(f"n must be ≥ 2 for nβ = n/log n, got {n}")
    return n / math.log(n)


def _check_common(n_beta, gamma, num_chains, num_steps, batch_size, sampler, n):
    if not (n_beta > 0 and math.isfinite(n_beta)):
        raise ValueError(f"n_beta={n_beta!r} is invalid; allowed: a finite number > 0")
    if not (gamma >= 0 and math.isfinite(gamma)):
        raise ValueError(f"gamma={gamma!r} is invalid; allowed: a finite number ≥ 0")
    if int(num_chains) != num_chains or num_chains < 1:
        raise ValueError(f"num_chains={num_chains!r} is invalid; allowed: an integer ≥ 1")
    if int(num_steps) != num_steps or num_steps < 2:
        raise ValueError(f"num_steps={num_steps!r} is invalid; allowed: an integer ≥ 2")
    if batch_size is not None and not (1 <= batch_size <= n):
        raise ValueError(f"batch_size={batch_size!r} is invalid; allowed: None (full batch) or an integer in [1, n={n}]")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is invalid; allowed: {', '.join(SAMPLERS)}")


def sample(loss_fn: Callable, params, data, *, key: jax.Array, step_size: float, num_chains: int = 4,
           num_steps: int = 1000, n_beta: Optional[float] = None, gamma: float = 1.0,
           batch_size: Optional[int] = None, sampler: str = "sgld", friction: Optional[float] = None,
           observe: Optional[Callable] = None, segment: Optional[int] = None) -> SGLDRun:
    """Run ``num_chains`` localized tempered chains from w* = ``params`` (vmapped).

    SGLD (``sampler="sgld"``): the update of the module docstring with step ε =
    ``step_size`` (BlackJAX's overdamped Langevin at its step h = ε/2).
    SGHMC (``sampler="sghmc"``, Chen et al. 2014, arXiv 1402.4102): BlackJAX's
    integrator of dw = p dt, dp = −∇U dt − α p dt + √(2α) dW with time step
    h = ``step_size`` and friction α = ``friction`` (default 2√γ, critical damping
    of the localization), momentum persistent across steps; U = nβ L_B + γ‖w−w*‖²/2.

    data: pytree of arrays with a common leading axis n (e.g. (x, y)).
    observe: optional (params, data) → pytree recorded at every step (e.g. per-sample
    losses on the full data).
    segment: steps per compiled call (default num_steps; must divide it): runs of
    different lengths with the same segment share one compiled program.
    """
    n = num_samples(data)
    n_beta = default_n_beta(n) if n_beta is None else float(n_beta)
    _check_common(n_beta, gamma, num_chains, num_steps, batch_size, sampler, n)
    if not (step_size > 0 and math.isfinite(step_size)):
        raise ValueError(f"step_size={step_size!r} is invalid; allowed: a finite number > 0")
    segment = int(num_steps if segment is None else segment)
    if segment < 1 or num_steps % segment:
        raise ValueError(f"segment={segment!r} is invalid; allowed: a divisor of num_steps={num_steps}")
    alpha = 2.0 * math.sqrt(gamma) if friction is None else float(friction)
    if sampler == "sghmc" and not alpha > 0:
        raise ValueError(f"friction={friction!r} is invalid; allowed: a number > 0 (or gamma > 0 for the default)")
    advance = _compiled_segment(loss_fn, observe, segment, batch_size, sampler, n)
    w, p, chain_keys = _init_chains(params, key, int(num_chains))
    # Python floats: traced as weakly typed scalars, so float32 params stay float32
    scalars = tuple(float(v) for v in (step_size, n_beta, gamma, alpha))
    losses, stats = [], []
    for i in range(int(num_steps) // segment):
        w, p, loss, stat = advance(w, p, chain_keys, np.int32(i), params, data, *scalars)
        losses.append(np.asarray(loss))
        stats.append(jax.tree.map(np.asarray, stat))
    cat = lambda *xs: np.concatenate(xs, axis=1)
    return SGLDRun(cat(*losses), jax.tree.map(cat, *stats) if observe is not None else None, w)


@jax.jit(static_argnums=2)
def _init_chains(params, key, num_chains):
    """Every chain starts at w*; SGHMC momenta ~ N(0, I); one key per chain."""
    k_mom, k_run = jax.random.split(key)
    w = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_chains,) + jnp.shape(x)), params)
    leaves, treedef = jax.tree.flatten(w)
    keys = jax.random.split(k_mom, len(leaves))
    p = treedef.unflatten([jax.random.normal(k, jnp.shape(x), jnp.result_type(x)) for k, x in zip(keys, leaves)])
    return w, p, jax.random.split(k_run, num_chains)


_SEGMENT_CACHE: dict = {}


def _compiled_segment(loss_fn, observe, segment, batch_size, sampler, n):
    """One jitted program advancing every chain ``segment`` steps, cached per
    (functions, segment, sampler) so a whole ladder of ε compiles once."""
    cache_key = (loss_fn, observe, segment, batch_size, sampler, n)
    if cache_key in _SEGMENT_CACHE:
        return _SEGMENT_CACHE[cache_key]
    langevin = diffusions.overdamped_langevin()

    def advance(w, p, chain_keys, segment_index, w_star, data, step_size, n_beta, gamma, alpha):
        hamiltonian = diffusions.sghmc(alpha=alpha)
        keys = jax.vmap(lambda k: jax.random.fold_in(k, segment_index))(chain_keys)

        def chain(w, p, chain_key):
            def step(carry, k):
                w, p = carry
                k_batch, k_noise = jax.random.split(k)
                if batch_size is None:
                    batch = data
                else:
                    idx = jax.random.randint(k_batch, (batch_size,), 0, n)
                    batch = jax.tree.map(lambda a: a[idx], data)
                loss, grad = jax.value_and_grad(loss_fn)(w, batch)
                # log-density gradient of the local posterior: −nβ∇L_B − γ(w − w*)
                logdensity_grad = jax.tree.map(lambda g, x, x0: (-(n_beta * g + gamma * (x - x0))).astype(x.dtype),
                                               grad, w, w_star)
                out = (loss, observe(w, data) if observe is not None else None)
                if sampler == "sgld":
                    w_new, p_new = langevin(k_noise, w, logdensity_grad, step_size / 2), p
                else:
                    w_new, p_new = hamiltonian(k_noise, w, p, logdensity_grad, step_size)
                # BlackJAX's integrators promote float32 params with x64 on; keep each leaf's dtype
                same = lambda new, old: jax.tree.map(lambda a, b: a.astype(b.dtype), new, old)
                return (same(w_new, w), same(p_new, p)), out

            (w, p), (loss, stats) = jax.lax.scan(step, (w, p), jax.random.split(chain_key, segment))
            return w, p, loss, stats

        return jax.vmap(chain)(w, p, keys)

    compiled = jax.jit(advance)
    if len(_SEGMENT_CACHE) > 64:
        _SEGMENT_CACHE.clear()
    _SEGMENT_CACHE[cache_key] = compiled
    return compiled


# ------------------------------------------------------------------ the LLC

class LLCEstimate(NamedTuple):
    """λ̂ = nβ (E[L_n(w)] − L_n(w*)) at the step size the rule chose (or the one given).

    llc_mean: λ̂ from all chains' post-burn-in draws; llc_std: std across chains of the
    per-chain λ̂ (devinterp's ``llc/std``); llc_se: Monte-Carlo standard error of
    llc_mean, nβ·sd(L)/√ESS (ESS from BlackJAX over all chains).
    traces: (chains, steps) loss traces at ``step_size``, burn-in included.
    trusted: the step size passed the rule (or, when given, the chains are stationary
    and finite); False comes with a warning.
    diagnostics: burn_in, ess and rhat (BlackJAX, of the nβ(L − L*) draws), stationary, divergent, rule, reason, and
    ``ladder``: one dict per tried step size (step_size, num_steps, llc, llc_se,
    stationary, divergent, agrees_with_double).
    """
    llc_mean: float
    llc_std: float
    llc_se: float
    traces: np.ndarray
    step_size: float
    trusted: bool
    n_beta: float
    gamma: float
    init_loss: float
    diagnostics: dict


_POWER_CACHE: dict = {}


def top_curvature(loss_fn: Callable, params, data, *, iters: int = 60, seed: int = 0) -> float:
    """|largest-magnitude eigenvalue| of ∇²L_n at ``params`` by power iteration on
    Hessian-vector products (jax.jvp of jax.grad), full batch. The jitted iteration
    takes params and data as arguments and is cached per (loss_fn, params structure,
    iters), so a run of checkpoints (one call each) compiles it once."""
    flat, unravel = ravel_pytree(params)
    leaves, treedef = jax.tree.flatten(params)
    cache_key = (loss_fn, treedef, tuple((np.shape(x), jnp.result_type(x)) for x in leaves), iters)
    if cache_key not in _POWER_CACHE:
        @jax.jit
        def power(flat, v, data):
            grad = jax.grad(lambda u: loss_fn(unravel(u), data))

            def body(v, _):
                hv = jax.jvp(grad, (flat,), (v,))[1]
                return hv / jnp.linalg.norm(hv), jnp.vdot(v, hv)
            v, rayleigh = jax.lax.scan(body, v / jnp.linalg.norm(v), None, length=iters)
            return rayleigh[-1]

        if len(_POWER_CACHE) > 64:
            _POWER_CACHE.clear()
        _POWER_CACHE[cache_key] = power
    v0 = jax.random.normal(jax.random.key(seed), flat.shape, flat.dtype)
    return abs(float(_POWER_CACHE[cache_key](flat, v0, data)))


def _batch_means_se(x: np.ndarray, num_batches: int) -> float:
    """Standard error of the mean of (chains, T) draws by non-overlapping batch means
    (Flegal & Jones 2010, Ann. Stat. 38:1034): ``num_batches`` per chain."""
    length = x.shape[1] // num_batches
    if length < 1:
        return float("nan")
    means = x[:, :num_batches * length].reshape(x.shape[0], num_batches, length).mean(axis=2).ravel()
    return float(np.std(means, ddof=1) / math.sqrt(means.size))


def summarize(loss: np.ndarray, *, init_loss: float, n_beta: float, burn_in: int, num_params: int,
              z_stationary: float = 3.0, num_batches: int = 10) -> dict:
    """λ̂, its errors and the chain checks from (chains, steps) loss traces.

    llc_se: batch-means standard error (``num_batches`` per chain; in estimate_llc's
    ladder every rung simulates the same Langevin time, so a batch spans the same time
    at every ε). stationary: the post-burn-in means of the first and second halves
    agree within z_stationary combined batch-means standard errors (a trace still
    drifting to equilibrium fails). divergent: a non-finite loss, or a chain's λ̂ above
    10·d/2 (d = num_params; d/2 bounds the learning coefficient of a minimum, so 10×
    that is a blow-up).
    """
    draws = np.asarray(loss, dtype=np.float64)[:, burn_in:]
    excess = n_beta * (draws - init_loss)
    out = {"llc": float(np.mean(excess)), "llc_chains": np.mean(excess, axis=1)}
    finite = bool(np.all(np.isfinite(draws)))
    out["divergent"] = (not finite) or bool(np.any(out["llc_chains"] > 5.0 * num_params))
    if not finite:
        return {**out, "llc_se": float("nan"), "stationary": False}
    out["llc_se"] = _batch_means_se(excess, 2 * num_batches)
    half = excess.shape[1] // 2
    first, second = excess[:, :half], excess[:, half:2 * half]
    diff = abs(float(np.mean(first) - np.mean(second)))
    out["stationary"] = diff <= z_stationary * math.hypot(_batch_means_se(first, num_batches),
                                                           _batch_means_se(second, num_batches))
    return out


_ESS = jax.jit(effective_sample_size)
_RHAT = jax.jit(potential_scale_reduction)


def chain_diagnostics(excess: np.ndarray) -> dict:
    """BlackJAX's effective sample size and R-hat (Gelman & Rubin 1992) of (chains, T) draws."""
    x = jnp.asarray(excess)
    rhat = float(_RHAT(x)) if x.shape[0] > 1 else float("nan")
    return {"ess": float(_ESS(x)), "rhat": rhat}


def estimate_llc(loss_fn: Callable, params, data, *, key: jax.Array, step_size: Optional[float] = None,
                 num_chains: int = 4, num_steps: int = 500, burn_in_fraction: float = 0.25,
                 n_beta: Optional[float] = None, gamma: float = 1.0, batch_size: Optional[int] = None,
                 sampler: str = "sgld", friction: Optional[float] = None,
                 step_sizes: Optional[Sequence[float]] = None, ladder_size: int = 6, z: float = 2.0,
                 progress: bool = False) -> LLCEstimate:
    """Local learning coefficient at w* = ``params`` (Lau et al. 2023, arXiv 2308.12108).

    loss_fn(params, batch): mean per-sample loss (negative log-likelihood per sample);
    data: pytree of arrays with a common leading sample axis n.

    Step-size rule (when ``step_size`` is None). Unadjusted Langevin is biased at
    finite ε: for a Gaussian target of precision A its stationary covariance is
    (A(I − εA/4))⁻¹ (our derivation: Σ = MΣM + εI with M = I − εA/2;
    ``theory.slt.ula_quadratic_llc``), so λ̂(ε) = λ̂(0)(1 + O(ε)) and, to first
    order, the bias at ε equals λ̂(2ε) − λ̂(ε). The rule runs a geometric ladder
    ε_k = ε_0 2^{−k} (``ladder_size`` rungs; ε_0 = 2/a, a = nβ·|top eigenvalue of ∇²L_n(w*)|
    + γ, half the step at which Langevin on the quadratic expansion becomes
    unstable, 4/a; for SGHMC ε_0 = α/(2a), its explicit Euler step being stable for
    h < α/a), every rung simulating the same Langevin
    time (rung k runs ``num_steps``·2^k steps), from the largest ε down. Rung k is
    accepted when it and rung k−1 are stationary and finite (``summarize``) and
    |λ̂(ε_{k−1}) − λ̂(ε_k)| ≤ z·√(se²_{k−1} + se²_k): its estimated first-order bias is
    within z Monte-Carlo standard errors. The first accepted rung (the largest
    trustworthy ε) is returned. If none is, a RuntimeWarning says so, ``trusted`` is
    False and the estimate comes from the smallest stationary finite rung (the
    smallest rung when none is). The top rung can never be chosen (nothing checks it).

    SGHMC caveat: its energy reaches equilibrium on the time scale 1/α (friction), so each
    rung must simulate a time ≫ 1/α (num_steps·ε_0 ≫ 1/α); at the SGLD-sized defaults it
    under-estimates (linear regression d = 10: 3.5 instead of 5 at num_steps = 100), and
    neither the rule nor the tests vouch for it yet: prefer ``sampler="sgld"``.

    Not jittable as a whole (the rule branches on chain results); each rung is one
    jitted, vmapped program. Steps per rung grow as 2^k: cost ≈ num_steps·2^K chain steps.
    """
    n = num_samples(data)
    n_beta = default_n_beta(n) if n_beta is None else float(n_beta)
    _check_common(n_beta, gamma, num_chains, num_steps, batch_size, sampler, n)
    if not 0.0 <= burn_in_fraction < 0.9:
        raise ValueError(f"burn_in_fraction={burn_in_fraction!r} is invalid; allowed: a number in [0, 0.9)")
    if step_sizes is not None and (len(step_sizes) < 2 or any(not (e > 0) for e in step_sizes)):
        raise ValueError(f"step_sizes={step_sizes!r} is invalid; allowed: ≥ 2 numbers > 0 (largest first)")
    if step_size is None and step_sizes is None and ladder_size < 2:
        raise ValueError(f"ladder_size={ladder_size!r} is invalid; allowed: an integer ≥ 2")
    init_loss = float(jax.jit(loss_fn)(params, data))
    num_params = int(sum(np.size(x) for x in jax.tree.leaves(params)))
    common = dict(num_chains=num_chains, n_beta=n_beta, gamma=gamma, batch_size=batch_size, sampler=sampler,
                  friction=friction)

    segment = int(num_steps)

    def rung(eps, steps, k):
        chains = sample(loss_fn, params, data, key=jax.random.fold_in(key, k), step_size=float(eps),
                        num_steps=int(steps), segment=segment, **common)
        loss = np.asarray(chains.loss)
        stats = summarize(loss, init_loss=init_loss, n_beta=n_beta, burn_in=int(burn_in_fraction * steps),
                          num_params=num_params)
        return loss, stats

    def result(eps, loss, stats, trusted, rule, reason, ladder):
        burn_in = int(burn_in_fraction * loss.shape[1])
        diagnostics = {k: stats[k] for k in ("stationary", "divergent")}
        diagnostics.update(chain_diagnostics(n_beta * (loss[:, burn_in:] - init_loss)))
        diagnostics.update(burn_in=burn_in, rule=rule, reason=reason, ladder=ladder)
        return LLCEstimate(stats["llc"], float(np.std(stats["llc_chains"])), stats["llc_se"], loss, float(eps),
                           bool(trusted), n_beta, float(gamma), init_loss, diagnostics)

    if step_size is not None:
        loss, stats = rung(step_size, num_steps, 0)
        ok = stats["stationary"] and not stats["divergent"]
        row = {"step_size": float(step_size), "num_steps": num_steps, "llc": stats["llc"], "llc_se": stats["llc_se"],
               "stationary": stats["stationary"], "divergent": stats["divergent"], "agrees_with_double": None}
        if not ok:
            warnings.warn(f"estimate_llc: chains at the given step_size={step_size:g} are "
                          f"{'divergent' if stats['divergent'] else 'not stationary'}; the estimate is untrustworthy",
                          RuntimeWarning, stacklevel=2)
        return result(step_size, loss, stats, ok, "given", "" if ok else "chains not stationary/finite", [row])

    if step_sizes is None:
        a = n_beta * top_curvature(loss_fn, params, data) + gamma
        alpha = 2.0 * math.sqrt(gamma) if friction is None else float(friction)
        # half the linear stability limit: SGLD 4/a; BlackJAX's explicit-Euler SGHMC needs h < α/a
        top = 2.0 / a if sampler == "sgld" else alpha / (2.0 * a)
        step_sizes = [top * 2.0**-k for k in range(ladder_size)]
    step_sizes = sorted((float(e) for e in step_sizes), reverse=True)
    ladder, runs = [], []
    rungs = range(len(step_sizes))
    if progress:
        from tqdm.auto import tqdm
        rungs = tqdm(rungs, desc="estimate_llc step-size ladder", leave=False)
    for k in rungs:
        eps = step_sizes[k]
        steps = num_steps * max(int(round(step_sizes[0] / eps)), 1)
        loss, stats = rung(eps, steps, k)
        runs.append((eps, loss, stats))
        ok = stats["stationary"] and not stats["divergent"]
        agrees = None
        if k > 0:
            prev = runs[k - 1][2]
            prev_ok = prev["stationary"] and not prev["divergent"]
            agrees = bool(ok and prev_ok and abs(prev["llc"] - stats["llc"]) <= z * math.hypot(prev["llc_se"], stats["llc_se"]))
        ladder.append({"step_size": eps, "num_steps": steps, "llc": stats["llc"], "llc_se": stats["llc_se"],
                       "stationary": stats["stationary"], "divergent": stats["divergent"], "agrees_with_double": agrees})
        if agrees:
            return result(eps, loss, stats, True, "ladder",
                          f"largest ε whose estimate agrees with 2ε's within {z:g} standard errors", ladder)
    valid = [r for r in runs if r[2]["stationary"] and not r[2]["divergent"]]
    eps, loss, stats = (valid or runs)[-1]
    warnings.warn(f"estimate_llc: no step size in [{step_sizes[-1]:.3g}, {step_sizes[0]:.3g}] is trustworthy "
                  f"(no two successive rungs stationary, finite and agreeing); returning the estimate at ε={eps:.3g} "
                  "flagged trusted=False. Try more num_steps, more chains or a wider ladder.",
                  RuntimeWarning, stacklevel=2)
    return result(eps, loss, stats, False, "ladder", "no trustworthy step size", ladder)


# ------------------------------------------------------- the NUTS reference

class NUTSReference(NamedTuple):
    """NumPyro NUTS on the same local posterior exp(−nβL_n(w) − γ‖w − w*‖²/2).

    llc_mean: nβ(E[L_n] − L_n(w*)); llc_se: its Monte-Carlo error (NumPyro's ESS);
    mean_loss: E[L_n]; loss: (chains, samples) L_n at the draws; divergences: count.
    """
    llc_mean: float
    llc_se: float
    mean_loss: float
    loss: np.ndarray
    divergences: int


def nuts_reference(loss_fn: Callable, params, data, *, key: jax.Array, n_beta: Optional[float] = None,
                   gamma: float = 1.0, num_warmup: int = 500, num_samples_: int = 1000,
                   num_chains: int = 4, progress: bool = False) -> NUTSReference:
    """Metropolis-adjusted reference for ``estimate_llc``: NumPyro's NUTS (Hoffman &
    Gelman 2014, arXiv 1111.4246) with its step size and diagonal mass matrix adapted in
    warmup, on the potential U(w) = nβ L_n(w) + γ‖w − w*‖²/2 (full batch), chains
    vectorized. No discretisation bias, so SGLD's bias is measured against it. Meant for
    small models (each draw costs up to 2^10 full-batch gradients)."""
    from numpyro.diagnostics import effective_sample_size as numpyro_ess
    from numpyro.infer import MCMC, NUTS

    n = num_samples(data)
    n_beta = default_n_beta(n) if n_beta is None else float(n_beta)
    _check_common(n_beta, gamma, num_chains, max(num_samples_, 2), None, "sgld", n)
    flat_star, unravel = ravel_pytree(params)
    full_loss = jax.jit(lambda v: loss_fn(unravel(v), data))

    def potential(v):
        return n_beta * full_loss(v) + 0.5 * gamma * jnp.sum((v - flat_star) ** 2)

    mcmc = MCMC(NUTS(potential_fn=potential), num_warmup=num_warmup, num_samples=num_samples_,
                num_chains=num_chains, chain_method="vectorized", progress_bar=progress)
    mcmc.run(key, init_params=jnp.broadcast_to(flat_star, (num_chains,) + flat_star.shape))
    draws = mcmc.get_samples(group_by_chain=True)  # (chains, samples, d)
    loss = np.asarray(jax.jit(jax.vmap(jax.vmap(full_loss)))(draws))
    init_loss = float(full_loss(flat_star))
    excess = n_beta * (loss - init_loss)
    ess = float(numpyro_ess(excess[..., None])[0])
    divergences = int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"])))
    return NUTSReference(float(excess.mean()), float(excess.std() / math.sqrt(max(ess, 1.0))),
                         float(loss.mean()), loss, divergences)
