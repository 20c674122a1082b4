"""`saddle sweep`: a grid over an experiment's config, as compiled programs.

Swept fields listed in the experiment's ``SWEEP_FIELDS`` are traced (one
program for all their values); any other swept field is static and splits the
grid into groups, each compiled once. The sweep folder holds ``grid.json`` and
``chunks/`` per group (streamed as cells finish, so ``--resume`` continues a
killed sweep), then ``results.npz`` (every cell's config and outputs, a
``failed`` flag), ``meta.json``, ``summary.txt`` and ``sweep.png/.pdf``.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from dynamics import sweep as engine
from experiments import common, plotting


def parse_grid(exp, base, grid_args: List[str]) -> Dict[str, list]:
    """``["u0=1e-3,1e-2", "seed=0,1"]`` → {field: [typed values]}, each value validated."""
    axes: Dict[str, list] = {}
    for item in grid_args:
        key, sep, text = item.partition("=")
        if not sep or not text.strip():
            raise ValueError(f"--grid expects key=v1,v2,..., got {item!r}")
        key = key.strip()
        if key in axes:
            raise ValueError(f"--grid {key} given twice")
        values = [v for v in text.split(",") if v.strip()]
        typed = [common.parse_overrides(exp.Config, [f"{key}={v}"])[key] for v in values]
        for v in typed:
            dataclasses.replace(base, **{key: v})  # validates; raises ValueError naming the field
        axes[key] = typed
    if not axes:
        raise ValueError("sweep needs at least one --grid key=v1,v2,...")
    return axes


def _groups(exp, axes: Dict[str, list]):
    dynamic = {k: v for k, v in axes.items() if k in exp.SWEEP_FIELDS}
    static = {k: v for k, v in axes.items() if k not in exp.SWEEP_FIELDS}
    combos = list(itertools.product(*static.values())) or [()]
    return dynamic, [dict(zip(static, c)) for c in combos]


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def _read_json(path: Path):
    """The parsed file, or None if it cannot be read or parsed (then it is not ours to resume)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def check_resumable(exp, base, axes, statics, out_dir: Path) -> None:
    """Refuse ``--resume`` (before any work) unless ``out_dir`` holds a sweep of
    this experiment over this grid: a run folder, a sweep of another experiment
    or grid, or unrelated files are never written into."""
    where = repr(str(out_dir))
    if not (out_dir / "groups").is_dir():
        if (out_dir / "meta.json").is_file() or (out_dir / "results.npz").is_file():
            raise FileExistsError(f"{where} is a run folder or other results, not a sweep; --resume continues only a sweep "
                                  f"of the same experiment and grid: choose another --out")
        raise FileNotFoundError(f"{where} holds no sweep to resume (no groups/ folder); drop --resume to start one")
    meta_file = out_dir / "meta.json"
    if meta_file.is_file():
        meta = _read_json(meta_file)
        if not isinstance(meta, dict) or "grid" not in meta:
            raise FileExistsError(f"{where} has a meta.json that is not a sweep's (a run folder, or damaged); --resume "
                                  f"continues only a sweep of the same experiment and grid: choose another --out")
        if meta.get("experiment") != exp.NAME:
            raise ValueError(f"{where} holds a sweep of {meta.get('experiment')!r}, not {exp.NAME!r}; choose another --out")
        if meta["grid"] != _jsonable(axes) or (meta.get("base_config") and meta["base_config"] != _jsonable(dataclasses.asdict(base))):
            raise ValueError(f"{where} holds a different sweep (grid {meta['grid']} or its config differ); resume with "
                             f"the same --grid/--set/--smoke or choose another --out")
    groups = sorted(p.name for p in (out_dir / "groups").iterdir())
    expected = {f"{g:03d}": dataclasses.replace(base, **static) for g, static in enumerate(statics)}
    for name in groups:
        spec_file = out_dir / "groups" / name / "grid.json"
        spec = _read_json(spec_file) if spec_file.is_file() else {"extra": _jsonable(dataclasses.asdict(expected.get(name, base)))}
        if name not in expected or not isinstance(spec, dict) or spec.get("extra") != _jsonable(dataclasses.asdict(expected[name])):
            raise ValueError(f"{where} holds a different sweep (the config of group {name} differs); resume with the "
                             f"same --grid/--set/--smoke or choose another --out")


