"""One module per figure or claim; ``registry()`` maps names to experiments.

Each experiment has ``Config`` (frozen, validated dataclass), ``smoke()``,
``run(config, out_dir) -> Result`` (writes results.npz, meta.json, verify.json
and PNG+PDF figures), ``plot`` and ``verify``. Nothing imports ``experiments``.

Experiments outside this repository plug in two ways, both by module path (the
module is imported only when the experiment is used):

- an installed package declares the entry point group ``saddle.experiments``
  in its pyproject.toml: ``[project.entry-points."saddle.experiments"]``
  ``my-exp = "mypkg.my_exp"``;
- a notebook or script calls ``experiments.register("my-exp", "mypkg.my_exp")``.

A plug-in module has the shape of ours (``REQUIRED``; optional ``DESCRIPTION``,
``cell``/``SWEEP_FIELDS``/``SWEEP_METRIC`` for ``saddle sweep``). One that
fails to import or lacks an attribute is reported in one line naming the
module and what is missing; the other experiments keep working.

``experiments.load(path)`` opens a run folder or a sweep folder
(``experiments.results``).
"""
from __future__ import annotations

import functools
import importlib
import re
import warnings
from types import SimpleNamespace
from typing import Dict

ENTRY_POINT_GROUP = "saddle.experiments"
REQUIRED = ("NAME", "Config", "smoke", "simulate", "verify", "plot")

# name -> module; a module is imported only when its experiment is used.
_MODULES = {
    "saxe-modes": "experiments.saxe_modes",
    "lambda-balanced": "experiments.lambda_balanced",
    "saddle-to-saddle": "experiments.saddle_to_saddle",
    "relu-kinks": "experiments.relu_kinks",
    "relu-plateau-grid": "experiments.relu_plateau_grid",
    "relu-escape-grid": "experiments.relu_escape_grid",
    "conv-kernels": "experiments.conv_kernels",
    "activation-geometry": "experiments.activation_geometry",
    "semantic-hierarchy": "experiments.semantic_hierarchy",
    "rich-lazy": "experiments.rich_lazy",
    "linear-attention-plateaus": "experiments.linear_attention_plateaus",
    "attention-heads": "experiments.attention_heads",
    "softmax-icl-patterns": "experiments.softmax_icl_patterns",
    "diagonal-sparse": "experiments.diagonal_sparse",
    "llc-calibration": "experiments.llc_calibration",
    "stagewise-influence": "experiments.stagewise_influence",
    "modularisation": "experiments.modularisation",
    "shaping": "experiments.shaping",
    "directpred": "experiments.directpred",
    "modular-addition-fourier": "experiments.modular_addition_fourier",
}
# name -> module path of plug-ins: from entry points (loaded once) and register().
_PLUGINS: Dict[str, str] = {}
# plug-in entries that could not be registered at all: name -> message (bad name or
# value), and entry points that tried to take a built-in's name (never listed as names).
_REJECTED: Dict[str, str] = {}
_CLASHES: Dict[str, str] = {}
_entry_points_loaded = False

_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _check_registration(name, module_path) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"experiment name {name!r} is invalid; allowed: lower-case letters, digits, '-' and '_', "
                         "starting with a letter (it is typed on the command line)")
    if name in _MODULES:
        raise ValueError(f"experiment name {name!r} is taken by a built-in experiment; choose another name")
    if not isinstance(module_path, str) or not _MODULE_RE.match(module_path):
        raise ValueError(f"module path {module_path!r} for experiment {name!r} is invalid; "
                         "allowed: a dotted module path like 'mypkg.my_exp'")


