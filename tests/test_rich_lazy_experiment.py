import pytest

from experiments import rich_lazy
from experiments.common import run_experiment


def test_config_checks():
    with pytest.raises(ValueError, match="n_train"):
        rich_lazy.Config(n_in=3, n_train=3)  # not a low-rank task
    with pytest.raises(ValueError, match="n_deltas"):
        rich_lazy.Config(n_deltas=4)  # even: the grid would miss δ = 0 (the rich cell)
    with pytest.raises(ValueError, match="scale_range"):
        rich_lazy.Config(scale_range=(1.0, 0.1))
    assert list(rich_lazy.deltas(rich_lazy.smoke())) == pytest.approx([-10.0, -0.1, 0.0, 0.1, 10.0])


@pytest.mark.slow
def test_smoke_run_passes(tmp_path):
    # ~20 s of CPU, mostly compiling two vmapped diffrax flows; tests/test_rich_lazy.py checks the
    # exact solution against the flow by default
    result = run_experiment(rich_lazy, rich_lazy.smoke(), tmp_path / "run")
    assert result.rows and all(r["passed"] for r in result.rows), [r for r in result.rows if not r["passed"]]
    assert {"rich_lazy_white.png", "rich_lazy_phase.png", "rich_lazy_cells.png"} <= set(result.meta["figures"])
