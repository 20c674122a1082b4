"""theory.<family>.predict → Staircase, dynamics.plateaus.compare, experiments.plotting.staircase.

Each predict is checked against an independent computation: a float64 GD run of
the network it predicts (deep linear depth 2, diagonal), numbers printed in the
paper (attention), an exhaustive search (ReLU narrow optima), or, for depths
whose simulation takes minutes, the pieces it is assembled from plus the time
convention (τ = 1/η: GD times in steps).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynamics
import tasks
from dynamics.plateaus import compare
from models import diagonal as diag_model
from models import linear
from theory import attention_heads, attention_icl, diagonal, relu, saddle
from theory.staircase import Staircase, time_constant

pytestmark = pytest.mark.strict_dtypes

S = (4.0, 2.0, 1.0)


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
def test_saddle_predict_is_the_staircase_of_the_theory_functions(depth):
    pred = saddle.predict(S, init_scale=1e-3, depth=depth, width=16, tau=2.0)
    assert isinstance(pred, Staircase) and pred.level == 0.75
    np.testing.assert_allclose(pred.plateau_losses, np.asarray(saddle.plateau_losses(S, trace_yy=21.0)), rtol=1e-12)
    want = np.asarray(saddle.transition_times(S, init_scale=1e-3, depth=depth, width=16, tau=2.0))
    np.testing.assert_allclose(pred.transition_times, want, rtol=1e-12)
    assert pred.ranks.tolist() == [0, 1, 2, 3]
    # GD with learning rate η is the flow with τ = 1/η, step k at t = k
    gd = saddle.predict(S, init_scale=1e-3, depth=depth, width=16, learning_rate=0.5)
    np.testing.assert_allclose(gd.transition_times, pred.transition_times, rtol=1e-12)


def test_saddle_predict_depth_6():
    pred = saddle.predict(S, init_scale=0.05, depth=6, width=8)
    assert pred.transition_times.shape == (3,) and np.all(np.diff(pred.transition_times) > 0)
    # the overlay is transition_times itself (its accuracy is tested in test_saddle_theory.py);
    # no tabulated-depth limit: depth 6 uses escape constants computed at call time
    want = np.asarray(saddle.transition_times(S, init_scale=0.05, depth=6, width=8))
    np.testing.assert_allclose(pred.transition_times, want, rtol=1e-12)


def test_saddle_predict_narrow_width_drops_unlearnable_modes():
    pred = saddle.predict(S, init_scale=1e-3, depth=2, width=2)
    assert pred.plateau_losses.shape == (3,) and pred.transition_times.shape == (2,)


def test_time_constant_rejects_both_and_bad_values():
    assert time_constant(None, 0.25) == 4.0 and time_constant(None, None) == 1.0
    with pytest.raises(ValueError, match="not both"):
        time_constant(2.0, 0.1)
    with pytest.raises(ValueError, match="learning_rate"):
        time_constant(None, -1.0)


def test_saddle_predict_matches_gd_depth_2():
    """A depth-2 net (8-8-8, σ = 1e-6, GD η = 0.02) against predict(..., learning_rate=η) via compare.
    Seed 0 fixed in advance. Time tolerance 10%: one init scatters around the median by
    ½ ln(χ²_8 quantile ratio)/ln(2s/σ²χ²) ≈ 3% (10-90%), and GD's per-step growth ln(1 + ηs)/η
    differs from s by ηs/2 ≤ 4%; loss tolerance 2%: plateaus sit at the saddles up to O(σ²)."""
    eta, sigma = 0.02, 1e-6
    task = tasks.teacher(jax.random.key(3), n_in=8, n_out=8, s=S)
    params = linear.init_gaussian(jax.random.key(0), (8, 8, 8), std=sigma)
    pred = saddle.predict(S, init_scale=sigma, depth=2, width=8, trace_yy=float(task.trace_yy), learning_rate=eta)

    def loss(p, _):
        return dynamics.linear_loss_from_stats(linear.end_to_end(p), task.sigma_xx, task.sigma_yx, task.trace_yy)

    steps = dynamics.log_steps(int(2 * pred.transition_times[-1]), 400)
    traj = dynamics.descend(loss, params, optax.sgd(eta), None, record_steps=steps)
    rows = compare(traj.t, traj.loss, pred, time_tol=0.1, loss_tol=0.02)
    assert len(rows) == 1 + 4 + 3
    assert all(r["passed"] for r in rows), [r for r in rows if not r["passed"]]
    # a wrong prediction fails: times off by ×1.5
    wrong = pred._replace(transition_times=1.5 * pred.transition_times)
    assert not all(r["passed"] for r in compare(traj.t, traj.loss, wrong))


def test_diagonal_predict_matches_gd():
    """Whitened inputs (G = I), β* = (3, −1.5, 0.5), product form at α = 1e-6, GD η = 0.01.
    Jumps at t_k = t̃_k ln(1/α)/η steps; the finite-α times differ by O(1/ln(1/α)) relative
    (Pesme & Flammarion 2023, Thm. 2): tolerance 2/ln(1/α) = 14%, as experiments.relu_kinks."""
    alpha, eta = 1e-6, 0.01
    x = np.sqrt(3.0) * np.eye(3)
    y = x @ np.array([3.0, -1.5, 0.5])
    pred = diagonal.predict(x, y, alpha=alpha, learning_rate=eta)
    assert pred.ranks.tolist() == [0, 1, 2, 3] and pred.level == 0.5
    np.testing.assert_allclose(pred.transition_times, np.log(1 / alpha) / eta / np.array([3.0, 1.5, 0.5]), rtol=1e-9)
    loss = dynamics.model_loss(diag_model.apply)
    steps = dynamics.log_steps(int(1.5 * pred.transition_times[-1]), 400)
    traj = dynamics.descend(loss, diag_model.init(3, alpha=alpha), optax.sgd(eta), (jnp.asarray(x), jnp.asarray(y)),
                            record_steps=steps)
    rows = compare(traj.t, traj.loss, pred, time_tol=2 / np.log(1 / alpha), loss_tol=0.02)
    assert len(rows) == 1 + 4 + 3 and all(r["passed"] for r in rows), [r for r in rows if not r["passed"]]


def test_diagonal_predict_squares_form_halves_times():
    x = np.sqrt(2.0) * np.eye(2)
    y = x @ np.array([2.0, 1.0])
    prod, sq = diagonal.predict(x, y, alpha=1e-4), diagonal.predict(x, y, alpha=1e-4, form="squares")
    np.testing.assert_allclose(sq.transition_times, prod.transition_times / 2, rtol=1e-12)
    with pytest.raises(ValueError, match="alpha"):
        diagonal.predict(x, y, alpha=2.0)


def test_attention_predict_plateaus_are_the_papers_halved():
    """Λ ∝ diag(1, 2, 3, 4), tr Λ = 1, N = 31: the paper's plateaus 1, 0.6406, 0.3774, 0.2098, 0.1360
    (arXiv 2501.16265, quoted to 4 digits in theory.attention_icl) are twice saddle's ½-loss."""
    lam = np.array([1.0, 2.0, 3.0, 4.0]) / 10.0
    pred = attention_icl.predict(lam, n_context=31, w_init=1e-3, learning_rate=0.1)
    np.testing.assert_allclose(2 * pred.plateau_losses, [1, 0.6406, 0.3774, 0.2098, 0.1360], atol=5e-5)
    flow = attention_icl.separate_kq_drop_times(lam, n_context=31, w_init=1e-3)
    np.testing.assert_allclose(pred.transition_times, flow / 0.1, rtol=1e-12)
    assert pred.ranks.tolist() == [0, 1, 2, 3, 4]


