"""Bad input gets one line naming what was wrong and what is allowed, before any compute.

CLI: ``saddle: error: ...`` on stderr, exit 2, no traceback, nothing existing
overwritten. Python API: ValueError with the same kind of line. Theory
functions check only concrete arguments, so they stay usable under jit/vmap
(the last tests here).
"""
import json
import math
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynamics
from dynamics import sweep as engine
from experiments import cli
from models import linear
from theory import diagonal, linear as lin, rich_lazy

SWEEP = ["sweep", "saxe-modes", "--smoke", "--no-progress"]


def _one_line_error(capsys, argv, *needles):
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("saddle: error:"), err
    for needle in needles:
        assert needle in err, err
    return err


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------- sweep --resume never overwrites

def _fake_run(folder: Path) -> Path:
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps({"experiment": "saxe-modes", "config": {"u0": 1e-3}}))
    np.savez(folder / "results.npz", gd_loss=np.arange(3.0))
    (folder / "verify.json").write_text("[]")
    return folder


def _fake_sweep(folder: Path, experiment="saxe-modes", grid=None) -> Path:
    (folder / "groups" / "000" / "chunks").mkdir(parents=True)
    meta = {"experiment": experiment, "grid": grid or {"seed": [0, 1]}, "base_config": {}}
    (folder / "meta.json").write_text(json.dumps(meta))
    np.savez(folder / "results.npz", failed=np.zeros(2, bool))
    return folder


@pytest.mark.parametrize("make, needles", [
    (lambda p: _fake_run(p), ["run folder", "not a sweep"]),
    (lambda p: _fake_sweep(p, experiment="lambda-balanced"), ["lambda-balanced", "saxe-modes"]),
    (lambda p: _fake_sweep(p, grid={"seed": [0, 1, 2]}), ["different sweep"]),
    (lambda p: _fake_sweep(p, grid={"u0": [1e-3, 1e-2]}), ["different sweep"]),
    (lambda p: (p.mkdir(), (p / "precious.txt").write_text("keep me")), ["no sweep to resume"]),
    (lambda p: p.mkdir(), ["no sweep to resume"]),
    (lambda p: p.write_text("a file"), ["no sweep to resume"]),
    (lambda p: None, ["no sweep to resume"]),
], ids=["run-folder", "other-experiment", "other-grid", "other-axis", "unrelated-files", "empty", "a-file", "missing"])
def test_resume_refuses_anything_but_the_same_sweep(capsys, tmp_path, make, needles):
    out = tmp_path / "target"
    make(out)
    before = _snapshot(out) if out.is_dir() else None
    _one_line_error(capsys, SWEEP + ["--grid", "seed=0,1", "--resume", "--out", str(out)], str(out), *needles)
    if before is not None:
        assert _snapshot(out) == before  # nothing overwritten, nothing added


# ------------------------------------------------------------ sweep arguments

