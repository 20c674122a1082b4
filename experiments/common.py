"""What every experiment shares: config checks, verification rows, run folders.

An experiment module defines ``NAME``, a frozen dataclass ``Config`` (validated
in ``__post_init__`` with ``check_fields``), ``smoke() -> Config``,
``simulate(cfg, progress) -> dict of arrays``, ``verify(arrays, cfg) -> rows``
and ``plot(arrays, cfg) -> {name: Figure}``; ``run_experiment`` wires them and
writes the run folder (docs/design.md, "Data flow of one experiment").
"""
from __future__ import annotations

import dataclasses
import errno
import itertools
import json
import math
import os
import secrets
import shutil
import sys
import time
import typing
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from dynamics import records
from dynamics.rows import Row, bound_row, row  # noqa: F401  (re-exported: experiments use common.row)


# ---------------------------------------------------------------- configs

def check(name: str, value: Any, ok: bool, allowed: str) -> None:
    """Raise ``ValueError("name=value is invalid; allowed: ...")`` unless ok."""
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (bool, str):
        return isinstance(value, annotation)
    if origin is tuple:
        (item, *_rest) = typing.get_args(annotation)
        return isinstance(value, tuple) and len(value) > 0 and all(_type_ok(v, item) for v in value)
    return True


def check_fields(cfg: Any) -> None:
    """Check every field of a frozen dataclass against its annotation, then its
    ``metadata["allowed"] = (predicate, description)`` if any."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if not _type_ok(value, hints[f.name]):
            raise ValueError(f"{f.name}={value!r} is invalid; allowed: {_describe(hints[f.name])}")
        if "allowed" in f.metadata:
            predicate, description = f.metadata["allowed"]
            check(f.name, value, bool(predicate(value)), description)


def field(default: Any, allowed: Optional[tuple] = None, help: str = "") -> Any:
    """A dataclass field with a default, a (predicate, description) check and help text."""
    meta = {"help": help}
    if allowed is not None:
        meta["allowed"] = allowed
    return dataclasses.field(default=default, metadata=meta)


POSITIVE = (lambda v: v > 0, "a number > 0")
POSITIVE_INT = (lambda v: v >= 1, "an integer ≥ 1")
POSITIVE_TUPLE = (lambda v: all(x > 0 for x in v), "comma-separated numbers > 0")


def _describe(annotation: Any) -> str:
    if typing.get_origin(annotation) is tuple:
        return f"comma-separated {_describe(typing.get_args(annotation)[0])}s"
    return {float: "number", int: "integer", bool: "true/false", str: "string"}.get(annotation, str(annotation))


def _parse_scalar(text: str, annotation: Any) -> Any:
    if annotation is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError
    if annotation is int:
        return int(text)
    if annotation is float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError
        return value
    return text


def parse_overrides(config_cls: type, assignments: List[str]) -> Dict[str, Any]:
    """``["key=value", ...]`` → typed values for ``config_cls``; one-line ValueError otherwise."""
    hints = typing.get_type_hints(config_cls)
    names = [f.name for f in dataclasses.fields(config_cls)]
    # Keys renamed to the project's one vocabulary (learning_rate, hidden,
    # horizon in t/τ vs horizon_escapes) keep working for one release.
    renamed = getattr(config_cls, "DEPRECATED_KEYS", {})
    out: Dict[str, Any] = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        if key in renamed and key not in names:
            print(f"saddle: warning: config key {key!r} is deprecated; use {renamed[key]!r}", file=sys.stderr)
            key = renamed[key]
        if key not in names:
            raise ValueError(f"unknown config key {key!r}; allowed: {', '.join(names)}")
        annotation = hints[key]
        try:
            if typing.get_origin(annotation) is tuple:
                item_type = typing.get_args(annotation)[0]
                out[key] = tuple(_parse_scalar(p, item_type) for p in text.split(",") if p.strip())
            else:
                out[key] = _parse_scalar(text, annotation)
        except ValueError:
            raise ValueError(f"{key}={text!r} is not a valid {_describe(annotation)}") from None
    return out


# ---------------------------------------------------------- verification

# row and bound_row live in dynamics.rows (dynamics.plateaus.compare builds them too).


# ------------------------------------------------------------ run folders

class Result(NamedTuple):
    out_dir: Path
    arrays: Dict[str, np.ndarray]
    rows: List[Row]
    meta: Dict[str, Any]


# Provenance lives in dynamics.records (sweep folders need it too, and dynamics
# never imports experiments); these names stay for existing callers.
_versions = records.versions
git_commit = records.git_commit


def ensure_fresh_dir(out_dir: Path) -> None:
    """Refuse an existing non-empty folder: a run never overwrites another."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        what = "is a file" if not out_dir.is_dir() else "exists and is not empty"
        raise FileExistsError(f"output folder {str(out_dir)!r} {what}; choose another --out")


