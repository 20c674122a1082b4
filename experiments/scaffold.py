"""`saddle new NAME [--dir DIR]`: a plug-in experiment package to start from.

The package it writes works as generated: ``pip install -e DIR`` registers the
experiment through the ``saddle.experiments`` entry point, ``saddle run NAME
--smoke`` and ``saddle verify NAME`` pass, and ``pytest DIR`` runs its test.
The experiment reproduces one mode of a two-layer linear network against the
Saxe closed form (``theory.linear.mode_strength``/``mode_time``, arXiv
1312.6120, Eqs. 8-9) with one theory row, and is sweepable (``cell``).
Nothing that exists is overwritten: the folder must be new or empty, and every
file is created exclusively.
"""
from __future__ import annotations

import importlib.util
import keyword
import os
from pathlib import Path
from typing import List

_PYPROJECT = '''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.1.0"
description = "A saddle plug-in experiment: {name}"
requires-python = ">=3.10"
dependencies = ["saddle"]

# This entry point is what makes `saddle list/run/verify/plot/sweep` see the experiment.
[project.entry-points."saddle.experiments"]
{name} = "{package}.experiment"

[tool.setuptools]
packages = ["{package}"]
'''

_INIT = '''\
"""The {name} plug-in experiment for saddle (see experiment.py)."""
'''

_EXPERIMENT = '''\
"""{name}: one mode of a two-layer linear network against the Saxe closed form.

Written by `saddle new {name}`; edit freely. A teacher with one singular value
s is learned by a two-layer linear network from a small aligned, balanced
init. The mode strength u(t) = uᵀ W₂W₁ v follows the logistic
u(t) = s / (1 − e^(−2st/τ) + (s/u0) e^(−2st/τ)) and is half learned at
t½ = (τ/2s) ln(s/u0 − 1) (Saxe, McClelland & Ganguli 2014, arXiv 1312.6120,
Eqs. 8-9), with τ = 1/η for GD at rate η (step k sits at t = k).

    saddle run {name} --smoke        # a few seconds
    saddle verify {name}
    saddle sweep {name} --smoke --grid learning_rate=0.005,0.01,0.02 --grid seed=0,1
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dynamics
import tasks
from experiments import plotting
from experiments.common import POSITIVE, POSITIVE_INT, check, check_fields, field, row
from models import linear
from theory.linear import mode_strength, mode_time

NAME = "{name}"
DESCRIPTION = "one two-layer linear mode vs the Saxe closed form (a `saddle new` plug-in)"


@dataclasses.dataclass(frozen=True)
class Config:
    s: float = field(2.0, POSITIVE, "singular value of the teacher's one mode")
    n_in: int = field(4, POSITIVE_INT, "input dimension")
    n_out: int = field(4, POSITIVE_INT, "output dimension")
    hidden: int = field(4, POSITIVE_INT, "hidden width")
    n_samples: int = field(16, POSITIVE_INT, "P, samples (inputs whitened so Σxx = I)")
    u0: float = field(1e-3, POSITIVE, "initial mode strength")
    learning_rate: float = field(0.01, POSITIVE, "GD rate η (τ = 1/η)")
    horizon: float = field(6.0, POSITIVE, "simulated time in units of τ")
    n_records: int = field(200, POSITIVE_INT, "recordings over the horizon")
    seed: int = field(0, None, "PRNG seed (task basis, hidden rotation)")

    def __post_init__(self):
        check_fields(self)
        check("u0", self.u0, self.u0 < self.s / 2, f"0 < u0 < s/2 = {{self.s / 2:g}}")
        check("n_samples", self.n_samples, self.n_samples >= self.n_in, f"≥ n_in = {{self.n_in}}")
        check("horizon", self.horizon, self.horizon / self.learning_rate >= self.n_records,
              f"≥ n_records × learning_rate = {{self.n_records * self.learning_rate:g}} (one step per record)")


def smoke() -> Config:
    return Config(horizon=4.0)


def _descend(cfg: Config, values: dict, steps, progress: bool = False):
    """GD from the aligned init; values holds seed, u0, learning_rate (traceable)."""
    key_task, key_init = jax.random.split(jax.random.key(values["seed"]))
    task = tasks.teacher(key_task, n_in=cfg.n_in, n_out=cfg.n_out, s=(cfg.s,), n_samples=cfg.n_samples)
    params = linear.init_aligned(key_init, (cfg.n_in, cfg.hidden, cfg.n_out), u=task.u, v=task.v, u0=values["u0"])
    observe = lambda p: {{"u": linear.mode_strengths(p, task.u, task.v)[0]}}
    gd = dynamics.descend(dynamics.model_loss(linear.apply), params, optax.sgd(values["learning_rate"]),
                          (task.x, task.y), record_steps=steps, observe=observe, progress=progress)
    return gd.t * values["learning_rate"], gd.stats["u"], gd.loss  # t in units of τ


def simulate(cfg: Config, progress: bool = False) -> dict:
    n_steps = int(round(cfg.horizon / cfg.learning_rate))
    steps = np.unique(np.round(np.linspace(0, n_steps, cfg.n_records + 1)).astype(np.int64))
    values = {{"seed": cfg.seed, "u0": cfg.u0, "learning_rate": cfg.learning_rate}}
    t, u, loss = _descend(cfg, values, steps, progress)
    return {{"t": np.asarray(t), "u": np.asarray(u), "loss": np.asarray(loss)}}


def verify(arrays: dict, cfg: Config) -> list:
    """Half-learning time of GD vs Eq. 9 at τ = 1/η. Euler's growth factor
    1 + ηs per step against e^(ηs) shifts it by a relative ≈ ηs/2, so tol = ηs."""
    theory = float(mode_time(cfg.u0, cfg.s / 2, s=cfg.s))
    simulated = float(np.interp(cfg.s / 2, arrays["u"], arrays["t"]))  # u increases with t
    return [row(f"GD half-learning time t/tau, s={{cfg.s:g}}", theory, simulated, tol=cfg.learning_rate * cfg.s)]


def plot(arrays: dict, cfg: Config) -> dict:
    fig, (ax,) = plotting.figure(1)
    t = arrays["t"]
    ax.plot(t, arrays["u"], color="C0", label=f"GD, η={{cfg.learning_rate:g}}", **plotting.SIM)
    ax.plot(t, np.asarray(mode_strength(t, s=cfg.s, u0=cfg.u0)), label="theory (Saxe Eq. 8)", **plotting.THEORY)
    ax.set(xlabel=plotting.TIME_LABEL, ylabel="mode strength u", title=f"{name}: s={{cfg.s:g}}, u0={{cfg.u0:g}}")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return {{"mode": fig}}


# `saddle sweep {name} --grid learning_rate=0.01,0.02 --grid seed=0,1`: these
# fields are traced, so the whole grid runs as one compiled program.
SWEEP_FIELDS = ("u0", "learning_rate", "seed")
SWEEP_METRIC = "half_time_rel_err"


def cell(cfg: Config, values: dict) -> dict:
    """One GD run with seed, u0 and learning_rate possibly traced; ``t`` is the
    time axis (units of τ) of the curves ``u`` and ``loss``."""
    times = jnp.linspace(0.0, cfg.horizon, cfg.n_records + 1)
    steps = jnp.round(times / values["learning_rate"]).astype(jnp.int32)
    t, u, loss = _descend(cfg, values, steps)
    half = jnp.interp(cfg.s / 2, u, t)
    theory = mode_time(values["u0"], cfg.s / 2, s=cfg.s)
    return {{"t": t, "u": u, "loss": loss, "half_time": half, "half_time_rel_err": jnp.abs(half - theory) / theory}}
'''

