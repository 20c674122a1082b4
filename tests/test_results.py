"""Self-describing results: run_sweep's folder, `saddle sweep --cell`, the one
loader experiments.load, damaged files named with their fix, failed cells with
reasons, and the verify table."""
import json
import textwrap
from pathlib import Path

import jax.numpy as jnp
import matplotlib.patches as mpatches
import numpy as np
import pytest

import experiments
from dynamics import records, sweep
from experiments import cli
from experiments import sweep as exp_sweep

CELLS = textwrap.dedent('''
    import jax.numpy as jnp

    def grow(values):
        """loss(t) = e^(rate t) + seed on t = 0..1: above max_loss 100 from t = ln(100)/rate on."""
        t = jnp.linspace(0.0, 1.0, 11)
        loss = jnp.exp(values["rate"] * t) + values["seed"]
        return {"t": t, "loss": loss, "total": jnp.sum(loss)}

    def nan_late(values):
        t = jnp.linspace(0.0, 1.0, 11)
        return {"t": t, "loss": jnp.where(t >= 0.5 * values["seed"], jnp.nan, 1.0)}

    def not_a_dict(values):
        return values["seed"] * 1.0

    def nested(values):
        return {"a": {"b": values["seed"]}}

    def needs_lr(values):
        return {"x": values["lr"]}

    NOT_CALLABLE = 3
''')


def _grow(values):
    t = jnp.linspace(0.0, 1.0, 11)
    loss = jnp.exp(values["rate"] * t) + values["seed"]
    return {"t": t, "loss": loss, "total": jnp.sum(loss)}


@pytest.fixture(scope="module")
def py_sweep(tmp_path_factory):
    """run_sweep from Python, with failing cells: rate 10 passes loss 100 at t = ln(100)/10 ≈ 0.46."""
    out = tmp_path_factory.mktemp("py") / "sweep"
    cells = sweep.product_grid({"rate": [1.0, 2.0, 10.0], "seed": [0, 1]})
    outputs, failed = sweep.run_sweep(_grow, cells, out_dir=out, batch_size=2, max_loss=100.0)
    return out, cells, outputs, failed


def test_run_sweep_writes_a_loadable_folder(py_sweep):
    out, cells, outputs, failed = py_sweep
    assert {"results.npz", "meta.json", "summary.txt", "grid.json"} <= {p.name for p in out.iterdir()}
    res = experiments.load(out)
    assert res.kind == "sweep" and len(res) == 6 and res.config is None
    assert res.grid == {"rate": [1.0, 2.0, 10.0], "seed": [0, 1]}
    np.testing.assert_array_equal(res.cells["rate"], cells["rate"])
    np.testing.assert_array_equal(res.outputs["loss"], outputs["loss"])
    np.testing.assert_array_equal(res.failed, [False, False, False, False, True, True])
    # every recorded curve keeps its time axis
    assert res.meta["time_axes"] == {"loss": "t"} and res.outputs["t"].shape == (6, 11)
    np.testing.assert_allclose(res.meta["record_times"]["loss"], np.linspace(0, 1, 11), rtol=1e-6)
    # provenance like a run's
    for key in ("versions", "git_commit", "git_dirty", "created", "wall_time_s"):
        assert key in res.meta, key
    assert "jax" in res.meta["versions"] and res.meta["n_failed"] == 2


def test_failed_cells_say_why_and_when(py_sweep):
    out, *_ = py_sweep
    meta = json.loads((out / "meta.json").read_text())
    # rate 10: e^(10 t) + seed > 100 first at the record t = 0.5 (e^5 ≈ 148; e^4 ≈ 55 at t = 0.4)
    reasons = {f["index"]: f["reason"] for f in meta["failed"]}
    assert set(reasons) == {4, 5}
    assert "loss" in reasons[4] and "> max_loss 100" in reasons[4] and "t=0.5 (record 5)" in reasons[4]
    summary = (out / "summary.txt").read_text()
    assert summary.count("FAILED: loss") == 2 and "6 cells, 2 failed" in summary


def test_nan_reason_names_the_first_bad_record():
    cells = {"seed": np.array([0.0, 1.0, 4.0])}
    outputs = {"t": np.tile(np.linspace(0, 1, 11), (3, 1)),
               "loss": np.where(np.linspace(0, 1, 11)[None] >= 0.5 * cells["seed"][:, None], np.nan, 1.0),
               "scalar": np.array([1.0, 1.0, np.inf])}
    failed = sweep.failed_cells(outputs)
    reasons = sweep.failure_reasons(outputs, failed)
    assert failed.tolist() == [True, True, False] or failed.tolist() == [True, True, True]
    assert reasons[0] == "NaN in loss from t=0 (record 0)"
    assert reasons[1] == "NaN in loss from t=0.5 (record 5)"
    assert "scalar is inf" in reasons[2]


