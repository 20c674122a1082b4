"""Every experiment is sweepable on every one of its SWEEP_FIELDS alone (issue 16, item 5).

Each case runs `experiments.sweep.run` on a one-axis grid of two values of one
field, from the experiment's smoke config made smaller where its cell would
otherwise take more than a few seconds, and checks that both cells finish
(finite outputs, not failed) and that the field reaches the cell (the two
cells' outputs differ).
"""
import dataclasses

import numpy as np
import pytest

import experiments
from experiments import sweep

# Smaller than smoke() where a cell would take more than a few seconds.
SMALL = {
    "activation-geometry": dict(n_steps=2000, n_points=10, hidden=32),
    "attention-heads": dict(n_heads=3, n_points=60),
    "directpred": dict(n_times=20, horizon=50.0),
    "conv-kernels": dict(n_1d=4, channels=2, kernels_1d=2, s=(4.0, 2.0), n_points=50),
    "diagonal-sparse": dict(alphas=(1e-3, 1e-5), n_record=200, rtol=1e-6),
    "linear-attention-plateaus": dict(n_heads=3, n_points=60),
    "lambda-balanced": dict(n_times=20),
    "rich-lazy": dict(n_times=20),
    "saddle-to-saddle": dict(n_points=60),
    "relu-plateau-grid": dict(n_kinks=(2,), n_steps=(3000,), n_points=60, hidden=16, n_angles=2001),  # K ≥ 2: ratio matters
    "semantic-hierarchy": dict(n_features=100, horizon=2.0),
    "shaping": dict(n=200, Ts=(1,), n_records=4, alpha_factor=0.5),
    "modular-addition-fourier": dict(p=11, hidden=8, n_steps=400, n_points=20),
}


# Attention cells integrate the exact population loss of H heads: ~3 min per case
# with 2 cores under a load of ~25 (about 10× the other cells), so all their cases are slow.
SLOW = {"attention-heads", "linear-attention-plateaus"}


def _cases():
    """Every (experiment, sweep field). The learning-rate axis of each experiment that
    has one runs by default (a one-axis grid on a field the loop carry does not see is
    what used to fail); every other case is marked slow (~5-20 s each), to keep the
    default run near 10 minutes on 2 cores."""
    out = []
    for name in experiments.names():
        fields = getattr(experiments.get(name).module, "SWEEP_FIELDS", ())
        default = "learning_rate" if "learning_rate" in fields else None
        for f in fields:
            marks = () if f == default and name not in SLOW else (pytest.mark.slow,)
            out.append(pytest.param(name, f, id=f"{name}-{f}", marks=marks))
    return out


def _two_values(base, field):
    v = getattr(base, field)
    if field == "seed":
        return [v, v + 1]
    for factor in (1.25, 0.8):
        other = type(v)(v * factor)
        try:
            dataclasses.replace(base, **{field: other})
            return [v, other]
        except ValueError:
            continue
    raise AssertionError(f"no valid second value for {field}={v!r}")


def test_every_experiment_is_sweepable_or_says_why():
    for name in experiments.names():
        module = experiments.get(name).module
        has_cell = hasattr(module, "cell")
        assert has_cell != hasattr(module, "SWEEP_UNSUPPORTED"), name
        if has_cell:
            fields = {f.name for f in dataclasses.fields(module.Config)}
            assert module.SWEEP_FIELDS and set(module.SWEEP_FIELDS) <= fields, name
            assert isinstance(module.SWEEP_METRIC, str), name


@pytest.mark.parametrize("name, field", _cases())
def test_one_axis_sweep_of_every_field(name, field, tmp_path):
    exp = experiments.get(name)
    base = dataclasses.replace(exp.smoke(), **SMALL.get(name, {}))
    values = _two_values(base, field)
    cells, outputs, failed = sweep.run(exp.module, base, {field: values}, tmp_path / "s", progress=False)
    assert cells[field].tolist() == values
    assert not failed.any(), {k: v for k, v in outputs.items()}
    assert exp.module.SWEEP_METRIC in outputs and "loss" in outputs
    assert any(not np.array_equal(v[0], v[1]) for v in outputs.values()), "the swept field changed nothing"


def test_an_unsweepable_experiment_is_refused_in_one_line_with_its_reason(capsys, tmp_path):
    from experiments import cli

    code = cli.main(["sweep", "relu-kinks", "--grid", "seed=0,1", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "cannot be swept: " in err and "narrow-net" in err
    assert not (tmp_path / "s").exists()
