"""Two-layer ReLU nets (models.relu) and the narrow-network prediction (dynamics.narrow)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.optimize import minimize_scalar

import dynamics
from dynamics.narrow import make_train_narrow, narrow_optimum_losses
from models import relu


def _net(p, s, a):
    """1-D net with breakpoints p, orientations s = ±1 (w = s), outputs a."""
    w = np.asarray(s, float)
    return {"w": jnp.asarray(w[:, None]), "b": jnp.asarray(-w * np.asarray(p, float)), "a": jnp.asarray([a], float)}


# ----------------------------------------------------------------- kinks


def test_kinks_of_hand_built_net():
    # Units: kink at -0.5 (w=+1), kink at 0.3 (w=-1), breakpoint 1.5 outside the range (linear on it),
    # a dead direction (w=0), and a pair at 0.1/0.104 that merges within tol=0.01 (weights 2 and 1 ->
    # located at (2*0.1 + 1*0.104)/3).
    params = _net([-0.5, 0.3, 1.5, 0.0, 0.1, 0.104], [1, -1, 1, 1, 1, -1], [1.0, -2.0, 3.0, 1.0, 2.0, 1.0])
    params["w"] = params["w"].at[3, 0].set(0.0)
    params["b"] = params["b"].at[3].set(0.7)
    got = relu.kinks(params, (-1.0, 1.0), tol=0.01)
    np.testing.assert_allclose(got, [-0.5, (2 * 0.1 + 0.104) / 3, 0.3], rtol=0, atol=1e-12)
    # with tol below their distance the pair is two kinks
    assert relu.kinks(params, (-1.0, 1.0), tol=1e-3).size == 4
    # a narrower range drops the kinks outside it
    np.testing.assert_allclose(relu.kinks(params, (0.0, 1.0), tol=0.01), [(2 * 0.1 + 0.104) / 3, 0.3], atol=1e-12)


def test_kinks_cancelling_pair_and_thresholds():
    # Slope jumps a|w|: +1 and -1 at the same point cancel -> no kink there; the 1e-3 unit falls under
    # the relative threshold 1e-2 of the largest jump (2) but counts with rel_threshold=0.
    params = _net([0.2, 0.2, -0.4, 0.6], [1, 1, -1, 1], [1.0, -1.0, 2.0, 1e-3])
    np.testing.assert_allclose(relu.kinks(params, tol=1e-6), [-0.4], atol=1e-12)
    np.testing.assert_allclose(relu.kinks(params, tol=1e-6, rel_threshold=0.0), [-0.4, 0.6], atol=1e-12)
    assert relu.kinks(params, tol=1e-6, abs_threshold=5.0).size == 0
    with pytest.raises(ValueError, match="x_range"):
        relu.kinks(params, (1.0, -1.0))
    with pytest.raises(ValueError, match="shape"):
        relu.kinks({"w": jnp.ones((2, 2)), "a": jnp.ones((1, 2))})


def test_kinks_matches_slope_changes_of_the_function():
    # Independent check: second differences of f on a fine grid are nonzero only at the kinks.
    params = relu.init_breakpoints(jax.random.key(3), hidden=5, x_range=(-0.9, 0.9))
    x = np.linspace(-1, 1, 200001)
    f = np.asarray(relu.apply(params, jnp.asarray(x[:, None])))[:, 0]
    d2 = np.abs(np.diff(f, 2))
    bends = x[1:-1][d2 > 1e-6 * d2.max()]
    found = relu.kinks(params, tol=1e-9, rel_threshold=0.0)
    assert found.size == 5
    # every bend of f lies within one grid step of a kink and every kink has one
    step = x[1] - x[0]
    assert np.all(np.min(np.abs(bends[:, None] - found[None, :]), axis=1) <= step * 1.01)
    assert np.all(np.min(np.abs(found[:, None] - bends[None, :]), axis=1) <= step * 1.01)


# ------------------------------------------------------------ model basics


def test_init_shapes_variants_and_errors(key):
    p = relu.init(key, n_in=3, hidden=4, n_out=2, scale=0.1, bias=False, output_bias=True)
    assert set(p) == {"w", "a", "c"} and p["w"].shape == (4, 3) and p["a"].shape == (2, 4)
    x = jax.random.normal(key, (7, 3))
    for act, sigma in (("relu", jax.nn.relu), ("tanh", jnp.tanh), ("linear", lambda z: z)):
        want = sigma(x @ p["w"].T) @ p["a"].T + p["c"]
        np.testing.assert_allclose(relu.make_apply(act)(p, x), want, rtol=1e-14)
    # balanced scheme: ‖aᵢ‖ = ‖(wᵢ, bᵢ)‖ for every unit
    np.testing.assert_allclose(relu.balance(relu.init(key, n_in=2, hidden=6, n_out=3, scale=0.3, scheme="balanced")), 0, atol=1e-14)
    with pytest.raises(ValueError, match="activation"):
        relu.make_apply("gelu")
    with pytest.raises(ValueError, match="scheme"):
        relu.init(key, n_in=1, hidden=2, n_out=1, scale=0.1, scheme="orthogonal")
    with pytest.raises(ValueError, match="hidden"):
        relu.init(key, n_in=1, hidden=0, n_out=1, scale=0.1)


def test_merge_units_is_exact_for_shared_directions(key):
    # Three units on one direction (breakpoint 0.2, w > 0) with scales 1, 2, 0.5, one on another, one
    # negligible: merging gives 2 units and the same function wherever the dropped unit is 0.
    params = _net([0.2, 0.2, 0.2, -0.3, 0.9], [1, 1, 1, -1, 1], [1.0, -0.25, 2.0, 1.5, 1e-9])
    params["w"] = params["w"] * jnp.asarray([1.0, 2.0, 0.5, 1.0, 1.0])[:, None]
    params["b"] = params["b"] * jnp.asarray([1.0, 2.0, 0.5, 1.0, 1.0])
    merged = relu.merge_units(params, tol=1e-9, threshold=1e-6)
    assert relu.width(merged) == 2
    x = jnp.linspace(-1, 0.85, 101)[:, None]
    np.testing.assert_allclose(relu.apply(merged, x), relu.apply(params, x), rtol=0, atol=1e-12)
    np.testing.assert_allclose(relu.balance(merged), 0, atol=1e-12)
    np.testing.assert_allclose(np.sort(relu.kinks(merged)), [-0.3, 0.2], atol=1e-12)


# ---------------------------------------------- saddles of narrower nets


def _target(x):
    return 2.0 * jax.nn.relu(x + 0.4) - 1.5 * jax.nn.relu(x - 0.3)


def test_silent_units_keep_the_loss_and_the_critical_point(key):
    x = jnp.linspace(-1, 1, 41)[:, None]
    data = (x, _target(x))
    loss = dynamics.model_loss(relu.apply)
    # 1) at any θ, grad of the embedded net = embedded grad of the narrow net, and silent units get
    #    exactly 0 (σ(0) = 0 and JAX's relu'(0) = 0): an exact identity, so f64 round-off only.
    narrow = relu.init_breakpoints(key, hidden=2)
    wide = relu.embed_narrow(narrow, 6)
    assert float(loss(wide, data)) == pytest.approx(float(loss(narrow, data)), rel=1e-15)
    g_wide, g_narrow = jax.grad(loss)(wide, data), jax.grad(loss)(narrow, data)
    for name in ("w", "b", "a"):
        np.testing.assert_allclose(g_wide[name], relu.embed_narrow(g_narrow, 6)[name], rtol=1e-13, atol=1e-15)
    assert all(float(jnp.max(jnp.abs(g_wide[n][..., 2:]))) == 0.0 for n in ("b", "a"))
    assert float(jnp.max(jnp.abs(g_wide["w"][2:]))) == 0.0
    # 2) the optimum of a 1-unit net (trained in f64 until ‖∇L‖ < 1e-9) embeds as a critical point of
    #    the 4-unit net with the same loss: ‖∇L_wide‖ = ‖∇L_narrow‖.
    train = make_train_narrow(loss, lambda k_, k: relu.init_breakpoints(k_, hidden=k), optax.adam(optax.cosine_decay_schedule(0.05, 3000, 1e-3)), data, n_steps=3000)
    best = narrow_optimum_losses(train, [1], n_inits=8, key=key).best_aux[0]
    best = jax.tree_util.tree_map(jnp.asarray, best)
    gn = jax.grad(loss)(best, data)
    grad_norm = float(jnp.sqrt(sum(jnp.sum(v**2) for v in jax.tree_util.tree_leaves(gn))))
    assert grad_norm < 1e-9
    gw = jax.grad(loss)(relu.embed_narrow(best, 4), data)
    assert float(jnp.sqrt(sum(jnp.sum(v**2) for v in jax.tree_util.tree_leaves(gw)))) == pytest.approx(grad_norm, rel=1e-12, abs=1e-15)
    assert float(loss(relu.embed_narrow(best, 4), data)) == float(loss(best, data))


def test_balance_is_conserved_by_gradient_flow(key):
    # Positive homogeneity of relu => d/dt(‖aᵢ‖² − ‖wᵢ‖² − bᵢ²) = 0 (Du, Hu & Lee 2018, arXiv 1806.00900).
    # Tsit5 at rtol 1e-9 keeps it to ~1e-7 of the weights² (≈ 1) over t = 5, while the weights move by O(1)
    # (checked: otherwise conservation would be trivial).
    x = jnp.linspace(-1, 1, 17)[:, None]
    data = (x, _target(x))
    params = relu.init(key, n_in=1, hidden=3, n_out=1, scale=0.7)
    traj = dynamics.gradient_flow(dynamics.model_loss(relu.apply), params, data, times=jnp.asarray([0.0, 2.5, 5.0]),
                                  observe=relu.balance, rtol=1e-9, atol=1e-11)
    drift = np.max(np.abs(np.asarray(traj.stats) - np.asarray(relu.balance(params))))
    assert drift < 1e-6
    moved = max(float(jnp.max(jnp.abs(traj.params[n] - params[n]))) for n in ("w", "b", "a"))
    assert moved > 0.1

    # The instantaneous rate along −∇L, d/dt Dᵢ = −2(aᵢ ∂L/∂aᵢ − wᵢ ∂L/∂wᵢ − bᵢ ∂L/∂bᵢ): 0 to round-off
    # for relu and linear units (Euler's identity), O(1) for tanh units (not homogeneous: the check can fail).
    def rate(apply):
        g = jax.grad(dynamics.model_loss(apply))(params, data)
        return -2 * (g["a"][0] * params["a"][0] - g["w"][:, 0] * params["w"][:, 0] - g["b"] * params["b"])

    for act in ("relu", "linear"):
        np.testing.assert_allclose(rate(relu.make_apply(act)), 0, atol=1e-14)
    assert float(jnp.max(jnp.abs(rate(relu.make_apply("tanh"))))) > 1e-2


def _best_single_unit_loss(x, y):
    """min over (a, w, b) of (1/2P)Σ(y − a relu(w x + b))², by brute force: for each orientation s = ±1
    the unit is c·relu(s(x − p)); for fixed p the best c is least squares, so the loss is
    (1/2P)(‖y‖² − ⟨y, φ_p⟩²/‖φ_p‖²). Maximise over p on a dense grid (inside the data and out to
    |p| = 1e4, where φ_p is affine on the data) and refine the best grid point with Brent's method.
    The w = 0 case (a constant) is the p → ∞ limit."""
    x, y = np.asarray(x, float), np.asarray(y, float)

    def explained(p, s):
        phi = np.maximum(s * (x[:, None] - np.atleast_1d(p)[None, :]), 0)
        den = np.sum(phi**2, axis=0)
        return np.where(den > 0, (y @ phi) ** 2 / np.where(den > 0, den, 1.0), 0.0)

    span = x.max() - x.min()
    grid = np.concatenate([np.linspace(x.min(), x.max(), 40 * x.size),
                           x.min() - span * np.geomspace(1e-4, 1e4, 400), x.max() + span * np.geomspace(1e-4, 1e4, 400)])
    best = np.sum(y) ** 2 / x.size  # the constant
    for s in (1.0, -1.0):
        e = explained(grid, s)
        i = int(np.argmax(e))
        near = np.sort(np.abs(grid - grid[i]))[1]
        res = minimize_scalar(lambda p: -explained(p, s)[0], bounds=(grid[i] - near, grid[i] + near), method="bounded",
                              options={"xatol": 1e-13})
        best = max(best, e[i], -res.fun)
    return 0.5 * (y @ y - best) / x.size


def test_narrow_optimum_k1_matches_brute_force_hinge_fit(key):
    x = jnp.linspace(-1, 1, 33)[:, None]
    y = _target(x) + 0.3 * jnp.sin(5 * x)
    loss = dynamics.model_loss(relu.apply)
    sched = optax.cosine_decay_schedule(0.05, 3000, 1e-3)
    train = make_train_narrow(loss, lambda k_, k: relu.init_breakpoints(k_, hidden=k, x_range=(-1.5, 1.5)),
                              optax.adam(sched), (x, y), n_steps=3000)
    got = narrow_optimum_losses(train, [1], n_inits=16, key=key)
    want = _best_single_unit_loss(x[:, 0], y[:, 0])
    # Both are converged minimisations of one smooth function near a non-degenerate minimum (loss
    # error quadratic in the parameter error): 1e-7 relative leaves room for Adam's last steps.
    assert got.best_loss[0] == pytest.approx(want, rel=1e-7)
    assert got.widths.tolist() == [1] and got.losses[0].shape == (16,)
    # the best init's params reproduce its loss
    assert float(loss(jax.tree_util.tree_map(jnp.asarray, got.best_aux[0]), (x, y))) == pytest.approx(want, rel=1e-7)


def test_narrow_optimum_losses_rejects_bad_input(key):
    train = lambda k_, k: jnp.sum(jax.random.normal(k_, (k,)))
    with pytest.raises(ValueError, match="widths"):
        narrow_optimum_losses(train, [], n_inits=2, key=key)
    with pytest.raises(ValueError, match="n_inits"):
        narrow_optimum_losses(train, [1], n_inits=0, key=key)
    with pytest.raises(ValueError, match="scalar loss"):
        narrow_optimum_losses(lambda k_, k: jnp.ones(3), [1], n_inits=2, key=key)


# ------------------------------------------------------ experiment relu-kinks


def test_relu_kinks_config_checks():
    from experiments import relu_kinks

    with pytest.raises(ValueError, match="n_kinks"):
        relu_kinks.Config(n_kinks=(2, 5))
    with pytest.raises(ValueError, match="init_scale"):
        relu_kinks.Config(init_scale=0.5)
    with pytest.raises(ValueError, match="hidden"):
        relu_kinks.Config(n_kinks=(4,), hidden=7)
    with pytest.raises(ValueError, match="horizon"):
        relu_kinks.Config(horizon_escapes=1.0)


def test_relu_kinks_targets_have_their_kinks():
    from experiments import relu_kinks

    x = jnp.linspace(-1, 1, 401)[:, None]
    for K, (p, c) in relu_kinks.TARGETS.items():
        y = relu_kinks.target(x, K)[:, 0]
        slope = jnp.diff(y) / jnp.diff(x[:, 0])
        jumps = jnp.diff(slope)
        # one slope change per kink, of the tabulated size (p on the grid: the jump sits in one difference)
        assert int(jnp.sum(jnp.abs(jumps) > 1e-6)) == K
        assert sorted(np.round(np.asarray(jumps[jnp.abs(jumps) > 1e-6]), 9).tolist()) == sorted(c)


def test_relu_kinks_smoke_run_passes(tmp_path):
    # K = 2 and 4, 4 seeds each (GD to t ≈ 2.6e4 plus 64 narrow fits per width; K = 3 is in the
    # slow default-config run below, and its narrow optima in the brute-force spline test).
    from experiments import relu_kinks
    from experiments.common import run_experiment

    result = run_experiment(relu_kinks, relu_kinks.smoke(), tmp_path / "run")
    failed = [r for r in result.rows if not r["passed"]]
    assert result.rows and not failed, failed
    # every kind of row is there for each K: count, K+1 losses, K+1 kink counts, K+1 distances,
    # K kink positions, K escape times, per-seed first escapes (+ a count row for seeds with an empty lobe, if any)
    names = [r["quantity"] for r in result.rows]
    assert relu_kinks.smoke().n_kinks == (2, 4)
    for K in (2, 4):
        assert sum(n.startswith(f"K={K}: plateau count") for n in names) >= 1
        assert sum(n.startswith(f"K={K}: plateau ") and "loss" in n for n in names) == K + 1
        assert sum(n.startswith(f"K={K}: kinks of f") for n in names) == K + 1
        assert sum(n.startswith(f"K={K}: kinks at plateau") for n in names) == K
        assert sum(n.startswith(f"K={K}: escape") and "median" in n for n in names) == K
        # one per seed of the first escape vs its own prediction (every smoke seed has its lobes populated)
        assert sum(n.startswith(f"K={K}: escape 1 time vs seed") for n in names) == relu_kinks.smoke().n_seeds


@pytest.mark.slow
def test_relu_kinks_default_run_passes(tmp_path):
    # K = 2, 3, 4 with 8 seeds each and 128 narrow inits: ~30 s on 2 cores.
    from experiments import relu_kinks
    from experiments.common import run_experiment

    result = run_experiment(relu_kinks, relu_kinks.Config(), tmp_path / "run")
    failed = [r for r in result.rows if not r["passed"]]
    assert result.rows and not failed, failed


def _best_spline_loss(x, y, k, grid=np.linspace(-1, 1, 201)):
    """min over k breakpoints p (and slope jumps, and a free affine part) of (1/2P)‖P⊥(y − Σ c relu(x − p))‖²:
    brute force over ``grid`` (default: 0.01 steps) of sorted breakpoints, then Nelder-Mead
    from the best cell. tests/test_theory_overlays.py uses it too."""
    from itertools import combinations

    from scipy.optimize import minimize

    q, _ = np.linalg.qr(np.stack([x, np.ones_like(x)], axis=1))
    proj = lambda v: v - q @ (q.T @ v)
    yt = proj(y)

    def loss(ps):
        f = proj(np.maximum(x[:, None] - np.asarray(ps)[None, :], 0.0))
        coef, *_ = np.linalg.lstsq(f, yt, rcond=None)
        return 0.5 * np.sum((yt - f @ coef) ** 2) / x.size

    best = min(combinations(grid, k), key=loss)
    res = minimize(loss, np.array(best), method="Nelder-Mead", options={"xatol": 1e-12, "fatol": 1e-16, "maxiter": 4000})
    return min(res.fun, loss(best))


@pytest.mark.parametrize("K, k", [(2, 1), (3, 2)])
def test_affine_free_narrow_optimum_matches_brute_force_spline(key, K, k):
    # The narrow optima behind relu-kinks' plateau rows: with the affine part free a j-unit net
    # is a j-knot linear spline, so L*_j is a least-squares fit over j breakpoints. Every width
    # j ≤ k that _narrow_optima fits on the way is checked (K = 3: j = 1 and 2).
    from experiments import relu_kinks

    cfg = relu_kinks.Config(n_kinks=(K,), narrow_inits=64, narrow_steps=3000)
    data = relu_kinks._data(cfg, K)
    got, _ = relu_kinks._narrow_optima(cfg, data, k, key)
    for j in range(1, k + 1):
        want = _best_spline_loss(np.asarray(data[0][:, 0]), np.asarray(data[1][:, 0]), j)
        # two converged minimisations of one function (Adam's cosine tail vs Nelder-Mead at 1e-12)
        assert got[j - 1] == pytest.approx(want, rel=1e-6), j
