"""Run and sweep folders: unique default names, no finished run ever lost, the
user's umask honoured, and progress bars that show the work as it happens."""
import dataclasses
import os
import re
import stat
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynamics
from dynamics import sweep as engine
from experiments import common


@dataclasses.dataclass(frozen=True)
class _Config:
    seed: int = 0


class _Exp:
    """A minimal experiment whose simulate can meddle with the file system."""

    NAME = "tiny"

    def __init__(self, during=None):
        self.during = during

    def simulate(self, cfg, progress=False):
        if self.during:
            self.during()
        return {"x": np.arange(3.0)}

    def verify(self, arrays, cfg):
        return [common.row("x sum", 3.0, float(arrays["x"].sum()), tol=0.0)]

    def plot(self, arrays, cfg):
        return {}


# ------------------------------------------------------------ unique names

def test_default_names_are_unique_within_one_second(tmp_path):
    names = {common.default_out_dir("saxe-modes", root=tmp_path) for _ in range(50)}
    assert len(names) == 50
    for path in names:
        assert path.parent == tmp_path
        assert re.fullmatch(r"saxe-modes-\d{8}-\d{6}-[0-9a-f]{6}", path.name), path.name


@pytest.mark.parametrize("argv, prefix", [
    (["run", "saxe-modes", "--smoke", "--no-progress"], "saxe-modes"),
])
def test_cli_default_run_folder_is_unique(tmp_path, monkeypatch, capsys, argv, prefix):
    """`saddle run` without --out goes to runs/NAME-TIME-SUFFIX (checked before compute)."""
    from experiments import cli

    seen = []

    def refuse(out_dir):
        seen.append(Path(out_dir))
        raise ValueError("stop here")

    monkeypatch.setattr(common, "_scratch_dir", refuse)
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    assert seen and seen[0].parent == Path("runs")
    assert re.fullmatch(prefix + r"-\d{8}-\d{6}-[0-9a-f]{6}", seen[0].name), seen[0].name


def test_cli_default_sweep_folder_is_unique(tmp_path, monkeypatch):
    from experiments import cli
    from experiments import sweep as sweeps

    seen = []

    def refuse(exp, base, axes, out, **kwargs):
        seen.append(Path(out))
        raise ValueError("stop here")

    monkeypatch.setattr(sweeps, "run", refuse)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sweep", "saxe-modes", "--smoke", "--grid", "seed=0,1", "--no-progress"]) == 2
    assert seen and seen[0].parent == Path("runs")
    assert re.fullmatch(r"sweep-saxe-modes-\d{8}-\d{6}-[0-9a-f]{6}", seen[0].name), seen[0].name


@pytest.mark.parametrize("intruder", ["folder", "file"])
def test_a_target_that_appears_meanwhile_does_not_lose_the_run(tmp_path, capsys, intruder):
    target = tmp_path / "runs" / "tiny-1"

    def appear():  # another process takes the name while we compute
        if intruder == "folder":
            target.mkdir(parents=True)
            (target / "theirs.txt").write_text("theirs")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("theirs")

    result = common.run_experiment(_Exp(appear), _Config(), target)
    assert result.out_dir != target and result.out_dir.parent == target.parent
    assert (result.out_dir / "results.npz").is_file() and (result.out_dir / "meta.json").is_file()
    np.testing.assert_array_equal(np.load(result.out_dir / "results.npz")["x"], np.arange(3.0))
    theirs = target / "theirs.txt" if intruder == "folder" else target
    assert theirs.read_text() == "theirs"
    err = capsys.readouterr().err
    assert str(target) in err and str(result.out_dir) in err  # says where the run went
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_an_empty_target_is_filled(tmp_path):
    target = tmp_path / "empty"
    target.mkdir()
    assert common.run_experiment(_Exp(), _Config(), target).out_dir == target
    assert (target / "results.npz").is_file()


# ------------------------------------------------------------------- umask

@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_folder_honours_umask(tmp_path, umask):
    result = common.run_experiment(_Exp(), _Config(), tmp_path / "run")
    assert _mode(result.out_dir) == 0o777 & ~umask
    files = [p for p in result.out_dir.iterdir() if p.is_file()]
    assert files
    for path in files:
        assert _mode(path) == 0o666 & ~umask, path.name


def test_sweep_chunks_honour_umask(tmp_path, umask):
    cell = lambda v: {"loss": v["a"] ** 2}
    engine.run_sweep(cell, engine.product_grid({"a": [1.0, 2.0]}), out_dir=tmp_path / "sweep")
    written = [p for p in (tmp_path / "sweep").rglob("*")]
    assert any(p.name.startswith("chunk-") for p in written)
    for path in written:
        assert _mode(path) == (0o777 if path.is_dir() else 0o666) & ~umask, path


# ---------------------------------------------------------------- progress

class _RecordingBar:
    """Stands in for tqdm: records each update and how many segments had run by then."""

    instances = []

    def __init__(self, *args, total=None, leave=True, **kwargs):
        self.total, self.leave, self.updates = total, leave, []
        _RecordingBar.instances.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        self.updates.append((int(n), len(_RecordingBar.executed)))

    executed = []


def test_gd_bar_counts_steps_that_have_run(monkeypatch):
    """Each bar update comes after its segment ran (not at dispatch), and the bar stays."""
    import time

    import dynamics.gd

    _RecordingBar.instances, _RecordingBar.executed = [], []
    monkeypatch.setattr(dynamics.gd, "tqdm", _RecordingBar)

    def slow(_):
        time.sleep(0.02)  # a segment that takes a while, as a real one does
        _RecordingBar.executed.append(1)

    def observe(w):
        jax.debug.callback(slow, w)
        return {}

    loss = lambda w, d: 0.5 * jnp.sum((w - d) ** 2)
    dynamics.descend(loss, jnp.zeros(2), optax.sgd(0.1), jnp.ones(2), record_steps=np.arange(0, 41, 2),
                     observe=observe, progress=True)
    (bar,) = _RecordingBar.instances
    assert bar.total == 40 and sum(n for n, _ in bar.updates) == 40
    for i, (_, ran) in enumerate(bar.updates):
        assert ran >= i + 1, bar.updates  # segment i had run when the bar counted it
    assert bar.leave is not False  # the finished bar stays on screen (unless nested in a stage bar)


def test_saxe_modes_run_shows_a_finished_gd_bar(tmp_path, capsys):
    """`saddle run saxe-modes` leaves 'gradient descent ... N/N' on the terminal."""
    from experiments import cli

    assert cli.main(["run", "saxe-modes", "--smoke", "--set", "flow_depths=2", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    n = int(round(15.0 / 0.01))
    last = [seg for seg in re.split(r"[\r\n]", err) if "gradient descent" in seg][-1]
    assert f"{n}/{n}" in last, last
