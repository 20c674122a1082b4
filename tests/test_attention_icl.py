"""Linear attention on in-context linear regression (Zhang, Singh, Latham & Saxe,
ICML 2025, arXiv 2501.16265): task moments, model, and theory vs simulation.

Loss values from ``theory.attention_icl`` are in the paper's normalisation
E[(y_q − ŷ)²] = 2 × saddle's ½-loss; simulations integrate the ½-loss (DESIGN),
so they are compared as 2 × simulated loss. Times are DESIGN times throughout.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynamics import gradient_flow
from models import attention as att
from tasks import icl
from theory import attention_icl as th

pytestmark = pytest.mark.strict_dtypes

LAM_1234 = np.array([1.0, 2.0, 3.0, 4.0]) / 10.0  # Λ ∝ diag(1,2,3,4), tr Λ = 1 (paper's Fig. of separate KQ)
WHITE = np.full(4, 0.25)  # Λ = I₄/4, tr Λ = 1


# ---------------------------------------------------------------- public numbers

def test_plateau_losses_public_check():
    # arXiv 2501.16265: Λ ∝ diag(1,2,3,4), tr Λ = 1, N = 31 → plateaus 1, 0.6406, 0.3774, 0.2098, 0.1360.
    got = th.separate_kq_plateau_losses(LAM_1234, n_context=31)
    np.testing.assert_allclose(np.round(got, 4), [1.0, 0.6406, 0.3774, 0.2098, 0.1360], atol=0)
    # any order of eigenvalues; learned largest first
    np.testing.assert_allclose(th.separate_kq_plateau_losses(LAM_1234[::-1], n_context=31), got, rtol=1e-15)
    np.testing.assert_array_equal(th.separate_kq_drop_order(LAM_1234), [3, 2, 1, 0])
    assert th.converged_loss(LAM_1234, n_context=31) == pytest.approx(got[-1], rel=1e-15)


def test_converged_loss_white():
    # White Λ = λI_D, σ = 0: L(M_D) = tr Λ · (D+1)/(N+D+1) (paper normalisation).
    # Λ = I₄/4 (tr Λ = 1), N = 31 → 5/36 = 0.1389. The quoted public number 0.5556 = 5/9 is
    # this formula at Λ = I₄ (tr Λ = 4): the loss is homogeneous of degree 1 in Λ.
    assert th.converged_loss(WHITE, n_context=31) == pytest.approx(5.0 / 36.0, rel=1e-13)
    assert round(th.converged_loss(np.ones(4), n_context=31), 4) == 0.5556
    assert round(th.converged_loss(WHITE, n_context=31), 4) == 0.1389


def test_noisy_minimum_matches_exact_moments():
    # With label noise σ, tr Λ → tr Λ + σ² in L(M_m). Check against the exact population loss
    # (moments of orders ≤ 6, noise included) at the optimal Γ = diag(s_d/ρ_d), one head.
    lam, n, sig = LAM_1234, 9, 0.7
    s, rho = th.mode_moments(lam, n_context=n, noise_std=sig)
    p = {"kq": jnp.zeros((1, 5, 5)).at[0, :4, :4].set(jnp.diag(s / rho)), "v": jnp.zeros((1, 5, 5)).at[0, 4, 4].set(1.0)}
    exact = 2.0 * float(att.population_loss(p, icl.population_moments(lam, n_context=n, noise_std=sig)))
    assert exact == pytest.approx(th.converged_loss(lam, n_context=n, noise_std=sig), rel=1e-12)
    for lam_ in (WHITE, LAM_1234):  # and merged KQ converges there
        late = th.merged_kq_loss(np.array([1e6]), lam=lam_, n_context=n, w_init=1e-3, noise_std=sig)
        assert float(late[0]) == pytest.approx(th.converged_loss(lam_, n_context=n, noise_std=sig), rel=1e-8)


# ---------------------------------------------------------------- task & model

def test_sample_layout():
    tokens, y = icl.sample(jax.random.key(0), lam=LAM_1234, n_context=7, batch=3, noise_std=0.0)
    assert tokens.shape == (3, 8, 5) and y.shape == (3,)
    assert jnp.all(tokens[:, -1, -1] == 0.0)
    # y_n = wᵀx_n exactly: the context's (x, y) are linearly consistent with one w per sequence
    tokens, y = np.asarray(tokens), np.asarray(y)
    for b in range(3):
        w = np.linalg.lstsq(tokens[b, :7, :4], tokens[b, :7, 4], rcond=None)[0]
        assert tokens[b, -1, :4] @ w == pytest.approx(y[b], rel=1e-10)


def test_gaussian_moments_isserlis():
    cov = jnp.diag(jnp.array([0.5, 2.0]))
    e4, e6 = icl.gaussian_moment(cov, 4), icl.gaussian_moment(cov, 6)
    assert e4[0, 0, 0, 0] == pytest.approx(3 * 0.5**2) and e4[0, 0, 1, 1] == pytest.approx(1.0)
    assert e6[1, 1, 1, 1, 1, 1] == pytest.approx(15 * 2.0**3) and e6[0, 0, 0, 0, 1, 1] == pytest.approx(3 * 0.25 * 2)
    assert e4[0, 1, 1, 1] == 0.0


@pytest.mark.parametrize("kind", ["merged", "separate"])
def test_apply_is_attention_query_entry(kind):
    tokens, _ = icl.sample(jax.random.key(1), lam=LAM_1234, n_context=5, batch=4)
    k = jax.random.key(2)
    p = (att.init_merged(k, dim=4, n_heads=3, scale=0.7, on_manifold=False) if kind == "merged"
         else att.init_separate(k, dim=4, n_heads=3, rank=2, scale=0.7, on_manifold=False))
    out, pred = jax.jit(att.attend)(p, tokens), jax.jit(att.apply)(p, tokens)
    assert out.shape == tokens.shape
    np.testing.assert_allclose(out[:, -1, -1], pred, rtol=1e-12)
    g, t = np.asarray(att.interaction_tensor(p)), np.asarray(tokens)
    phi = np.einsum("bni,bnj,bc->bijc", t, t, t[:, -1, :4]) / 5
    np.testing.assert_allclose(np.einsum("abc,nabc->n", g, phi), pred, rtol=1e-12)


def test_on_manifold_loss_is_two_layer_net_on_cubic_features():
    # Full exact moments (orders ≤ 6) vs the independent closed form on the invariant manifold:
    # L = ½ yy − ⟨Λ², Γ⟩ + ½ Γ·(A ⊗ Λ)·Γ with the cubic-feature moments.
    lam, n, sig = np.array([0.3, 1.0, 1.7]), 6, 0.4
    mom = icl.population_moments(lam, n_context=n, noise_std=sig)
    szz, syz, yy = icl.cubic_feature_moments(lam, n_context=n, noise_std=sig)
    loss = jax.jit(att.population_loss)
    for seed in range(3):
        p = att.init_separate(jax.random.key(seed), dim=3, n_heads=3, rank=2, scale=0.6)
        gam = att.interaction_tensor(p)
        assert float(jnp.max(jnp.abs(gam.at[3, :3, :3].set(0.0)))) == 0.0  # only Γ[D, :D, :D] lives
        g = gam[3, :3, :3]
        two_layer = 0.5 * yy - jnp.sum(syz * g) + 0.5 * jnp.einsum("ab,abcd,cd->", g, szz, g)
        assert float(loss(p, mom)) == pytest.approx(float(two_layer), rel=1e-12)


def test_invariant_manifold():
    # The loss is even in (value last-row x-part, W^KQ last-row x-part): zero gradient there.
    mom = icl.population_moments(LAM_1234, n_context=9, noise_std=0.2)
    p = att.init_merged(jax.random.key(3), dim=4, n_heads=2, scale=0.5)
    grad = jax.jit(jax.grad(att.population_loss))
    g = grad(p, mom)
    assert float(jnp.max(jnp.abs(g["kq"][:, 4, :4]))) == 0.0 and float(jnp.max(jnp.abs(g["v"][:, 4, :4]))) == 0.0
    p = att.init_separate(jax.random.key(4), dim=4, n_heads=2, rank=1, scale=0.5)
    g = grad(p, mom)
    assert float(jnp.max(jnp.abs(g["k"][:, :, 4]))) == 0.0 and float(jnp.max(jnp.abs(g["v"][:, 4, :4]))) == 0.0


@functools.partial(jax.jit, static_argnames=("lam", "n", "sig"))
def _mc_chunk(params, key, *, lam, n, sig):
    tokens, y = icl.sample(key, lam=np.array(lam), n_context=n, batch=100_000, noise_std=sig)
    return 0.5 * (y - att.apply(params, tokens)) ** 2


@pytest.mark.parametrize("on_manifold", [True, False])
def test_population_loss_matches_monte_carlo(on_manifold):
    # Sampled ½(y_q − ŷ)² over 3·10⁵ sequences vs the exact population loss; tolerance
    # 5 standard errors of the sample mean (CLT; fixed keys make the test deterministic).
    lam, n, sig = np.array([0.5, 1.0, 1.5]), 6, 0.3
    p = att.init_separate(jax.random.key(5), dim=3, n_heads=2, rank=2, scale=0.4, on_manifold=on_manifold)
    exact = float(att.population_loss(p, icl.population_moments(lam, n_context=n, noise_std=sig)))

    losses = jnp.concatenate([_mc_chunk(p, k, lam=tuple(lam), n=n, sig=sig)
                              for k in jax.random.split(jax.random.key(6), 3)])
    mean, se = float(losses.mean()), float(losses.std() / np.sqrt(losses.size))
    assert abs(mean - exact) < 5 * se, (mean, exact, se)


def test_cubic_feature_moments_monte_carlo():
    lam, n = np.array([0.5, 1.5]), 4
    tokens, y = icl.sample(jax.random.key(7), lam=lam, n_context=n, batch=200_000, noise_std=0.5)
    z = icl.cubic_features(tokens)
    szz, syz, yy = icl.cubic_feature_moments(lam, n_context=n, noise_std=0.5)
    zz = jnp.einsum("nab,ncd->nabcd", z, z)
    se = zz.std(0) / np.sqrt(z.shape[0])
    assert bool(jnp.all(jnp.abs(zz.mean(0) - szz) < 5 * se + 1e-12))
    yz = y[:, None, None] * z
    assert bool(jnp.all(jnp.abs(yz.mean(0) - syz) < 5 * yz.std(0) / np.sqrt(z.shape[0]) + 1e-12))


# ---------------------------------------------------------------- dynamics vs theory

@pytest.mark.parametrize("lam", [WHITE, LAM_1234], ids=["white", "diag1234"])
def test_merged_kq_loss_matches_gradient_flow(lam):
    # Gradient flow (DESIGN time, ½-loss) on the EXACT population loss from the balanced aligned
    # init of merged_kq_loss (u0 = 1e-4, two heads); white Λ uses the Saxe logistic closed form,
    # diag(1,2,3,4) the reduced ODE. Both sides are exact, so the gap is integration error: it
    # scales with the solver rtol (1.8e-8 at rtol 1e-8, 3.6e-10 at 1e-10, measured), hence
    # tol = 100·rtol·L(0) = 1e-8 at rtol = 1e-10.
    n, u0, rtol = 31, 1e-4, 1e-10
    mom = icl.population_moments(lam, n_context=n)
    p = att.init_merged_aligned(dim=4, n_heads=2, u0=u0, direction=jnp.diag(jnp.asarray(lam) ** 2))
    ts = np.concatenate([[0.0], np.geomspace(1.0, 3e3, 120)])
    sim = 2.0 * gradient_flow(att.population_loss, p, mom, times=ts, rtol=rtol, atol=1e-2 * rtol).loss
    theory = th.merged_kq_loss(ts, lam=lam, n_context=n, w_init=u0)
    assert float(jnp.max(jnp.abs(sim - theory))) < 100 * rtol * lam.sum()
    # one abrupt drop, from tr Λ to the global minimum
    assert float(theory[0]) == pytest.approx(lam.sum(), rel=1e-3)
    assert float(theory[-1]) == pytest.approx(th.converged_loss(lam, n_context=n), rel=1e-9)


def test_separate_kq_aligned_drop_times():
    # One rank-one head per eigen-direction, balanced (v = k_d = q_d = a0): the modes decouple and
    # each follows the depth-3 mode ODE exactly; the time Γ_dd reaches s_d/(2ρ_d) must match
    # separate_kq_drop_times up to the error of interpolating linearly in x = ln t on the recording
    # grid (log-spacing Δ ≈ 1%): the crossing's x is off by ≤ (Δ²/8) max|u_xx| / min|u_x| over the
    # bracket, estimated from the records as Δ·|second difference|/(8·|first difference|) (the
    # relative error of t), plus the flow's own error there: rtol 1e-9 on u over ≲ 10³ steps,
    # divided by d ln u/d ln t ≥ 1 at a rising mode's half point, ≤ 1e-6 of t.
    n, a0 = 31, 0.05
    d = 4
    eye = jnp.eye(d + 1)[:d]  # head h has k, q ∝ e_h
    p = {"k": a0 * eye[:, None, :], "q": a0 * eye[:, None, :],
         "v": jnp.zeros((d, d + 1, d + 1)).at[:, d, d].set(a0)}
    mom = icl.population_moments(LAM_1234, n_context=n)
    ts = np.geomspace(10.0, 3e3, 600)
    obs = lambda q: jnp.diagonal(att.interaction_tensor(q)[d, :d, :d])
    traj = gradient_flow(att.population_loss, p, mom, times=ts, observe=obs, rtol=1e-9, atol=1e-12)
    s, rho = th.mode_moments(LAM_1234, n_context=n)
    order = th.separate_kq_drop_order(LAM_1234)
    crossing, read = [], []
    for k in order:
        u = np.asarray(traj.stats[:, k])
        i = int(np.argmax(u >= s[k] / (2 * rho[k])))
        crossing.append(np.exp(np.interp(s[k] / (2 * rho[k]), u[i - 1:i + 1], np.log(ts[i - 1:i + 1]))))
        second = max(abs(u[j + 1] - 2 * u[j] + u[j - 1]) for j in (i - 1, i))
        read.append(np.log(ts[i] / ts[i - 1]) * second / (8 * abs(u[i] - u[i - 1])))
    predicted = th.separate_kq_drop_times(LAM_1234, n_context=n, w_init=a0**3)
    assert np.all(np.abs(np.asarray(crossing) / predicted - 1) <= np.asarray(read) + 1e-6), (crossing, predicted, read)
    assert np.all(np.diff(predicted) > 0)
    lead = th.separate_kq_leading_drop_times(LAM_1234, w_init=a0**3)
    np.testing.assert_allclose(lead * LAM_1234[order] ** 2, lead[0] * LAM_1234[order[0]] ** 2)


def _plateau_check(n_heads, scale, t_max, n_points, seed=0):
    """Gradient flow of separate KQ (rank 1) from small random init on the exact population loss.

    Returns (times, paper-normalised loss, predicted plateaus, learned-mode stats)."""
    n = 31
    mom = icl.population_moments(LAM_1234, n_context=n)
    p = att.init_separate(jax.random.key(seed), dim=4, n_heads=n_heads, rank=1, scale=scale)
    ts = np.concatenate([[0.0], np.geomspace(1.0, t_max, n_points)])
    obs = lambda q: jnp.diagonal(att.interaction_tensor(q)[4, :4, :4])
    traj = gradient_flow(att.population_loss, p, mom, times=ts, observe=obs, rtol=1e-7, atol=1e-10)
    return ts, 2.0 * np.asarray(traj.loss), th.separate_kq_plateau_losses(LAM_1234, n_context=n), np.asarray(traj.stats)


def _assert_plateaus(ts, loss, plateaus, stats, min_ratio):
    """Each predicted plateau: the loss stays within 2% of it over a time interval [t₁, t₂] with
    t₂/t₁ ≥ min_ratio (consecutive points of the log grid), the plateaus come in order,
    and while on plateau m the top-m eigen-directions (and only those) are learned."""
    s, rho = th.mode_moments(LAM_1234, n_context=31)
    order = th.separate_kq_drop_order(LAM_1234)
    last_end = -1
    for m, level in enumerate(plateaus):
        near = np.abs(loss / level - 1.0) < 0.02
        runs, start = [], None
        for i, f in enumerate(np.append(near, False)):
            if f and start is None:
                start = i
            if not f and start is not None:
                runs.append((start, i - 1))
                start = None
        best = max(runs, key=lambda r: r[1] - r[0], default=None)
        assert best is not None, (m, level)
        t1, t2 = ts[best[0]], ts[best[1]]
        assert t1 == 0.0 or t2 / t1 >= min_ratio, (m, level, t1, t2)
        assert best[0] > last_end, "plateaus out of order"
        last_end = best[1]
        mid = (best[0] + best[1]) // 2
        learned = stats[mid] * rho / s  # fraction of each mode's final strength
        np.testing.assert_allclose(learned[order[:m]], 1.0, atol=0.05)
        np.testing.assert_allclose(learned[order[m:]], 0.0, atol=0.05)


def test_separate_kq_plateaus_fast():
    # 4 heads, init std 0.05, Λ ∝ diag(1,2,3,4), N = 31: four drops, plateaus within 2%
    # of L(M_0..M_4), each lasting at least a factor 1.25 in time.
    ts, loss, plateaus, stats = _plateau_check(n_heads=4, scale=0.05, t_max=1e4, n_points=200)
    _assert_plateaus(ts, loss, plateaus, stats, min_ratio=1.25)


@pytest.mark.slow
def test_separate_kq_plateaus_small_init():
    # Smaller init (std 0.003), 8 heads, to t = 1e5: flatter plateaus (their length in log time
    # is set by the ratios λ_m²/λ_{m+1}², not by the init), sitting on the prediction.
    ts, loss, plateaus, stats = _plateau_check(n_heads=8, scale=0.003, t_max=1e5, n_points=400)
    _assert_plateaus(ts, loss, plateaus, stats, min_ratio=1.25)
    for level in plateaus:
        assert np.min(np.abs(loss / level - 1.0)) < 1e-4
