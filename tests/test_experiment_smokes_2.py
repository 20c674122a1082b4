"""Every experiment's smoke verify in the default run, second half (see test_experiment_smokes.py,
whose coverage test lists these names as SMOKES_THERE)."""
import pytest

import experiments


@pytest.mark.parametrize("name", ["rich-lazy", "saddle-to-saddle", "softmax-icl-patterns", "stagewise-influence"])
def test_smoke_run_passes_every_row(name, tmp_path):
    exp = experiments.get(name)
    rows = exp.run(exp.smoke(), tmp_path / "run").rows
    failed = [r for r in rows if not r["passed"]]
    assert rows and not failed, failed
