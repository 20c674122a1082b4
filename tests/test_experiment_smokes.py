"""Every experiment's smoke verify runs in the default test run (issue 17, item 4).

The experiments below had their smoke run only in the slow set; the others are run by their own
test files (named in COVERED_ELSEWHERE), so each smoke simulation runs once per default run. The
seven are split over this file and test_experiment_smokes_2.py so that the two xdist workers
(--dist loadfile) share them."""
import pytest

import experiments

SMOKES_HERE = ["activation-geometry", "attention-heads", "conv-kernels", "linear-attention-plateaus", "llc-calibration"]
SMOKES_THERE = ["rich-lazy", "saddle-to-saddle", "softmax-icl-patterns", "stagewise-influence"]  # test_experiment_smokes_2.py
COVERED_ELSEWHERE = {
    "saxe-modes": "test_cli.py (smoke run folder and verify.json)",
    "lambda-balanced": "test_lambda_balanced_experiment.py",
    "diagonal-sparse": "test_diagonal.py",
    "semantic-hierarchy": "test_hierarchy.py",
    "relu-kinks": "test_relu.py",
    "relu-escape-grid": "test_relu_escape_grid.py",
    "relu-plateau-grid": "test_relu_plateau_grid.py",
    "modularisation": "test_modularisation_experiment.py",
    "shaping": "test_shaping.py",
    "directpred": "test_directpred.py",
    "modular-addition-fourier": "test_modular_addition.py",
}


def test_every_experiment_has_a_default_smoke_verify():
    assert sorted(SMOKES_HERE + SMOKES_THERE + list(COVERED_ELSEWHERE)) == experiments.names()


def smoke_rows(name, out_dir):
    exp = experiments.get(name)
    return exp.run(exp.smoke(), out_dir).rows


@pytest.mark.parametrize("name", SMOKES_HERE)
def test_smoke_run_passes_every_row(name, tmp_path):
    rows = smoke_rows(name, tmp_path / "run")
    failed = [r for r in rows if not r["passed"]]
    assert rows and not failed, failed
