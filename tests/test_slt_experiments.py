"""llc-calibration and stagewise-influence: config checks."""
import pytest

import experiments


def test_configs_reject_bad_values():
    llc = experiments.get("llc-calibration")
    with pytest.raises(ValueError, match="ranks"):
        llc.Config(ranks=(5,))
    sw = experiments.get("stagewise-influence")
    with pytest.raises(ValueError, match="gamma"):
        sw.Config(gamma=1.0)  # below 1.5·nβ·s₀: the local posterior would be improper at the first saddle

# Their smoke verify runs in the default suite: tests/test_experiment_smokes*.py.
