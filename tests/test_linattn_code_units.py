"""linear attention in linattn-icl's units (github.com/yedizhang/linattn-icl, arXiv 2501.16265):
its training set (centred x, whitened w), its per-layer init, the 1/N switch and the unit conversion."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynamics import gradient_flow
from experiments import linear_attention_plateaus as lap
from models import attention as att
from tasks import icl

LAM = np.arange(1, 5) / 10.0


@pytest.mark.parametrize("divide_by_n", [True, False])
def test_empirical_moments_give_the_exact_sample_loss(divide_by_n):
    # The loss is quadratic in Γ, so the moments of a set reproduce its ½-MSE to rounding (f64).
    tokens, targets = icl.training_set(jax.random.key(1), lam=LAM, n_context=7, size=64)
    params = att.init_separate(jax.random.key(2), dim=4, n_heads=3, rank=2, scale=0.3, on_manifold=False)
    mom = icl.empirical_moments(tokens, targets, divide_by_n=divide_by_n)
    direct = att.sample_loss(params, (tokens, targets), divide_by_n=divide_by_n)
    assert float(att.population_loss(params, mom)) == pytest.approx(float(direct), rel=1e-10)


def test_training_set_is_centred_and_whitened_like_the_code():
    # data.py: x − mean over sequences per (position, coordinate); w − mean, then × C^{-1/2} with the
    # unbiased covariance. Recover each sequence's w from its N context pairs (noise-free, N > D).
    p, n, d = 200, 9, 4
    tokens, targets = icl.training_set(jax.random.key(0), lam=LAM, n_context=n, size=p)
    x, y = np.asarray(tokens[:, :, :d]), np.asarray(tokens[:, :n, d])
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-12)
    w = np.stack([np.linalg.lstsq(x[b, :n], y[b], rcond=None)[0] for b in range(p)])
    np.testing.assert_allclose(w.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(np.cov(w.T), np.eye(d), atol=1e-10)
    np.testing.assert_allclose(np.asarray(targets), np.einsum("bd,bd->b", x[:, n], w), atol=1e-10)
    assert np.all(np.asarray(tokens[:, n, d]) == 0.0)  # the query's y slot
    with pytest.raises(ValueError, match="size"):
        icl.training_set(jax.random.key(0), lam=LAM, n_context=n, size=5)


def test_code_init_scales_are_std_over_sqrt_numel():
    # net.py Attention_Separate: nn.Linear(D+1, H·R) for key/query, nn.Linear(D+1, H·(D+1)) for value,
    # std = init/√numel; Attention_Merge: std = init.
    sc = att.code_init_scales(0.01, dim=4, n_heads=5, rank=1)
    assert sc == pytest.approx({"k": 0.01 / 5.0, "q": 0.01 / 5.0, "v": 0.01 / np.sqrt(125.0)})
    assert att.code_init_scales(0.01, dim=4, n_heads=5, merged=True) == {"kq": 0.01, "v": 0.01}
    p = att.init_separate(jax.random.key(0), dim=8, n_heads=50, rank=4, scale=att.code_init_scales(1.0, dim=8, n_heads=50, rank=4))
    # 50·4·8 free key entries at std 1/√(50·4·9): sample std within 5 standard errors (≈ 1/√(2·1600)).
    std_k = np.std(np.asarray(p["k"][:, :, :8]))
    assert std_k * np.sqrt(50 * 4 * 9) == pytest.approx(1.0, abs=5 / np.sqrt(2 * 1600))
    with pytest.raises(ValueError, match="keys"):
        att.init_separate(jax.random.key(0), dim=4, n_heads=2, scale={"k": 1.0, "v": 1.0})


def test_without_one_over_n_weights_scale_by_n_cube_root_and_time_by_n_two_thirds():
    # The units table: the code's model (no 1/N) at θ_code is the paper's at θ = θ_code·N^{1/3}, and its
    # flow time t_code is t = t_code·N^{2/3} (separate KQ, depth 3). Both flows f64, rtol 1e-10.
    n = 7
    p_code = att.init_separate(jax.random.key(3), dim=4, n_heads=2, rank=1, scale=0.3)
    w, tf = n ** (1 / 3), n ** (2 / 3)
    t_code = np.array([0.0, 20.0, 60.0])
    code = gradient_flow(att.population_loss, p_code, icl.population_moments(LAM, n_context=n, divide_by_n=False),
                         times=t_code, rtol=1e-10, atol=1e-12)
    paper = gradient_flow(att.population_loss, jax.tree.map(lambda a: w * a, p_code),
                          icl.population_moments(LAM, n_context=n), times=t_code * tf, rtol=1e-10, atol=1e-12)
    assert float(code.loss[-1]) < 0.9 * float(code.loss[0])  # it moved
    np.testing.assert_allclose(np.asarray(code.loss), np.asarray(paper.loss), rtol=1e-7)
    assert lap.paper_scale(lap.Config(n_context=n, divide_by_n=False), depth=3) == pytest.approx((w, tf))
    assert lap.paper_scale(lap.Config(n_context=n), depth=2) == (1.0, 1.0)


def test_config_accepts_the_code_run_and_rejects_bad_values():
    cfg = lap.Config(ranks=(1,), train_size=5000, learning_rate=0.02, init_scheme="numel", init_scale=0.01,
                     divide_by_n=False)
    assert "no 1/N" in lap.time_label(cfg) and "N^{2/3}" in lap.time_label()
    for bad in (dict(init_scheme="xavier"), dict(train_size=5), dict(learning_rate=-0.1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            lap.Config(**bad)


README_RUN = ["ranks=1", "train_size=5000", "learning_rate=0.02", "init_scheme=numel", "init_scale=0.01", "divide_by_n=false"]


def test_the_readme_run_is_expressible_with_set():
    # linattn-icl's README: train.py --model attnS --head 5 --lr 0.02 --init 0.01 (D = 4, seq_len 32, 5000 sequences).
    from experiments.common import parse_overrides

    cfg = lap.Config(**parse_overrides(lap.Config, README_RUN))
    assert (cfg.n_heads, len(cfg.lam_ratios), cfg.n_context, cfg.train_size) == (5, 4, 31, 5000)
    assert (cfg.learning_rate, cfg.init_scale, cfg.init_scheme, cfg.divide_by_n, cfg.ranks) == (0.02, 0.01, "numel", False, (1,))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_the_readme_run_against_the_theory_of_its_training_set(seed):
    # The full run (GD on the set's exact full-batch loss) must pass every verify row: plateau losses vs the
    # set's own fixed points (tolerance derived in verify, each < 1% here: the reading's bias and the set's
    # off-manifold floor), the set's fixed points vs the population's within 3 Monte-Carlo s.e., and the
    # drop times vs the set's head escapes (5% leading order + the on/off-manifold spread). Seeds 0, 1: the first two.
    from experiments.common import parse_overrides

    cfg = lap.Config(**{**parse_overrides(lap.Config, README_RUN), "seed": seed})
    arrays = lap.simulate(cfg)
    rows = lap.verify(arrays, cfg)
    assert all(r["passed"] for r in rows), [r for r in rows if not r["passed"]]
    plateau = [r for r in rows if "plateau" in r["quantity"] and "training set's fixed point" in r["quantity"]]
    assert len(plateau) == 5 and all(r["tol"] < 0.01 for r in plateau)
    assert sum("time vs the set's escapes" in r["quantity"] for r in rows) == 4
