"""Plug-in experiments: experiments.register, the saddle.experiments entry point
group, and one-line reports for broken plug-ins while built-ins keep working."""
import textwrap
from importlib.metadata import EntryPoint

import pytest

import experiments
from experiments import cli

# A whole experiment in a few lines: no JAX compile, so a run takes well under a second.
TINY = textwrap.dedent('''
    """tiny: the exact solution u(t) = e^(-t) of du/dt = -u against Euler steps of size h."""
    import dataclasses
    import numpy as np
    from experiments import plotting
    from experiments.common import POSITIVE, check_fields, field, row

    NAME = "{name}"

    @dataclasses.dataclass(frozen=True)
    class Config:
        h: float = field(0.01, POSITIVE, "Euler step")
        rate: float = field(1.0, POSITIVE, "decay rate simulated (the theory assumes 1)")
        seed: int = field(0, None, "unused")

        def __post_init__(self):
            check_fields(self)

    def smoke():
        return Config()

    def simulate(cfg, progress=False):
        n = int(round(1.0 / cfg.h))
        return {{"t": np.arange(n + 1) * cfg.h, "u": (1 - cfg.rate * cfg.h) ** np.arange(n + 1)}}

    def verify(arrays, cfg):
        # Euler's global error at t = 1 is (h/2) e^(-1) + O(h^2): tol = h
        return [row("u(1)", np.exp(-1.0), arrays["u"][-1], tol=cfg.h)]

    def plot(arrays, cfg):
        fig, (ax,) = plotting.figure(1)
        ax.plot(arrays["t"], arrays["u"], **plotting.SIM)
        ax.set(xlabel="time t", ylabel="u")
        return {{"u": fig}}
''')


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on sys.path for plug-in modules; the registry is restored afterwards."""
    saved = (dict(experiments._PLUGINS), dict(experiments._REJECTED), experiments._entry_points_loaded,
             dict(experiments._CLASHES))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    experiments._PLUGINS.clear()
    experiments._PLUGINS.update(saved[0])
    experiments._REJECTED.clear()
    experiments._REJECTED.update(saved[1])
    experiments._entry_points_loaded = saved[2]
    experiments._CLASHES.clear()
    experiments._CLASHES.update(saved[3])
    experiments.get.cache_clear()


def _module(folder, module, text):
    (folder / f"{module}.py").write_text(text)


def test_registered_plugin_lists_runs_verifies_and_plots(plugin_dir, tmp_path, capsys):
    _module(plugin_dir, "tiny_plugin_a", TINY.format(name="tiny-a"))
    experiments.register("tiny-a", "tiny_plugin_a")
    assert "tiny-a" in experiments.names() and "saxe-modes" in experiments.names()
    assert cli.main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "tiny-a" in listed and "saxe-modes" in listed and "Euler" in listed  # docstring as description
    out = tmp_path / "run"
    assert cli.main(["run", "tiny-a", "--out", str(out), "--no-progress"]) == 0
    res = experiments.load(out)
    assert res.kind == "run" and res.meta["experiment"] == "tiny-a" and res.config.h == 0.01
    assert res.meta["git_dirty"] in (True, False, None) and "created" in res.meta  # git status --porcelain
    assert res.rows[0]["passed"] and res.rows[0]["tol_kind"] == "relative"
    (out / "u.png").unlink()
    assert cli.main(["plot", str(out)]) == 0 and (out / "u.png").exists()
    assert cli.main(["verify", "tiny-a", "--json"]) == 0
    # a simulation that is not the theory's model fails its row
    assert cli.main(["run", "tiny-a", "--set", "rate=1.5", "--out", str(tmp_path / "wrong")]) == 1


@pytest.mark.parametrize("case, text, needles", [
    (0, 'NAME = "broken"\n', ["lacks", "Config", "smoke", "simulate", "verify", "plot"]),
    (1, 'raise RuntimeError("boom at import")\n', ["failed to import", "RuntimeError", "boom at import"]),
    (2, "def (:\n", ["failed to import", "SyntaxError"]),
    (3, TINY.format(name="other-name"), ["NAME = 'other-name'", "registered name"]),
    (4, TINY.format(name="broken").replace("def smoke():", "smoke = 3\ndef _smoke():"), ["smoke", "callable"]),
])
def test_broken_plugin_is_one_line_and_builtins_keep_working(plugin_dir, capsys, case, text, needles):
    _module(plugin_dir, f"broken_plugin{case}", text)  # a fresh module name: sys.modules caches imports
    experiments.register("broken", f"broken_plugin{case}")
    with pytest.raises(ValueError) as err:
        experiments.get("broken")
    message = str(err.value)
    assert "broken_plugin" in message and len(message.splitlines()) == 1
    for needle in needles:
        assert needle in message, message
    # list: the built-ins, and one warning line for the plug-in
    assert cli.main(["list"]) == 0
    captured = capsys.readouterr()
    assert "saxe-modes" in captured.out and "broken" not in captured.out
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("saddle: warning:") and "broken_plugin" in warnings[0]
    with pytest.warns(RuntimeWarning, match="broken_plugin"):
        assert "broken" not in experiments.registry() and "saxe-modes" in experiments.registry()
    # using it: one line, exit 2
    assert cli.main(["run", "broken", "--smoke"]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("saddle: error:") and "broken_plugin" in err_lines[0]


def test_missing_plugin_module(plugin_dir, capsys):
    experiments.register("ghost", "no_such_package_xyz.exp")
    assert cli.main(["verify", "ghost"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no_such_package_xyz.exp" in err and "failed to import" in err


@pytest.mark.parametrize("name, module, needle", [
    ("saxe-modes", "mypkg.exp", "built-in"),
    ("Bad Name", "mypkg.exp", "lower-case"),
    ("", "mypkg.exp", "lower-case"),
    ("ok-name", "mypkg/exp.py", "dotted module path"),
    ("ok-name", "mypkg.exp:thing", "dotted module path"),
    ("ok-name", 3, "dotted module path"),
])
def test_register_refuses_bad_arguments(plugin_dir, name, module, needle):
    with pytest.raises(ValueError, match=needle):
        experiments.register(name, module)


def test_entry_points_group_registers_plugins(plugin_dir, monkeypatch, tmp_path, capsys):
    _module(plugin_dir, "tiny_plugin_ep", TINY.format(name="tiny-ep"))
    import importlib.metadata

    group = experiments.ENTRY_POINT_GROUP
    eps = [EntryPoint("tiny-ep", "tiny_plugin_ep", group),
           EntryPoint("saxe-modes", "evil.override", group),      # a built-in name: refused
           EntryPoint("attr-form", "tiny_plugin_ep:NAME", group)]  # must be a module path

    def fake_entry_points(**kw):
        assert kw == {"group": "saddle.experiments"}
        return eps

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    experiments._entry_points_loaded = False
    experiments.get.cache_clear()
    assert experiments.get("tiny-ep").module_path == "tiny_plugin_ep"
    assert experiments.get("saxe-modes").module_path == "experiments.saxe_modes"  # built-in untouched
    assert cli.main(["run", "tiny-ep", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["list"]) == 0
    captured = capsys.readouterr()
    assert "tiny-ep" in captured.out
    assert "saxe-modes" in captured.err and "built-in" in captured.err and "attr-form" in captured.err
    assert cli.main(["run", "attr-form"]) == 2
    assert "module path" in capsys.readouterr().err