def test_attention_heads_predict_drops_follow_the_escape_order():
    lam = np.array([1.0, 2.0, 3.0, 4.0]) / 10.0
    rng = np.random.default_rng(0)
    v0, k0, q0 = 0.01 * rng.normal(size=4), 0.01 * rng.normal(size=(4, 4)), 0.01 * rng.normal(size=(4, 4))
    pred = attention_heads.predict(lam, n_context=31, v0=v0, k0=k0, q0=q0)
    # every direction learned: the same end point as the aligned prediction, reached by another sum
    ref = attention_icl.predict(lam, n_context=31, w_init=1e-3)
    assert pred.plateau_losses[-1] == pytest.approx(ref.plateau_losses[-1], rel=1e-12)
    assert pred.plateau_losses[0] == pytest.approx(0.5, rel=1e-12)
    assert np.all(np.diff(pred.transition_times) > 0)


# min over k knots of the affine-free least-squares loss: the brute-force spline of test_relu.py
from test_relu import _best_spline_loss as _exhaustive_spline_loss  # noqa: E402


def test_relu_narrow_optima_against_exhaustive_search():
    """k = 1, 2 against every knot subset of a 0.02 grid refined by Nelder-Mead: both end in
    the same minimum, so they agree to the simplex tolerance (1e-6 relative leaves room for
    Nelder-Mead stopping on a flat valley floor)."""
    x = np.linspace(-1, 1, 41)
    y = np.sin(3 * x) + 0.5 * x**2
    losses, residuals = relu.narrow_optima(x, y, 2)
    grid = np.linspace(-1, 1, 101)[1:-1]
    for k in (1, 2):
        brute = _exhaustive_spline_loss(x, y, k, grid)
        assert losses[k] == pytest.approx(brute, rel=1e-6)
    assert 0.5 * residuals[2] @ residuals[2] / x.size == pytest.approx(losses[2], rel=1e-9)


