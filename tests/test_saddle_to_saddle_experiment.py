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
