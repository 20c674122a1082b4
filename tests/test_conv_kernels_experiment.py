"""conv-kernels experiment: config checks, and the smoke run's verify rows (slow)."""
import numpy as np
import pytest

from experiments import conv_kernels
from experiments.common import run_experiment


def test_config_checks():
    with pytest.raises(ValueError, match="s="):
        conv_kernels.Config(s=(1.0, 2.0))
    with pytest.raises(ValueError, match="s="):
        conv_kernels.Config(s=(4.0, 3.0, 2.0, 1.0, 0.5), channels=4)
    with pytest.raises(ValueError, match="init_scale"):
        conv_kernels.Config(init_scale=0.1)
    # a horizon that leaves the weakest mode < 10 e-folds of u0 to spare is refused before training
    with pytest.raises(ValueError, match="horizon_escapes"):
        conv_kernels.Config(horizon_escapes=1.1)


def test_kernels_in_use_counts_max_over_frequencies():
    # (T=2, N=3, r=3) singular values; threshold s_min/2 = 0.5.
    svals = np.array([[[0.1, 0.0, 0.0], [0.2, 0.1, 0.0], [0.0, 0.0, 0.0]],
                      [[2.0, 0.6, 0.0], [2.0, 0.4, 0.0], [1.9, 1.0, 0.7]]])
    np.testing.assert_array_equal(conv_kernels.kernels_in_use(svals, 1.0), [0, 3])


@pytest.mark.slow
def test_smoke_run_passes(tmp_path):
    # ~60 s of f64 flow + narrow-net training on 2 idle cores (4 min under load).
    result = run_experiment(conv_kernels, conv_kernels.smoke(), tmp_path / "run")
    assert len(result.rows) >= 20 and all(r["passed"] for r in result.rows)
    assert (tmp_path / "run" / "conv_kernels.png").is_file()