@pytest.mark.parametrize("extra, needles", [
    (["--max-loss", "-1"], ["--max-loss", "> 0"]),
    (["--max-loss", "nan"], ["--max-loss", "> 0"]),
    (["--max-loss", "0"], ["--max-loss", "> 0"]),
    (["--max-loss=-inf"], ["--max-loss", "> 0"]),
    (["--batch-size", "0"], ["--batch-size", "≥ 1"]),
    (["--devices", "0"], ["--devices", "≥ 1"]),
    (["--set", "u0=1e-3", "--grid", "u0=1e-3,1e-2"], ["u0", "--set", "--grid"]),
    (["--set", "seed=3", "--grid", "seed=0,1"], ["seed", "--set", "--grid"]),
    (["--set", "n_in=8", "--grid", "n_in=8,9"], ["n_in", "--set", "--grid"]),
    (["--grid", "seed=0,0"], ["seed", "twice"]),
    (["--grid", "u0=1e-3,0.001"], ["u0", "twice"]),
    (["--grid", "learning_rate=0.01,0.02,0.01"], ["learning_rate", "twice"]),
    (["--grid", "s=3,2"], ["s", "tuple"]),
    (["--grid", "flow_depths=2,3"], ["flow_depths", "tuple"]),
    (["--grid", "seed"], ["key=v1,v2"]),
    (["--grid", "bogus=1,2"], ["bogus"]),
    (["--grid", "u0=-1,1e-3"], ["u0"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_sweep_arguments(capsys, tmp_path, extra, needles):
    out = tmp_path / "sweep"
    grid = [] if "--grid" in extra else ["--grid", "seed=0,1"]
    _one_line_error(capsys, SWEEP + grid + extra + ["--out", str(out)], *needles)
    assert not out.exists()


# --------------------------------------------------------------- run --out

def test_run_out_is_a_file(capsys, tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    _one_line_error(capsys, ["run", "saxe-modes", "--smoke", "--out", str(target)], str(target))
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("below", ["run", "deeper/run"])
def test_run_out_under_a_file(capsys, tmp_path, below):
    blocker = tmp_path / "plain-file"
    blocker.write_text("keep me")
    out = blocker / below
    _one_line_error(capsys, ["run", "saxe-modes", "--smoke", "--out", str(out)], str(out), "not a folder")
    assert blocker.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_run_out_in_a_read_only_place(capsys, tmp_path):
    place = tmp_path / "read-only"
    place.mkdir()
    place.chmod(0o500)
    try:
        out = place / "run"
        _one_line_error(capsys, ["run", "saxe-modes", "--smoke", "--out", str(out)], str(out), "cannot create")
        assert not out.exists()
    finally:
        place.chmod(0o700)


def test_run_out_on_a_read_only_file_system(capsys):
    out = Path("/sys/saddle-run-test/run")
    if not Path("/sys").is_dir():
        pytest.skip("no /sys here")
    _one_line_error(capsys, ["run", "saxe-modes", "--smoke", "--out", str(out)], str(out), "cannot create")


@pytest.mark.parametrize("name, assignment, needle", [
    ("saxe-modes", "record_every=100000", "record_every"),
    ("saxe-modes", "record_every=1501", "record_every"),
    ("semantic-hierarchy", "record_every=1000000", "record_every"),
])
def test_record_every_longer_than_the_run(capsys, tmp_path, name, assignment, needle):
    _one_line_error(capsys, ["run", name, "--smoke", "--set", assignment, "--out", str(tmp_path / "r")], needle)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("assignment", ["hidden=10000000", "hidden=200000"])
def test_width_too_large_for_memory(capsys, tmp_path, assignment):
    _one_line_error(capsys, ["run", "saxe-modes", "--smoke", "--set", assignment, "--out", str(tmp_path / "r")], "memory")
    assert not (tmp_path / "r").exists()
    assert not list(tmp_path.iterdir())  # no temporary folder left behind


def test_allocation_failure_during_a_run_is_one_line(capsys, tmp_path, monkeypatch):
    """A size the estimate does not foresee still ends in one line (XLA's out-of-memory error)."""
    import experiments
    from types import SimpleNamespace

    from experiments import common
    from experiments.saxe_modes import Config

    def simulate(cfg, progress=False):
        return {"x": jnp.zeros((10**7, 10**7)).block_until_ready()}

    module = SimpleNamespace(NAME="huge", simulate=simulate, verify=lambda a, c: [], plot=lambda a, c: {})
    fake = SimpleNamespace(NAME="huge", Config=Config, smoke=Config, module=module,
                           run=lambda cfg, out, progress: common.run_experiment(module, cfg, out, progress=progress))
    monkeypatch.setattr(experiments, "get", lambda name: fake)
    _one_line_error(capsys, ["run", "huge", "--out", str(tmp_path / "r")], "out of memory")
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ models

def _net(sizes=(3, 4, 2)):
    return linear.init_gaussian(jax.random.key(0), sizes, std=0.1)


@pytest.mark.parametrize("x_shape, needle", [
    ((5, 4), "(batch, n_in) = (batch, 3)"),
    ((5,), "(batch, n_in) = (batch, 3)"),
    ((), "(batch, n_in) = (batch, 3)"),
    ((5, 3, 2), "(batch, n_in) = (batch, 3)"),
])
def test_apply_names_the_input_shape(x_shape, needle):
    with pytest.raises(ValueError, match=r"x.shape=") as err:
        linear.apply(_net(), jnp.ones(x_shape))
    assert needle in str(err.value)


def test_apply_refuses_layers_that_do_not_chain():
    params = _net()
    with pytest.raises(ValueError, match="layer 2"):
        linear.apply([params[0], jnp.ones((2, 5))], jnp.ones((5, 3)))


@pytest.mark.parametrize("u_shape, v_shape, needle", [
    ((3, 2), (3, 2), "u.shape=(3, 2)"),   # u needs n_out = 2 rows
    ((2, 2), (4, 2), "v.shape=(4, 2)"),   # v needs n_in = 3 rows
    ((2, 2), (3, 1), "same number of modes"),
    ((2,), (3,), "u.shape=(2,)"),
])
def test_mode_strengths_names_the_expected_shapes(u_shape, v_shape, needle):
    with pytest.raises(ValueError) as err:
        linear.mode_strengths(_net(), jnp.ones(u_shape), jnp.ones(v_shape))
    assert needle in str(err.value) and "(n_out, r) = (2, r)" in str(err.value)


# ------------------------------------------------------------------ theory

@pytest.mark.parametrize("call, needle", [
    (lambda: lin.mode_strength(1.0, s=2.0, u0=-1e-3), "u0=-0.001"),
    (lambda: lin.mode_strength(1.0, s=2.0, u0=0.0), "u0=0"),
    (lambda: lin.mode_strength(1.0, s=0.0, u0=1e-3), "s=0"),
    (lambda: lin.mode_strength(1.0, s=[2.0, -1.0], u0=1e-3), "s=[2.0, -1.0]"),
    (lambda: lin.mode_strength(1.0, s=2.0, u0=1e-3, tau=0.0), "tau=0"),
    (lambda: lin.mode_strength(1.0, s=2.0, u0=1e-3, tau=-1.0), "tau=-1"),
    (lambda: lin.mode_strength(1.0, s=2.0, u0=1e-3, lam_x=0.0), "lam_x=0"),
    (lambda: lin.mode_strength(1.0, s=2.0, u0=float("nan")), "u0=nan"),
    (lambda: lin.mode_time(1e-3, 2.0, s=2.0), "uf=2"),          # at the asymptote s/λ
    (lambda: lin.mode_time(1e-3, 3.0, s=2.0), "uf=3"),          # beyond it
    (lambda: lin.mode_time(-1e-3, 1.0, s=2.0), "u0=-0.001"),
    (lambda: lin.mode_time(1e-3, -1.0, s=2.0), "uf=-1"),
    (lambda: lin.mode_time(1e-3, 1.0, s=2.0, tau=0.0), "tau=0"),
    (lambda: lin.mode_time(1e-3, 1.0, s=-2.0), "s=-2"),
    (lambda: lin.mode_time(1e-3, 1.5, s=2.0, lam_x=2.0), "uf=1.5"),  # asymptote s/λ = 1
    (lambda: lin.deep_mode_strength(1.0, s=2.0, u0=-1e-3, depth=3), "u0=-0.001"),
    (lambda: lin.deep_mode_strength(1.0, s=0.0, u0=1e-3, depth=3), "s=0"),
    (lambda: lin.deep_mode_strength(1.0, s=2.0, u0=1e-3, depth=3, tau=-2.0), "tau=-2"),
    (lambda: lin.deep_mode_time(1e-3, 2.5, s=2.0, depth=3), "uf=2.5"),
    (lambda: lin.deep_mode_time(0.0, 1.0, s=2.0, depth=4), "u0=0"),
    (lambda: lin.deep_mode_time(1e-3, 1.0, s=2.0, depth=3, tau=0.0), "tau=0"),
    (lambda: lin.deep_mode_time(1e-3, 1.0, s=2.0, depth=1), "depth"),
    (lambda: diagonal.orthogonal_trajectory(1.0, beta_star=1.0, alpha=0.0), "alpha=0"),
    (lambda: diagonal.orthogonal_trajectory(1.0, beta_star=1.0, alpha=-0.1), "alpha=-0.1"),
    (lambda: diagonal.orthogonal_time(1.0, beta_star=1.0, alpha=0.1), "beta=1"),
    (lambda: diagonal.orthogonal_time(-2.0, beta_star=1.0, alpha=0.1), "beta=-2"),
    (lambda: diagonal.orthogonal_time(0.5, beta_star=1.0, alpha=0.0), "alpha=0"),
    (lambda: rich_lazy.single_neuron_solution(1.0, a0=0.1, w0=jnp.ones(2), beta_star=jnp.ones(2), tau=0.0), "tau=0"),
    (lambda: rich_lazy.single_neuron_solution(1.0, a0=0.1, w0=jnp.ones(2), beta_star=jnp.zeros(2)), "beta_star"),
    (lambda: rich_lazy.single_neuron_solution(-1.0, a0=0.1, w0=jnp.ones(2), beta_star=jnp.ones(2)), "t=-1"),
    (lambda: rich_lazy.single_neuron_solution(1.0, a0=0.1, w0=jnp.ones(3), beta_star=jnp.ones(2)), "w0"),
])
def test_theory_refuses_arguments_outside_its_domain(call, needle):
    with pytest.raises(ValueError) as err:
        call()
    message = str(err.value)
    assert needle in message and "allowed" in message and len(message.splitlines()) == 1, message


def test_saddle_transition_times_refuse_tau():
    from theory.saddle import transition_times

    with pytest.raises(ValueError, match="tau=0"):
        transition_times([2.0, 1.0], init_scale=1e-3, depth=3, width=8, tau=0.0)


def test_hierarchy_learning_time_refuses_u0_beyond_half_learned():
    from theory.hierarchy import level_learning_times

    with pytest.raises(ValueError, match="u0="):
        level_learning_times(depth=2, flip_prob=0.1, n_features=100, u0=1e6)


def test_theory_checks_stay_out_of_jit_and_vmap():
    """Traced arguments are not checked (no concretisation error), results unchanged."""
    f = jax.jit(lambda u0, tau: lin.mode_strength(jnp.linspace(0.0, 3.0, 4), s=2.0, u0=u0, tau=tau))
    np.testing.assert_allclose(f(1e-3, 1.0), lin.mode_strength(jnp.linspace(0.0, 3.0, 4), s=2.0, u0=1e-3), rtol=1e-12)
    g = jax.vmap(lambda uf: lin.mode_time(1e-3, uf, s=2.0))
    np.testing.assert_allclose(g(jnp.array([0.5, 1.0])), [lin.mode_time(1e-3, 0.5, s=2.0), lin.mode_time(1e-3, 1.0, s=2.0)],
                               rtol=1e-12)
    h = jax.jit(lambda u0: lin.deep_mode_time(u0, 1.0, s=2.0, depth=3))
    assert np.isfinite(h(1e-3))
    k = jax.vmap(lambda a: diagonal.orthogonal_time(0.5, beta_star=1.0, alpha=a))
    assert np.all(np.isfinite(k(jnp.array([0.1, 0.01]))))
    # a traced out-of-domain value is not checked: the closed form's NaN comes back, no error
    assert math.isnan(float(jax.jit(lambda uf: lin.mode_time(1e-3, uf, s=2.0))(3.0)))


# ---------------------------------------------------------------- dynamics

def _descend(steps):
    loss = lambda w, d: 0.5 * jnp.sum((w - d) ** 2)
    return dynamics.descend(loss, jnp.zeros(2), optax.sgd(0.1), jnp.ones(2), record_steps=steps)


@pytest.mark.parametrize("steps", [[0.5, 1.5], [0, 1, 2.5], np.array([1.0, 2.0001]), [0, 3, 2]])
def test_descend_refuses_non_integer_or_unsorted_steps(steps):
    with pytest.raises(ValueError, match="record_steps"):
        _descend(steps)


def test_descend_accepts_integral_float_steps():
    traj = _descend(np.array([0.0, 2.0, 4.0]))
    np.testing.assert_array_equal(traj.t, [0, 2, 4])


@pytest.mark.parametrize("axes, needle", [
    ({"seed": "012"}, "'seed'"),
    ({"u0": b"\x01\x02"}, "'u0'"),
    ({"u0": 0.1}, "'u0'"),
    ({"seed": [0, 1], "u0": "1e-3"}, "'u0'"),
])
def test_product_grid_refuses_strings_and_scalars(axes, needle):
    with pytest.raises(ValueError, match="list") as err:
        engine.product_grid(axes)
    assert needle in str(err.value)