def test_select_by_grid_values(py_sweep):
    res = experiments.load(py_sweep[0])
    one = res.select(rate=2.0)
    assert len(one) == 2 and one.grid["rate"] == [2.0]
    np.testing.assert_array_equal(one.cells["seed"], [0, 1])
    both = res.select(rate=[1.0, 10.0], seed=1)
    np.testing.assert_array_equal(both.cells["rate"], [1.0, 10.0])
    assert both.failed.tolist() == [False, True]
    with pytest.raises(ValueError, match="rate=3.0 is not in the grid; values: 1, 2, 10"):
        res.select(rate=3.0)
    with pytest.raises(ValueError, match="'lr' is not a grid field; fields: rate, seed"):
        res.select(lr=0.1)


def test_run_sweep_never_writes_into_a_folder_that_is_not_a_sweep(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.npz").write_bytes(b"precious")
    cells = sweep.product_grid({"rate": [1.0], "seed": [0]})
    for resume in (False, True):
        with pytest.raises(FileExistsError, match="holds no sweep"):
            sweep.run_sweep(_grow, cells, out_dir=run, resume=resume)
    assert (run / "results.npz").read_bytes() == b"precious" and len(list(run.iterdir())) == 1


@pytest.fixture
def cells_module(tmp_path, monkeypatch):
    (tmp_path / "my_cells_mod.py").write_text(CELLS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_cells_mod"


def test_cli_cell_sweep_resumes_loads_and_plots(cells_module, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["sweep", "--cell", f"{cells_module}:grow", "--grid", "seed=0,1,2", "--grid", "rate=1,2,10",
            "--max-loss", "100", "--batch-size", "1", "--no-progress", "--out", str(out)]
    assert cli.main(args) == 0
    assert "FAILED: loss" in capsys.readouterr().out
    res = experiments.load(out)
    assert res.meta["cell"] == f"{cells_module}:grow" and res.grid == {"seed": [0, 1, 2], "rate": [1, 2, 10]}
    assert res.failed.sum() == 3 and res.select(rate=10).failed.all()
    np.testing.assert_allclose(res.select(seed=2, rate=1).outputs["loss"][0], np.exp(np.linspace(0, 1, 11)) + 2, rtol=1e-6)
    # resume: drop a chunk and the results; the resumed sweep recomputes them bit for bit
    before = records.load_npz(out / "results.npz")
    chunks = sorted((out / "chunks").glob("chunk-*.npz"))
    assert len(chunks) >= 2
    chunks[-1].unlink()
    (out / "results.npz").unlink()
    assert cli.main(args) == 2 and "--resume" in capsys.readouterr().err  # no --resume: refused
    assert cli.main(args + ["--resume"]) == 0
    after = records.load_npz(out / "results.npz")
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    # plot on a sweep folder redraws the sweep figure
    (out / "sweep.png").unlink()
    assert cli.main(["plot", str(out)]) == 0 and (out / "sweep.png").stat().st_size > 5_000


@pytest.mark.parametrize("spec, grid, needle", [
    ("no_colon_here", "seed=0,1", "module:function"),
    (":grow", "seed=0,1", "module:function"),
    ("no_such_module_xyz:fn", "seed=0,1", "not found"),
    ("{m}:missing_fn", "seed=0,1", "no attribute 'missing_fn'"),
    ("{m}:NOT_CALLABLE", "seed=0,1", "not callable"),
    ("{m}:not_a_dict", "seed=0,1", "dict of arrays"),
    ("{m}:nested", "seed=0,1", "flat dict"),
    ("{m}:needs_lr", "seed=0,1", "KeyError"),
    ("{m}:grow", "seed=0,0", "repeats a value"),
    ("{m}:grow", "seed=a,b", "numbers"),
    ("{m}:grow", "2x=1,2", "identifier"),
])
def test_bad_cell_is_one_line(cells_module, tmp_path, capsys, spec, grid, needle):
    out = tmp_path / "never"
    code = cli.main(["sweep", "--cell", spec.format(m=cells_module), "--grid", grid, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("saddle: error:") and needle in err, err
    assert not out.exists()


@pytest.mark.parametrize("argv, needle", [
    (["sweep", "saxe-modes", "--cell", "m:f", "--grid", "seed=0"], "not both"),
    (["sweep", "--cell", "m:f", "--set", "u0=1", "--grid", "seed=0"], "--set"),
    (["sweep", "--grid", "seed=0"], "NAME or --cell"),
])
def test_cell_argument_conflicts(capsys, argv, needle):
    assert cli.main(argv) == 2
    assert needle in capsys.readouterr().err


# ------------------------------------------------------------ the loader

def _run_folder(path: Path) -> Path:
    path.mkdir()
    np.savez(path / "results.npz", u=np.arange(3.0))
    (path / "meta.json").write_text(json.dumps({"experiment": "not-installed-exp", "config": {"a": 1}}))
    return path


def test_loader_opens_a_run_of_an_uninstalled_experiment_as_a_dict(tmp_path):
    res = experiments.load(_run_folder(tmp_path / "run") / "meta.json")  # a file inside opens its folder
    assert res.kind == "run" and res.config == {"a": 1} and res.arrays["u"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="sweep folders"):
        res.select(a=1)


def test_loader_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="lacks meta.json and results.npz"):
        experiments.load(tmp_path)
    (tmp_path / "meta.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="lacks results.npz"):
        experiments.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        experiments.load(tmp_path / "nope")


def test_loader_on_an_unfinished_sweep_says_resume(tmp_path):
    (tmp_path / "chunks").mkdir()
    (tmp_path / "grid.json").write_text("{}")
    np.savez(tmp_path / "chunks" / "chunk-000000.npz", x=np.ones(2))
    with pytest.raises(FileNotFoundError, match=r"unfinished sweep \(1 finished chunk.*--resume"):
        experiments.load(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "text", "npy", "empty"])
def test_damaged_results_are_named_with_the_fix(tmp_path, capsys, damage):
    run = _run_folder(tmp_path / "run")
    npz = run / "results.npz"
    data = npz.read_bytes()
    if damage == "truncate":
        npz.write_bytes(data[: len(data) // 2])
    elif damage == "text":
        npz.write_text("not an archive")
    elif damage == "npy":
        np.save(tmp_path / "a.npy", np.ones(3))
        npz.write_bytes((tmp_path / "a.npy").read_bytes())
    else:
        npz.write_bytes(b"")
    with pytest.raises(ValueError, match="results.npz") as err:
        experiments.load(run)
    assert "re-run" in str(err.value) and "allow_pickle" not in str(err.value)
    assert cli.main(["plot", str(run)]) == 2
    line = capsys.readouterr().err.strip()
    assert len(line.splitlines()) == 1 and "results.npz" in line and "BadZipFile" not in line.split(";")[-1]


def test_invalid_meta_json_is_named(tmp_path, capsys):
    run = _run_folder(tmp_path / "run")
    (run / "meta.json").write_text('{"experiment": "saxe-modes",\n  "config": {')
    assert cli.main(["plot", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "meta.json" in err and "not valid JSON (line 2" in err


def test_damaged_chunk_on_resume_names_the_file_and_the_fix(tmp_path):
    out = tmp_path / "s"
    cells = sweep.product_grid({"rate": [1.0, 2.0, 3.0], "seed": [0]})
    sweep.run_sweep(_grow, cells, out_dir=out, batch_size=1)
    chunk = sorted((out / "chunks").glob("chunk-*.npz"))[0]
    chunk.write_bytes(chunk.read_bytes()[:40])
    with pytest.raises(ValueError, match=f"{chunk.name}.*delete {chunk.name} and resume"):
        sweep.run_sweep(_grow, cells, out_dir=out, batch_size=1, resume=True)


def test_git_dirty_reads_porcelain(monkeypatch):
    monkeypatch.setattr(records, "_git", lambda *a: " M experiments/cli.py\n")
    assert records.git_dirty() is True
    monkeypatch.setattr(records, "_git", lambda *a: "")
    assert records.git_dirty() is False
    monkeypatch.setattr(records, "_git", lambda *a: None)
    assert records.git_dirty() is None and records.git_commit() is None


# ------------------------------------------------------- figures, table

def test_sweep_figure_marks_failed_cells():
    cells = {"a": np.repeat([1.0, 2.0], 2), "b": np.tile([10.0, 20.0], 2)}
    failed = np.array([False, False, True, False])
    fig = exp_sweep.plot_cells("t", "m", {"a": [1, 2], "b": [10, 20]}, cells, np.arange(4.0), failed)
    hatched = [p for p in fig.axes[0].patches if isinstance(p, mpatches.Rectangle) and p.get_hatch()]
    assert len(hatched) == 1 and hatched[0].get_xy() == (0.5, -0.5)  # a=2, b=10: the failed square
    assert "1 of 4 cells failed" in fig.axes[0].get_title()
    fig = exp_sweep.plot_cells("t", "m", {"a": [1, 2]}, {"a": np.array([1.0, 1.0, 2.0])}, np.arange(3.0),
                               np.array([False, True, False]))
    marks = [line for line in fig.axes[0].lines if line.get_marker() == "x"]
    assert len(marks) == 1 and marks[0].get_xdata().tolist() == [1.0]


def test_verify_table_wraps_names_at_spaces_and_says_the_tol_kind():
    from experiments.common import bound_row, row

    long = "depth-4 gradient flow conserved quantity (W2'W2 - W1W1')/max|W1W1'| at the worst recorded time"
    rows = [row(long, 1.0, 1.0, tol=1e-9, relative=False), row("short", 2.0, 2.0, tol=0.01),
            bound_row("ratio", 5.0, at_least=2.0)]
    table = cli._format_rows(rows)
    words = set(" ".join(line[3:62] for line in table.splitlines()[1:]).split())
    assert set(long.split()) <= words  # every word whole, on some line
    assert "abs 1e-09" in table and "rel 0.01" in table and "≥ 0" in table
    assert [r["tol_kind"] for r in rows] == ["absolute", "relative", "at_least"]
