"""Linear-attention ICL experiments (arXiv 2501.16265): head-escape theory, helpers, smoke runs.

Times are DESIGN times (½-loss, τ = 1); losses in the paper's normalisation E[(y_q − ŷ)²].
"""
import jax
import numpy as np
import pytest

from dynamics.plateaus import rise_times
from experiments import attention_heads, linear_attention_plateaus as lap
from experiments.common import run_experiment
from models import attention as att
from theory import attention_icl as th
from theory.attention_heads import separate_kq_head_escapes

LAM_1234 = np.arange(1, 5) / 10.0  # Λ ∝ diag(1,2,3,4), tr Λ = 1 (the paper's separate-KQ figure)


def test_head_escapes_aligned_converge_to_exact_depth3_times():
    # One balanced head per direction (v = k_d = q_d = a): each head is an exact depth-3 mode, whose
    # half-learning time separate_kq_drop_times computes from deep_mode_time (ρ term included).
    # The escape theory drops the quadratic loss term, an O(a) relative error: measured 0.31a at
    # a = 0.05, 0.01, 0.001, so |err| < 0.5a, and it must shrink ×10 when a does.
    errs = []
    for a in (1e-2, 1e-3):
        esc = separate_kq_head_escapes(LAM_1234, n_context=31, v0=np.full(4, a), k0=a * np.eye(4), q0=a * np.eye(4))
        np.testing.assert_array_equal(esc.heads, [3, 2, 1, 0])  # head d owns direction d; largest λ first
        np.testing.assert_array_equal(esc.directions, [3, 2, 1, 0])
        err = esc.times / th.separate_kq_drop_times(LAM_1234, n_context=31, w_init=a**3) - 1.0
        assert np.max(np.abs(err)) < 0.5 * a, (a, err)
        errs.append(np.max(np.abs(err)))
    assert 8.0 < errs[0] / errs[1] < 12.0


def test_head_escapes_sign_symmetry_and_shapes():
    # (v, k, q) → (−v, −k, q) leaves every Γ_h = v k qᵀ and hence the dynamics unchanged.
    key = jax.random.split(jax.random.key(3), 3)
    v0, k0, q0 = (0.01 * np.asarray(jax.random.normal(k, shape)) for k, shape in zip(key, [(5,), (5, 4), (5, 4)]))
    a = separate_kq_head_escapes(LAM_1234, n_context=31, v0=v0, k0=k0, q0=q0)
    flip = np.where(np.arange(5) % 2 == 0, -1.0, 1.0)
    b = separate_kq_head_escapes(LAM_1234, n_context=31, v0=flip * v0, k0=flip[:, None] * k0, q0=q0)
    np.testing.assert_array_equal(a.heads, b.heads)
    np.testing.assert_allclose(a.times, b.times, rtol=1e-6)
    assert len(a.times) == 4 and np.all(np.diff(a.times) > 0)
    with pytest.raises(ValueError, match="k0, q0"):
        separate_kq_head_escapes(LAM_1234, n_context=31, v0=v0, k0=k0[:, :3], q0=q0)


def test_head_escapes_match_population_flow():
    # f64 flow on the exact population loss, 5 random rank-one heads, a = 0.02: each direction is
    # learned (half of s_d/ρ_d) by the predicted head, at the predicted time within 5% (leading
    # order in a; measured ≤ 3% here, ≤ 4% at a = 0.01 where near-ties between heads matter most).
    lam, n = LAM_1234, 31
    key = jax.random.key(0)
    p0 = att.init_separate(key, dim=4, n_heads=5, rank=1, scale=0.02)
    esc = lap.predicted_escapes(lam, p0, n)
    times = np.concatenate([[0.0], np.geomspace(10.0, 1.3 * esc.times[-1], 200)])
    loss, diag, stats, _ = lap.separate_flow(lam, n_context=n, n_heads=5, rank=1, init_scale=0.02, times=times,
                                             key=key, rtol=1e-7)
    s, rho = th.mode_moments(lam, n_context=n)
    learned = rise_times(times, diag * rho / s, 0.5)
    np.testing.assert_allclose(learned[esc.directions], esc.times, rtol=0.05)
    thr = attention_heads._on_threshold(lam, n)
    t_on = attention_heads.switch_on_times(times, stats["head"], thr)
    np.testing.assert_array_equal(np.argsort(t_on)[:4], esc.heads)
    assert np.isinf(t_on[np.setdiff1d(np.arange(5), esc.heads)]).all()  # the fifth head stays off
    assert loss[-1] == pytest.approx(th.converged_loss(lam, n_context=n), rel=1e-3)


def test_configs_reject_bad_values():
    with pytest.raises(ValueError, match="ranks"):
        lap.Config(ranks=(1, 3))  # 3 does not divide D = 4
    with pytest.raises(ValueError, match="ranks"):
        lap.Config(ranks=(2, 4))  # the rank-1 run is the main curve
    with pytest.raises(ValueError, match="init_scale"):
        attention_heads.Config(init_scale=0.5)
    with pytest.raises(ValueError, match="horizon"):
        attention_heads.Config(horizon_escapes=1.0)


@pytest.mark.slow
@pytest.mark.parametrize("module", [lap, attention_heads], ids=["linear-attention-plateaus", "attention-heads"])
def test_smoke_run_passes(module, tmp_path):
    # ~35 s (plateaus: rank 1 and 2 flows at a = 1e-3) and ~12 s CPU on an idle machine.
    result = run_experiment(module, module.smoke(), tmp_path / "run")
    failed = [r for r in result.rows if not r["passed"]]
    assert result.rows and not failed, failed