def default_out_dir(name: str, root: os.PathLike = "runs") -> Path:
    """``root/NAME-YYYYMMDD-HHMMSS-xxxxxx``: the time to the second plus a random
    suffix, so runs started in the same second get different folders."""
    return Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


umask = records.umask


def _mkdir_unique(parent: Path, prefix: str) -> Path:
    """A new folder ``parent/prefix<random>``, created with the user's umask
    (tempfile.mkdtemp would make it 0700, unreadable to a group sharing runs/)."""
    while True:
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def _scratch_dir(out_dir: Path) -> Path:
    """Check that ``out_dir`` can be created and make the hidden sibling the run is
    written into; one-line ValueError naming ``out_dir`` otherwise. Runs before
    any compute, so a bad --out costs nothing."""
    ensure_fresh_dir(out_dir)
    ancestor = out_dir.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"cannot create run folder {str(out_dir)!r}: {str(ancestor)!r} is a file, not a folder; choose another --out")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        return _mkdir_unique(out_dir.parent, f".{out_dir.name}.")
    except OSError as err:
        raise ValueError(f"cannot create run folder {str(out_dir)!r}: {err.strerror or err}; choose another --out") from None


def physical_memory() -> Optional[int]:
    """Bytes of RAM on this machine, None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(exp: Any, cfg: Any) -> None:
    """Refuse, before compiling, a config whose ``exp.memory_bytes(cfg)`` (an
    optional lower bound an experiment may define) exceeds this machine's RAM.
    Sizes no estimate foresees end in XLA's allocation error, which the CLI
    turns into one line as well."""
    estimate, total = getattr(exp, "memory_bytes", None), physical_memory()
    if estimate is None or total is None:
        return
    need = int(estimate(cfg))
    if need > total:
        raise ValueError(f"{exp.NAME} with this config needs at least {need / 2**30:.3g} GiB of memory, more than this "
                         f"machine's {total / 2**30:.3g} GiB; reduce its widths or sizes (keys: `saddle list -v`)")


def _publish(tmp: Path, out_dir: Path) -> Path:
    """Rename the finished ``tmp`` to ``out_dir``; if that name was taken while the
    run computed (another run, a file), use ``out_dir-2``, ``-3``, ... and say so."""
    for i in itertools.count(2):
        target = out_dir if i == 2 else out_dir.with_name(f"{out_dir.name}-{i - 1}")
        try:
            os.rename(tmp, target)  # atomic; replaces only an empty folder
        except OSError as err:
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                continue
            raise
        if target != out_dir:
            print(f"saddle: {str(out_dir)!r} appeared while this run computed; the run went to {str(target)!r}",
                  file=sys.stderr)
        return target


FIGURE_FORMATS = ("png", "pdf")


def figure_formats() -> Tuple[str, ...]:
    """Formats each figure is saved in: PNG and PDF, or the comma list in $SADDLE_FIGURE_FORMATS."""
    value = os.environ.get("SADDLE_FIGURE_FORMATS", "")
    chosen = tuple(f.strip().lower() for f in value.split(",") if f.strip()) or FIGURE_FORMATS
    unknown = [f for f in chosen if f not in FIGURE_FORMATS]
    if unknown:
        raise ValueError(f"SADDLE_FIGURE_FORMATS={value!r} names {unknown}; allowed: a comma list of {list(FIGURE_FORMATS)}")
    return chosen


def save_figures(figures: Dict[str, Any], out_dir: Path) -> List[str]:
    """Save each figure as ``name.png`` and ``name.pdf`` (see ``figure_formats``)."""
    import matplotlib.pyplot as plt

    formats = figure_formats()
    names = []
    for name, fig in figures.items():
        for ext in formats:
            fig.savefig(out_dir / f"{name}.{ext}", dpi=130, bbox_inches="tight")
            names.append(f"{name}.{ext}")
        plt.close(fig)
    return names


def worst_point_row(quantity: str, theory: np.ndarray, simulation: np.ndarray, *, tol: float, relative: bool = True) -> Row:
    """Row at the entry where simulation and theory (same shape) differ most."""
    theory, simulation = np.asarray(theory), np.asarray(simulation)
    err = np.abs(simulation - theory)
    if relative:
        err = err / np.abs(theory)
    i = np.unravel_index(np.nanargmax(np.where(np.isfinite(err), err, np.inf)), err.shape)
    return row(quantity, theory[i], simulation[i], tol=tol, relative=relative)


def run_experiment(exp: Any, cfg: Any, out_dir: os.PathLike, *, progress: bool = False) -> Result:
    """simulate → verify → plot → write results.npz, meta.json, verify.json, figures.

    ``out_dir`` is checked (creatable, empty) before any compute. Everything is
    written into a hidden sibling folder that is renamed to ``out_dir`` at the
    end, so an interrupted run leaves no half-written folder; if ``out_dir``
    appeared meanwhile, the run goes to ``out_dir-2`` (printed; ``Result.out_dir``
    says where). Folders and files get the user's umask, like any other file.
    """
    import jax

    out_dir = Path(out_dir)
    check_memory(exp, cfg)
    tmp = _scratch_dir(out_dir)
    try:
        start = time.perf_counter()
        arrays = {k: np.asarray(v) for k, v in exp.simulate(cfg, progress=progress).items()}
        wall = time.perf_counter() - start
        rows = [{"experiment": exp.NAME, **r} for r in exp.verify(arrays, cfg)]
        meta = {
            "experiment": exp.NAME,
            "config": dataclasses.asdict(cfg),
            "versions": _versions(),
            "git_commit": git_commit(),
            "git_dirty": records.git_dirty(),
            "seed": getattr(cfg, "seed", None),
            "wall_time_s": round(wall, 3),
            "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
            "x64": bool(jax.config.jax_enable_x64),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        np.savez(tmp / "results.npz", **arrays)
        meta["figures"] = save_figures(exp.plot(arrays, cfg), tmp)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        (tmp / "verify.json").write_text(json.dumps(rows, indent=2))
        out_dir = _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Result(out_dir, arrays, rows, meta)


def load_run(run_dir: os.PathLike) -> tuple:
    """(meta, arrays) of a run folder written by ``run_experiment`` (see
    ``experiments.load`` for run and sweep folders alike)."""
    from experiments.results import load

    res = load(run_dir)
    if res.kind != "run":
        raise ValueError(f"{str(run_dir)!r} is a sweep folder, not a run folder; open it with experiments.load")
    return res.meta, res.arrays


def config_from_meta(config_cls: type, saved: Dict[str, Any]) -> Any:
    """Rebuild a Config from meta.json (lists back to tuples)."""
    renamed = getattr(config_cls, "DEPRECATED_KEYS", {})  # run folders written before a key was renamed
    return config_cls(**{renamed.get(k, k): tuple(v) if isinstance(v, list) else v for k, v in saved.items()})
