"""`saddle new`: the package it writes runs, verifies and sweeps as generated,
passes its own test, installs with pip, and nothing existing is overwritten."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import experiments
from experiments import cli, scaffold

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


@pytest.fixture
def registry_restored():
    saved = (dict(experiments._PLUGINS), dict(experiments._REJECTED), experiments._entry_points_loaded)
    yield
    experiments._PLUGINS.clear()
    experiments._PLUGINS.update(saved[0])
    experiments._REJECTED.clear()
    experiments._REJECTED.update(saved[1])
    experiments._entry_points_loaded = saved[2]
    experiments.get.cache_clear()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    target = tmp_path_factory.mktemp("new") / "gen-pkg"
    assert cli.main(["new", "gen-exp", "--dir", str(target)]) == 0
    return target


def test_new_writes_the_package(generated):
    files = sorted(str(p.relative_to(generated)) for p in generated.rglob("*") if p.is_file())
    assert files == ["README.md", "gen_exp/__init__.py", "gen_exp/experiment.py", "pyproject.toml",
                     "tests/test_gen_exp.py"]
    pyproject = (generated / "pyproject.toml").read_text()
    assert '[project.entry-points."saddle.experiments"]' in pyproject and 'gen-exp = "gen_exp.experiment"' in pyproject


def test_generated_experiment_verifies_in_process(generated, monkeypatch, capsys, registry_restored):
    monkeypatch.syspath_prepend(str(generated))
    experiments.register("gen-exp", "gen_exp.experiment")
    assert cli.main(["verify", "gen-exp", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 1 and rows[0]["passed"] and rows[0]["experiment"] == "gen-exp"
    assert rows[0]["tol_kind"] == "relative" and rows[0]["rel_err"] < rows[0]["tol"]


def test_generated_test_file_passes(generated):
    """The package's own test, run as its author would (pytest in the package folder)."""
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(ROOT), str(generated)])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "tests"],
                          cwd=generated, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "2 passed" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.parametrize("name, needle", [
    ("saxe-modes", "built-in"),
    ("json", "already importable"),
    ("Bad_Name", "lower-case"),
    ("9lives", "lower-case"),
])
def test_new_refuses_a_bad_name(tmp_path, capsys, name, needle):
    target = tmp_path / "x"
    assert cli.main(["new", name, "--dir", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not target.exists()


def test_new_never_overwrites(tmp_path, capsys):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "pyproject.toml").write_text("mine")
    assert cli.main(["new", "fresh-exp", "--dir", str(target)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert [p.name for p in target.iterdir()] == ["pyproject.toml"] and (target / "pyproject.toml").read_text() == "mine"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(FileExistsError):
        scaffold.new_plugin("fresh-exp", a_file)
    assert a_file.read_text() == "x"


@pytest.mark.slow
def test_pip_install_e_makes_saddle_list_show_it(generated, tmp_path):
    """Installed, the plug-in lists, runs and sweeps. A throw-away venv that sees this environment's packages (a .pth file: a venv
    made from a venv does not inherit them), `pip install -e` of the generated
    package, then the entry point puts it in `saddle list` and `saddle run`."""
    import site
    import sysconfig

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    parent = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    Path(purelib, "parent_env.pth").write_text("\n".join(parent) + "\n")
    pip = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", "-e", str(generated)],
                         capture_output=True, text=True, timeout=600, env=ENV)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-2000:]
    env = {**ENV, "PYTHONPATH": str(ROOT)}
    listed = subprocess.run([str(python), "-m", "experiments.cli", "list"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0 and "gen-exp" in listed.stdout and "saxe-modes" in listed.stdout, listed.stderr
    run = subprocess.run([str(python), "-m", "experiments.cli", "run", "gen-exp", "--smoke", "--no-progress",
                          "--out", str(tmp_path / "run")], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    swept = subprocess.run([str(python), "-m", "experiments.cli", "sweep", "gen-exp", "--smoke", "--no-progress",
                            "--grid", "learning_rate=0.01,0.02", "--grid", "seed=0,1", "--x64",
                            "--out", str(tmp_path / "sweep")], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
    assert swept.returncode == 0, swept.stderr[-2000:]
    res = experiments.load(tmp_path / "sweep")
    assert not res.failed.any() and res.meta["time_axes"] == {"u": "t", "loss": "t"}
    # half-learning time against Eq. 9 within the Euler tolerance ηs of the theory row
    for eta in (0.01, 0.02):
        assert res.select(learning_rate=eta).outputs["half_time_rel_err"].max() < eta * 2.0
    # the environment running this test does not see it: the entry point lives in the venv only
    here = subprocess.run([sys.executable, "-m", "experiments.cli", "list"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert "gen-exp" not in here.stdout