def test_relu_predict_on_a_two_kink_target():
    """y is itself a 2-kink net, so L*_2 = 0 by construction; times are the escape sequence of the
    narrow optima's residuals, and GD times (learning_rate) are the GD-rate times in steps."""
    x = np.linspace(-1, 1, 41)
    y = 2 * np.maximum(x - 0.2, 0) - 1.5 * np.maximum(x + 0.4, 0)
    pred = relu.predict(x, y, n_kinks=2, init_scale=1e-4)
    assert pred.plateau_losses[-1] < 1e-20 * pred.plateau_losses[0]
    assert pred.ranks.tolist() == [0, 1, 2]
    _, res = relu.narrow_optima(x, y, 2)
    esc = relu.incremental_escapes(x, res[:2], log_inv_scale=np.log(1e4))
    np.testing.assert_allclose(pred.transition_times, esc.times, rtol=1e-12)
    gd = relu.predict(x, y, n_kinks=2, init_scale=1e-4, learning_rate=0.1)
    esc_gd = relu.incremental_escapes(x, res[:2], log_inv_scale=np.log(1e4), eta=0.1)
    np.testing.assert_allclose(gd.transition_times, esc_gd.times / 0.1, rtol=1e-12)


def test_compare_rejects_malformed_prediction():
    t = np.geomspace(1, 100, 50)
    bad = Staircase(np.array([1.0, 0.5]), np.array([1.0, 2.0]), np.array([0, 1]), 0.75)
    with pytest.raises(ValueError, match="plateau losses"):
        compare(t, np.exp(-t), bad)


def test_plotting_staircase_draws_theory_over_simulation():
    from experiments import plotting

    pred = saddle.predict(S, init_scale=1e-3, depth=2, width=8)
    t = np.geomspace(1e-2, 2 * pred.transition_times[-1], 200)
    loss, _ = saddle.rank_staircase(t, S, trace_yy=21.0, init_scale=1e-3, depth=2, width=8)
    fig, (ax,) = plotting.figure(1)
    plotting.staircase(ax, t, np.asarray(loss), pred)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert len(ax.lines) == 1 + 3  # the curve and one vertical line per transition
    assert len(ax.collections) == 4  # one dashed segment per plateau
    plotting.plt.close(fig)