_TEST = '''\
"""{name}: the smoke run passes its theory row, and the row can fail."""
import jax

jax.config.update("jax_enable_x64", True)  # theory vs simulation in float64, as `saddle verify` does

import pytest  # noqa: E402

import experiments  # noqa: E402
from experiments import cli  # noqa: E402
from {package} import experiment  # noqa: E402

# Installed (pip install -e .), the entry point registers the experiment; registering it
# here as well lets the test run from a plain checkout (PYTHONPATH=.).
experiments.register(experiment.NAME, "{package}.experiment")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    assert cli.main(["run", experiment.NAME, "--smoke", "--out", str(out), "--no-progress"]) == 0
    return experiments.load(out)


def test_smoke_run_passes_verify(smoke_run):
    assert smoke_run.rows and all(r["passed"] for r in smoke_run.rows)
    assert smoke_run.arrays["u"][-1] > 0.99 * smoke_run.config.s  # the mode is learned by the end


def test_the_theory_row_fails_on_a_wrong_clock(smoke_run):
    arrays = dict(smoke_run.arrays, t=smoke_run.arrays["t"] * 1.2)  # 20% off, far outside tol = ηs = 2%
    assert not any(r["passed"] for r in experiment.verify(arrays, smoke_run.config))
'''

_README = '''\
# {name}

A plug-in experiment for saddle, written by `saddle new {name}`.

```bash
pip install -e .                 # registers the experiment (entry point group saddle.experiments)
saddle list                      # shows {name}
saddle run {name} --smoke
saddle verify {name}
pytest tests
```

Without installing: `experiments.register("{name}", "{package}.experiment")` in Python.
'''


def _check_name(name: str, target: Path) -> str:
    """The package name for ``name``; one-line ValueError if ``name`` cannot be one."""
    import experiments

    try:
        experiments._check_registration(name, "placeholder")
    except ValueError as err:
        raise ValueError(str(err).replace("experiment name", "saddle new: name")) from None
    package = name.replace("-", "_")
    if not package.isidentifier() or keyword.iskeyword(package):
        raise ValueError(f"saddle new: name {name!r} does not make a Python package name ({package!r})")
    if name in experiments.names():
        raise ValueError(f"saddle new: an experiment named {name!r} is already registered; choose another name")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        raise ValueError(f"saddle new: a module named {package!r} is already importable ({spec.origin}); "
                         f"choose another name so the plug-in does not shadow it")
    return package


def new_plugin(name: str, target: os.PathLike) -> List[Path]:
    """Write the plug-in package for experiment ``name`` into the folder
    ``target`` (created; must not exist or be empty). Returns the written files."""
    target = Path(target)
    package = _check_name(name, target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"saddle new: {str(target)!r} exists and is not an empty folder; "
                              "choose another --dir (nothing is overwritten)")
    files = {
        "pyproject.toml": _PYPROJECT, "README.md": _README,
        f"{package}/__init__.py": _INIT, f"{package}/experiment.py": _EXPERIMENT,
        f"tests/test_{package}.py": _TEST,
    }
    written = []
    target.mkdir(parents=True, exist_ok=True)
    for rel, template in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as fh:  # "x": never overwrite, even in a race
            fh.write(template.format(name=name, package=package))
        written.append(path)
    return written
