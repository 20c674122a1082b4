import experiments
from experiments.common import run_experiment
from experiments import lambda_balanced


def test_smoke_run_passes_and_writes_figures(tmp_path):
    result = run_experiment(lambda_balanced, lambda_balanced.smoke(), tmp_path / "run")
    assert len(result.rows) == 3 and all(r["passed"] for r in result.rows)
    assert (tmp_path / "run" / "lambda_balanced.png").exists()
    assert "lambda-balanced" in experiments.names()
