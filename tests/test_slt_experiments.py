"""llc-calibration and stagewise-influence: config checks (default run) and their
smoke verify rows (slow: ~40 s CPU each on 2 cores)."""
import pytest

import experiments


def test_configs_reject_bad_values():
    llc = experiments.get("llc-calibration")
    with pytest.raises(ValueError, match="ranks"):
        llc.Config(ranks=(5,))
    sw = experiments.get("stagewise-influence")
    with pytest.raises(ValueError, match="gamma"):
        sw.Config(gamma=1.0)  # below 1.5·nβ·s₀: the local posterior would be improper at the first saddle


@pytest.mark.slow
@pytest.mark.parametrize("name", ["llc-calibration", "stagewise-influence"])
def test_smoke_verify_rows_pass(name):
    exp = experiments.get(name)
    cfg = exp.smoke()
    arrays = exp.simulate(cfg)
    rows = exp.verify(arrays, cfg)
    assert rows and all(r["passed"] for r in rows), [r for r in rows if not r["passed"]]
    assert exp.plot(arrays, cfg)
