import pytest

from experiments import saddle_to_saddle
from experiments.common import run_experiment


def test_config_checks_one_value_per_depth():
    with pytest.raises(ValueError, match="hidden"):
        saddle_to_saddle.Config(depths=(2, 3), hidden=(8,), init_scales=(1e-4, 1e-4), n_seeds=(2, 2))
    with pytest.raises(ValueError, match="init_scales"):
        saddle_to_saddle.Config(init_scales=(0.1, 1e-4, 1e-3))


@pytest.mark.slow
def test_smoke_run_passes(tmp_path):
    # ~30 s of flow on 2 cores; tests/test_saddle_theory.py runs the same comparison by default.
    result = run_experiment(saddle_to_saddle, saddle_to_saddle.smoke(), tmp_path / "run")
    assert result.rows and all(r["passed"] for r in result.rows)


def test_auto_solver_picks_rkc_only_where_the_flow_is_stiff():
    # the default depths 2, 3, 4: stiffness ratios λ_max·t_end ≈ 1e2, 6e4, 8e5 (theory, before training)
    cfg = saddle_to_saddle.Config()
    picks = []
    for depth, width, sigma, n in zip(cfg.depths, cfg.hidden, cfg.init_scales, cfg.n_seeds):
        end = cfg.horizon_escapes * saddle_to_saddle.last_escape_time(cfg.s, depth, width, sigma, n)
        picks.append(saddle_to_saddle.flow_solver(cfg, depth, end))
    assert picks == ["tsit5", "rkc", "rkc"]
    assert saddle_to_saddle.flow_solver(saddle_to_saddle.Config(solver="tsit5"), 4, 1e9) == "tsit5"
    with pytest.raises(ValueError, match="solver"):
        saddle_to_saddle.Config(solver="rk4")


def test_stiffness_rate_is_the_hessian_top_eigenvalue_at_a_learned_mode():
    # independent check of λ_max = L s^{2−2/L}: jax.hessian of the experiment's loss at a balanced
    # rank-1 net that has learned its single target mode exactly (the global minimum)
    import jax
    import jax.numpy as jnp
    import numpy as np

    import dynamics
    from models import linear

    s1, n, depth = 3.0, 3, 3
    e = jnp.eye(n)[0]
    a = s1 ** (1.0 / depth)
    params = [a * jnp.outer(e, e) for _ in range(depth)]
    sigma_yx = s1 * jnp.outer(e, e)
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    def loss(x):
        return dynamics.linear_loss_from_stats(linear.end_to_end(unravel(x)), jnp.eye(n), sigma_yx, s1**2)

    top = float(np.max(np.linalg.eigvalsh(np.asarray(jax.hessian(loss)(flat)))))
    assert saddle_to_saddle.stiffness_ratio((s1,), depth, 1.0) == pytest.approx(top, rel=1e-10)  # both exact