def _load_entry_points() -> None:
    """Read the ``saddle.experiments`` entry points once (register() wins over them)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _PLUGINS:
            continue
        where = f"entry point {ep.name!r} = {ep.value!r} in group {ENTRY_POINT_GROUP!r}"
        if ep.name in _MODULES:
            _CLASHES[f"{ep.name} (entry point)"] = (f"{where} ignored: {ep.name!r} is a built-in experiment; "
                                                    "rename the entry point")
            continue
        if ":" in ep.value:
            _REJECTED[ep.name] = f"{where}: the value must be a module path, not 'module:attribute'"
            continue
        try:
            _check_registration(ep.name, ep.value)
        except ValueError as err:
            _REJECTED[ep.name] = f"{where}: {err}"
            continue
        _PLUGINS[ep.name] = ep.value


def register(name: str, module_path: str) -> None:
    """Make the experiment module ``module_path`` available as ``name`` (in
    ``names()``, ``get``, ``registry()`` and, within this process, the CLI).

    The module is imported (and checked for ``REQUIRED`` attributes) on first
    use, so registering costs nothing. Registering a name again replaces it;
    a built-in name is refused. ValueError for a malformed name or path.
    """
    _check_registration(name, module_path)
    _load_entry_points()
    _PLUGINS[name] = module_path
    _REJECTED.pop(name, None)
    get.cache_clear()


def _module_path(name: str) -> str:
    _load_entry_points()
    if name in _MODULES:
        return _MODULES[name]
    if name in _PLUGINS:
        return _PLUGINS[name]
    if name in _REJECTED:
        raise ValueError(f"plug-in experiment {name!r} is unusable: {_REJECTED[name]}")
    raise ValueError(f"unknown experiment {name!r}; available: {', '.join(names())}")


def _import_experiment(name: str, module_path: str):
    """Import and check a module; one-line ValueError naming it and what is wrong."""
    kind = "experiment" if name in _MODULES else "plug-in experiment"
    importlib.invalidate_caches()  # a module written after start-up (a notebook, a test) is found
    try:
        module = importlib.import_module(module_path)
    except Exception as err:  # any failure inside the user's module: report, don't crash the CLI
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(f"{kind} {name!r}: module {module_path!r} failed to import "
                         f"({type(err).__name__}{': ' + first if first else ''})") from None
    missing = [a for a in REQUIRED if not hasattr(module, a)]
    if missing:
        raise ValueError(f"{kind} {name!r}: module {module_path!r} lacks {', '.join(missing)} "
                         f"(an experiment module defines {', '.join(REQUIRED)})")
    not_callable = [a for a in REQUIRED[1:] if not callable(getattr(module, a))]
    if not_callable:
        raise ValueError(f"{kind} {name!r}: in module {module_path!r}, {', '.join(not_callable)} must be callable")
    if module.NAME != name:
        raise ValueError(f"{kind} {name!r}: module {module_path!r} has NAME = {module.NAME!r}; "
                         f"it must equal the registered name {name!r}")
    return module


def _describe(module) -> str:
    if getattr(module, "DESCRIPTION", None):
        return module.DESCRIPTION
    return ((module.__doc__ or "").strip().splitlines() or [""])[0]


@functools.lru_cache(maxsize=None)
def get(name: str) -> SimpleNamespace:
    """The experiment ``name``; ValueError naming the allowed ones if unknown, or
    naming the module and what is missing if a plug-in cannot be used."""
    module_path = _module_path(name)
    from experiments.common import run_experiment

    module = _import_experiment(name, module_path)
    return SimpleNamespace(
        NAME=module.NAME,
        description=_describe(module),
        doc=module.__doc__,
        Config=module.Config,
        smoke=module.smoke,
        simulate=module.simulate,
        verify=module.verify,
        plot=module.plot,
        run=functools.partial(run_experiment, module),
        module=module,
        module_path=module_path,
        builtin=name in _MODULES,
    )


def names() -> list:
    """Every registered name: built-ins, then plug-ins (usable or not), each sorted."""
    _load_entry_points()
    return sorted(_MODULES) + sorted(set(_PLUGINS) | set(_REJECTED))


def problems() -> Dict[str, str]:
    """name -> one-line reason, for each plug-in that cannot be used (imports them)."""
    out = dict(_CLASHES)
    for name in names():
        try:
            get(name)
        except ValueError as err:
            out[name] = str(err)
    return out


def registry() -> Dict[str, SimpleNamespace]:
    """Mapping name -> experiment for every usable experiment (imports them all).

    A broken plug-in is left out with a warning (see ``problems()``); a broken
    built-in is a bug and raises.
    """
    out = {}
    for name in names():
        try:
            out[name] = get(name)
        except ValueError as err:
            if name in _MODULES:
                raise
            warnings.warn(str(err), RuntimeWarning, stacklevel=2)
    return out


def load(path):
    """Open a run folder or a sweep folder: see ``experiments.results.load``."""
    from experiments.results import load as _load

    return _load(path)
