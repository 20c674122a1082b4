"""One vocabulary of config keys (issue 16, item 8): learning_rate, hidden, horizon
in units of τ vs horizon_escapes; old keys work for one release with a warning."""
import dataclasses

import pytest

import experiments
from experiments import cli, common, sweep

OLD_NAMES = {"eta", "lr", "lin_eta", "widths"}


def test_no_config_uses_an_old_name_and_every_alias_points_at_a_field():
    for name in experiments.names():
        cfg = experiments.get(name).Config
        fields = {f.name for f in dataclasses.fields(cfg)}
        assert not fields & OLD_NAMES, (name, fields & OLD_NAMES)
        for old, new in getattr(cfg, "DEPRECATED_KEYS", {}).items():
            assert old not in fields and new in fields, (name, old, new)


def test_horizon_means_units_of_tau_everywhere():
    # `horizon` is a time in units of τ; a multiple of a predicted escape is `horizon_escapes`.
    for name in experiments.names():
        for f in dataclasses.fields(experiments.get(name).Config):
            text = f.metadata.get("help", "")
            if f.name == "horizon":
                assert "τ" in text, (name, text)
            if f.name == "horizon_escapes":
                assert "multiples of" in text, (name, text)


@pytest.mark.parametrize("name, old, new, text, value", [
    ("relu-kinks", "eta", "learning_rate", "0.1", 0.1),
    ("activation-geometry", "lr", "learning_rate", "0.5", 0.5),
    ("diagonal-sparse", "lin_eta", "lin_learning_rate", "0.01", 0.01),
    ("saddle-to-saddle", "widths", "hidden", "8,16,16", (8, 16, 16)),
    ("attention-heads", "horizon", "horizon_escapes", "3", 3.0),
])
def test_an_old_key_still_works_and_warns_once(capsys, name, old, new, text, value):
    exp = experiments.get(name)
    assert common.parse_overrides(exp.Config, [f"{old}={text}"]) == {new: value}
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"saddle: warning: config key {old!r} is deprecated; use {new!r}"]


def test_an_old_key_works_in_a_sweep_grid(capsys):
    exp = experiments.get("relu-plateau-grid")
    axes = sweep.parse_grid(exp.module, exp.smoke(), ["eta=0.1,0.2"])
    assert axes == {"learning_rate": [0.1, 0.2]}
    assert capsys.readouterr().err.count("deprecated") == 1


def test_an_old_run_folder_config_still_loads():
    exp = experiments.get("relu-kinks")
    saved = {**dataclasses.asdict(exp.smoke()), "eta": 0.1, "horizon": 3.0}
    del saved["learning_rate"], saved["horizon_escapes"]
    cfg = common.config_from_meta(exp.Config, saved)
    assert cfg.learning_rate == 0.1 and cfg.horizon_escapes == 3.0


def test_list_verbose_shows_units_sweep_modes_and_old_names(capsys):
    assert cli.main(["list", "-v"]) == 0
    out = capsys.readouterr().out
    assert "horizon = 15.0  (number) [one program] " not in out  # saxe-modes' horizon is static
    assert "learning_rate = 0.01  (number) [one program] GD rate η (τ = 1/η)" in out
    assert "horizon = 15.0  (number) [splits grid] simulated time in units of τ" in out
    assert "horizon_escapes = 2.0  (number)" in out and "multiples of the predicted last escape" in out
    assert "eta: deprecated name of learning_rate" in out
    assert "sweep: not supported (" in out