def run(exp, base, axes, out_dir: Path, *, resume=False, n_devices=None, batch_size=64,
        max_loss=1e6, progress=True):
    """Run every group; write the sweep folder; return (cells, outputs, failed)."""
    import jax
    import jax.numpy as jnp

    out_dir = Path(out_dir)
    dynamic, statics = _groups(exp, axes)
    if not resume:
        if (out_dir / "groups").exists():
            raise FileExistsError(f"{str(out_dir)!r} already holds a sweep; pass --resume to continue it or choose another --out")
        common.ensure_fresh_dir(out_dir)
    else:
        check_resumable(exp, base, axes, statics, out_dir)
    start = time.perf_counter()
    tables = []
    for g, static in enumerate(statics):
        cfg = dataclasses.replace(base, **static)
        cells = engine.product_grid(dynamic or {"seed": [cfg.seed]})
        fixed = {k: getattr(cfg, k) for k in exp.SWEEP_FIELDS if k not in cells}

        def cell(values, cfg=cfg, fixed=fixed):
            return exp.cell(cfg, {**{k: jnp.asarray(v) for k, v in fixed.items()}, **values})

        outputs, failed = engine.run_sweep(
            cell, cells, out_dir=out_dir / "groups" / f"{g:03d}", resume=resume, batch_size=batch_size,
            n_devices=n_devices, max_loss=max_loss, fingerprint=dataclasses.asdict(cfg), progress=progress)
        n = engine.n_cells(cells)
        config_cols = {k: np.full(n, v) for k, v in static.items()}
        tables.append(({**config_cols, **cells}, outputs, failed))
    wall = time.perf_counter() - start
    cells = {k: np.concatenate([t[0][k] for t in tables]) for k in tables[0][0]}
    outputs = {k: np.concatenate([t[1][k] for t in tables]) for k in tables[0][1]}
    failed = np.concatenate([t[2] for t in tables])
    if jax.process_index() == 0:
        np.savez(out_dir / "results.npz", failed=failed, **{f"cell/{k}": v for k, v in cells.items()},
                 **{f"out/{k}": v for k, v in outputs.items()})
        meta = {
            "experiment": exp.NAME, "base_config": dataclasses.asdict(base), "grid": axes,
            "dynamic_fields": sorted(dynamic), "static_groups": statics, "n_cells": int(len(failed)),
            "n_failed": int(failed.sum()), "wall_time_s": round(wall, 3), "cells_per_s": round(len(failed) / wall, 2),
            "devices": n_devices or len(jax.devices()), "backend": jax.default_backend(),
            "x64": bool(jax.config.jax_enable_x64), "git_commit": common.git_commit(),
        }
        (out_dir / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        (out_dir / "summary.txt").write_text(summary(exp, cells, outputs, failed))
        common.save_figures({"sweep": plot(exp, axes, cells, outputs, failed)}, out_dir)
    return cells, outputs, failed


def summary(exp, cells, outputs, failed) -> str:
    metric = exp.SWEEP_METRIC
    names = list(cells)
    lines = ["  ".join(f"{n:>12}" for n in names) + f"  {metric:>14}  status"]
    for i in range(len(failed)):
        vals = "  ".join(f"{cells[n][i]:>12.4g}" for n in names)
        lines.append(f"{vals}  {float(np.ravel(outputs[metric][i])[0]):>14.4g}  {'FAILED' if failed[i] else 'ok'}")
    lines.append(f"{len(failed)} cells, {int(failed.sum())} failed")
    return "\n".join(lines) + "\n"


def plot(exp, axes, cells, outputs, failed):
    """Heatmap of the metric over two swept axes, or curves over one (seeds as a band)."""
    metric = exp.SWEEP_METRIC
    values = np.where(failed, np.nan, np.asarray(outputs[metric], float).reshape(len(failed), -1)[:, 0])
    keys = [k for k in axes if k != "seed"] or list(axes)
    fig, (ax,) = plotting.figure(1, width=5.0, height=3.8)
    if len(keys) >= 2:
        a, b = keys[:2]
        xs, ys = sorted(set(cells[a])), sorted(set(cells[b]))
        grid = np.full((len(ys), len(xs)), np.nan)
        for j, y in enumerate(ys):
            for i, x in enumerate(xs):
                sel = (cells[a] == x) & (cells[b] == y)
                if np.any(sel) and np.any(np.isfinite(values[sel])):
                    grid[j, i] = np.nanmedian(values[sel])
        im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
        ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
        ax.set(xlabel=a, ylabel=b, title=f"{exp.NAME}: {metric} (median over other axes)")
        fig.colorbar(im, ax=ax, label=metric)
    else:
        a = keys[0]
        xs = np.array(sorted(set(cells[a])), float)
        per_x = [values[cells[a] == x] for x in xs]
        med = np.array([np.nanmedian(v) if np.any(np.isfinite(v)) else np.nan for v in per_x])
        lo = np.array([np.nanmin(v) if np.any(np.isfinite(v)) else np.nan for v in per_x])
        hi = np.array([np.nanmax(v) if np.any(np.isfinite(v)) else np.nan for v in per_x])
        ax.plot(xs, med, marker="o", **plotting.SIM, label="median")
        ax.fill_between(xs, lo, hi, alpha=0.25, label="min–max over other axes")
        if np.all(xs > 0) and xs.max() / xs.min() > 20:
            ax.set_xscale("log")
        ax.set(xlabel=a, ylabel=metric, title=f"{exp.NAME}: {metric}")
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
