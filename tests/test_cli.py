"""The `saddle` command: runs, run folders, and one-line errors that overwrite nothing."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import experiments
from experiments import cli
from experiments.saxe_modes import Config


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "saxe"
    with pytest.MonkeyPatch.context() as patch:  # conftest saves PNG only; the default is PNG and PDF
        patch.delenv("SADDLE_FIGURE_FORMATS", raising=False)
        assert cli.main(["run", "saxe-modes", "--smoke", "--out", str(out), "--no-progress"]) == 0
    return out


def test_bad_figure_formats_are_refused_before_compute(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SADDLE_FIGURE_FORMATS", "png,svg")
    assert cli.main(["run", "saxe-modes", "--smoke", "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "SADDLE_FIGURE_FORMATS" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_run_folder_holds_everything(smoke_run):
    names = {p.name for p in smoke_run.iterdir()}
    assert {"results.npz", "meta.json", "verify.json", "modes.png", "modes.pdf"} <= names
    meta = json.loads((smoke_run / "meta.json").read_text())
    assert meta["experiment"] == "saxe-modes" and meta["seed"] == 0 and meta["x64"] is True
    assert meta["wall_time_s"] > 0 and "jax" in meta["versions"]
    rows = json.loads((smoke_run / "verify.json").read_text())
    assert rows and all(r["passed"] for r in rows)
    assert not [p for p in smoke_run.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_plot_redraws_without_rerunning(smoke_run, capsys):
    before = (smoke_run / "results.npz").read_bytes()
    (smoke_run / "modes.png").unlink()
    assert cli.main(["plot", str(smoke_run)]) == 0
    assert (smoke_run / "modes.png").stat().st_size > 10_000
    assert (smoke_run / "results.npz").read_bytes() == before


def _one_line_error(capsys, argv, *needles):
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("saddle: error:"), err
    for needle in needles:
        assert needle in err, err


def test_unknown_experiment(capsys):
    _one_line_error(capsys, ["run", "no-such-thing"], "no-such-thing", "saxe-modes")
    _one_line_error(capsys, ["verify", "no-such-thing"], "no-such-thing", "available")


def test_unknown_set_key(capsys, tmp_path):
    _one_line_error(capsys, ["run", "saxe-modes", "--set", "bogus=1", "--out", str(tmp_path / "a")], "bogus", "learning_rate")
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("assignment, needle", [
    ("learning_rate=fast", "learning_rate"),
    ("n_in=2.5", "integer"),
    ("s=3,abc", "s="),
    ("u0=-1", "u0"),
    ("hidden=0", "hidden"),
    ("learning_rate", "key=value"),
    ("s=1,2,3", "non-increasing"),
    ("u0=nan", "u0"),
])
def test_malformed_set_values(capsys, tmp_path, assignment, needle):
    _one_line_error(capsys, ["run", "saxe-modes", "--set", assignment, "--out", str(tmp_path / "b")], needle)


def test_existing_nonempty_out_is_not_touched(capsys, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    _one_line_error(capsys, ["run", "saxe-modes", "--smoke", "--out", str(out)], "not empty")
    assert [p.name for p in out.iterdir()] == ["precious.txt"]
    assert (out / "precious.txt").read_text() == "keep me"


def test_plot_of_non_run_folder(capsys, tmp_path):
    _one_line_error(capsys, ["plot", str(tmp_path)], "is not a run folder or a sweep folder")


def test_unknown_command_and_flag(capsys):
    _one_line_error(capsys, ["frobnicate"], "invalid choice")
    _one_line_error(capsys, ["run", "saxe-modes", "--bogus"], "--bogus")


def test_config_validation_names_field():
    with pytest.raises(ValueError, match="learning_rate=-0.1"):
        Config(learning_rate=-0.1)
    with pytest.raises(ValueError, match="n_samples"):
        Config(n_samples=3)


def test_registry_entries_have_the_public_api():
    for name, exp in experiments.registry().items():
        assert exp.NAME == name
        assert isinstance(exp.smoke(), exp.Config)
        assert callable(exp.run) and exp.description


def test_console_script_verify_json():
    """The installed entry point, as a user calls it: JSON lines, all passed, exit 0."""
    exe = Path(sys.executable).with_name("saddle")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "experiments.cli"]
    proc = subprocess.run(cmd + ["verify", "saxe-modes", "--json"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    keys = {"experiment", "quantity", "theory", "simulation", "abs_err", "rel_err", "tol", "tol_kind", "passed"}
    assert rows and all(set(r) == keys and r["passed"] for r in rows)
    assert {r["tol_kind"] for r in rows} <= {"relative", "absolute", "at_least", "at_most"}
    assert all(np.isfinite(r["rel_err"]) for r in rows)


def test_bound_row_is_one_sided():
    from experiments.common import bound_row

    assert bound_row("ratio", 150.0, at_least=100.0)["passed"]
    low = bound_row("ratio", 80.0, at_least=100.0)
    assert not low["passed"] and low["abs_err"] == 20.0 and low["rel_err"] == 0.2
    assert bound_row("count", 1, at_most=2)["passed"] and not bound_row("count", 3, at_most=2)["passed"]
    assert not bound_row("ratio", float("nan"), at_least=1.0)["passed"]
    with pytest.raises(ValueError, match="exactly one"):
        bound_row("x", 1.0)
