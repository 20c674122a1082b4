"""``experiments.load(path)``: one loader for run folders and sweep folders.

    res = experiments.load("runs/saxe-modes-...")      # a `saddle run` folder
    res.config, res.meta, res.arrays, res.rows          # Config, meta.json, results.npz, verify.json

    res = experiments.load("runs/sweep-...")            # `saddle sweep` or run_sweep(out_dir=...)
    res.grid                                            # {"learning_rate": [0.01, 0.02], "seed": [0, 1, 2]}
    res.select(learning_rate=0.01).outputs["loss"]      # (3, T): the cells with that value
    res.cells, res.outputs, res.failed                  # grid values, outputs, failed flags per cell

A folder that is not a run says what it lacks; a damaged file is named with
the fix (``dynamics.records``).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from dynamics import records

RUN_FILES = ("meta.json", "results.npz")


@dataclasses.dataclass(frozen=True)
class Results:
    """A loaded run or sweep folder.

    kind: "run" or "sweep". meta: meta.json. arrays: every array of results.npz.
    config: a run's Config (a sweep's base Config for an experiment sweep),
    rebuilt from meta.json, or the plain dict when the experiment is not
    installed; None for a sweep of a bare cell. grid: a sweep's
    {field: values}; None for a run. rows: a run's verify.json rows.
    """

    path: Path
    kind: str
    meta: Dict[str, Any]
    arrays: Dict[str, np.ndarray]
    config: Any = None
    grid: Optional[Dict[str, list]] = None
    rows: Optional[List[dict]] = None

    # ------------------------------------------------------- sweep views
    def _sweep_only(self, what: str) -> None:
        if self.kind != "sweep":
            raise ValueError(f"{what} is for sweep folders; {str(self.path)!r} is a run folder (use .arrays)")

    @property
    def cells(self) -> Dict[str, np.ndarray]:
        """Sweep: {field: (n,) grid value of each cell}."""
        self._sweep_only(".cells")
        return {k[5:]: v for k, v in self.arrays.items() if k.startswith("cell/")}

    @property
    def outputs(self) -> Dict[str, np.ndarray]:
        """Sweep: {output: (n, ...)} each cell's outputs (time axes included, see meta["time_axes"])."""
        self._sweep_only(".outputs")
        return {k[4:]: v for k, v in self.arrays.items() if k.startswith("out/")}

    @property
    def failed(self) -> np.ndarray:
        """Sweep: (n,) bool, True for a failed cell (reasons in meta["failed"] and summary.txt)."""
        self._sweep_only(".failed")
        return self.arrays["failed"]

    def __len__(self) -> int:
        return len(self.failed) if self.kind == "sweep" else 1

    def select(self, **values) -> "Results":
        """The cells whose grid values equal ``values`` (a value or a list of allowed
        values per field), e.g. ``res.select(learning_rate=0.01, seed=[0, 1])``.

        Values match to a relative 1e-6 (a float32 sweep stores 0.01 inexactly).
        ValueError naming the fields, or the values, that exist if none match.
        """
        self._sweep_only(".select()")
        cells = self.cells
        keep = np.ones(len(self), bool)
        for field, wanted in values.items():
            if field not in cells:
                raise ValueError(f"select: {field!r} is not a grid field; fields: {', '.join(cells)}")
            wanted = list(wanted) if isinstance(wanted, (list, tuple, np.ndarray)) else [wanted]
            have = np.asarray(cells[field], float)
            match = np.zeros(len(have), bool)
            for w in wanted:
                hit = np.isclose(have, float(w), rtol=1e-6, atol=0.0) | (have == float(w))
                if not hit.any():
                    allowed = ", ".join(f"{x:g}" for x in (self.grid or {}).get(field, np.unique(have)))
                    raise ValueError(f"select: {field}={w!r} is not in the grid; values: {allowed}")
                match |= hit
            keep &= match
        n = len(self)
        arrays = {k: (v[keep] if np.ndim(v) and np.shape(v)[0] == n else v) for k, v in self.arrays.items()}
        grid = dict(self.grid or {})
        for field in values:
            grid[field] = [x for x in grid.get(field, []) if np.any(np.isclose(arrays[f"cell/{field}"], x, rtol=1e-6))]
        return dataclasses.replace(self, arrays=arrays, grid=grid)


def _config(meta: Mapping, key: str) -> Any:
    saved = meta.get(key)
    name = meta.get("experiment")
    if saved is None or name is None:
        return saved
    import experiments
    from experiments.common import config_from_meta

    try:
        return config_from_meta(experiments.get(name).Config, saved)
    except (ValueError, TypeError):
        return saved  # experiment not installed here, or its Config changed: the raw dict


def _not_a_folder(path: Path) -> str:
    missing = [f for f in RUN_FILES if not (path / f).is_file()]
    if (path / "grid.json").is_file() or (path / "groups").is_dir():
        chunks = len(list(path.glob("chunks/chunk-*.npz"))) + len(list(path.glob("groups/*/chunks/chunk-*.npz")))
        return (f"{str(path)!r} holds an unfinished sweep ({chunks} finished chunk files, no {', '.join(missing)}); "
                f"finish it by running the same sweep with --resume --out {path} (or run_sweep(..., resume=True))")
    return (f"{str(path)!r} is not a run folder or a sweep folder: it lacks {' and '.join(missing)} "
            f"(written by `saddle run`, `saddle sweep` or dynamics.sweep.run_sweep(out_dir=...))")


def load(path: os.PathLike) -> Results:
    """Open a run folder (``saddle run``) or a sweep folder (``saddle sweep``,
    ``dynamics.sweep.run_sweep(out_dir=...)``); a file inside one opens its folder.

    FileNotFoundError if the path or a needed file does not exist (saying which),
    ValueError if a file is damaged (naming it and the fix).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    if path.is_file():
        if path.name not in RUN_FILES + ("verify.json", "summary.txt"):
            raise ValueError(f"{str(path)!r} is a file; pass a run or sweep folder")
        path = path.parent
    if not all((path / f).is_file() for f in RUN_FILES):
        raise FileNotFoundError(_not_a_folder(path))
    meta = records.read_json(path / "meta.json", fix="restore it, or re-run into a new folder")
    if not isinstance(meta, dict):
        raise ValueError(f"{str(path / 'meta.json')!r} is not a JSON object; restore it, or re-run into a new folder")
    is_sweep = meta.get("kind") == "sweep" or "grid" in meta
    fix = ("re-create it by running the same sweep again with --resume (finished chunks are reused)"
           if is_sweep else "re-run the experiment into a new folder")
    arrays = records.load_npz(path / "results.npz", fix=fix)
    if is_sweep:
        if "failed" not in arrays:
            raise ValueError(f"{str(path / 'results.npz')!r} lacks the 'failed' array of a sweep; {fix}")
        grid = meta.get("grid") or {k[5:]: np.unique(v).tolist() for k, v in arrays.items() if k.startswith("cell/")}
        return Results(path, "sweep", meta, arrays, config=_config(meta, "base_config"), grid=grid)
    rows = None
    if (path / "verify.json").is_file():
        rows = records.read_json(path / "verify.json", fix="re-run the experiment, or `saddle verify` to recompute rows")
    return Results(path, "run", meta, arrays, config=_config(meta, "config"), rows=rows)
