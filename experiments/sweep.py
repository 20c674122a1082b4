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


def run(exp, base, axes, out_dir: Path, *, resume=False, n_devices=None, batch_size=64,
        max_loss=1e6, progress=True):
    """Run every group; write the sweep folder; return (cells, outputs, failed)."""
    import jax
    import jax.numpy as jnp

    out_dir = Path(out_dir)
    if not resume:
        if (out_dir / "groups").exists():
            raise FileExistsError(f"{str(out_dir)!r} already holds a sweep; pass --resume to continue it or choose another --out")
        common.ensure_fresh_dir(out_dir)
    elif not (out_dir / "meta.json").exists() and not (out_dir / "groups").exists():
        raise FileNotFoundError(f"{str(out_dir)!r} holds no sweep to resume")
    dynamic, statics = _groups(exp, axes)
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
            n_devices=n_devices, max_loss=max_loss, fingerprint=dataclasses.asdict(cfg), progress=progress,
            write_results=False)
        n = engine.n_cells(cells)
        config_cols = {k: np.full(n, v) for k, v in static.items()}
        tables.append(({**config_cols, **cells}, outputs, failed))
    wall = time.perf_counter() - start
    cells = {k: np.concatenate([t[0][k] for t in tables]) for k in tables[0][0]}
    outputs = {k: np.concatenate([t[1][k] for t in tables]) for k in tables[0][1]}
    failed = np.concatenate([t[2] for t in tables])
    if jax.process_index() == 0:
        write_folder(out_dir, cells, outputs, failed, axes=axes, max_loss=max_loss, n_devices=n_devices,
                     metric=exp.SWEEP_METRIC, title=exp.NAME, meta={
                         "experiment": exp.NAME, "base_config": dataclasses.asdict(base),
                         "dynamic_fields": sorted(dynamic), "static_groups": statics,
                         "wall_time_s": round(wall, 3), "cells_per_s": round(len(failed) / wall, 2)})
    return cells, outputs, failed


def write_folder(out_dir: Path, cells, outputs, failed, *, axes, max_loss, n_devices, metric, title, meta) -> dict:
    """results.npz, meta.json, summary.txt (``dynamics.sweep.write_sweep_folder``) and sweep.png/.pdf."""
    info = engine.write_sweep_folder(out_dir, cells, outputs, failed, max_loss=max_loss, n_devices=n_devices,
                                     grid=axes, meta={"metric": metric, **meta}, metric=metric)
    label, values = engine.metric_values(outputs, metric)
    common.save_figures({"sweep": plot_cells(title, label, axes, cells, values, failed)}, out_dir)
    return info


def summary(exp, cells, outputs, failed, reasons=None) -> str:
    return engine.sweep_summary(cells, outputs, failed, reasons or {}, exp.SWEEP_METRIC)


def plot(exp, axes, cells, outputs, failed):
    """Heatmap of the experiment's metric over two swept axes, or curves over one."""
    label, values = engine.metric_values(outputs, exp.SWEEP_METRIC)
    return plot_cells(exp.NAME, label, axes, cells, values, failed)


def plot_cells(title, metric, axes, cells, values, failed):
    """Heatmap of ``values`` (n,) over the first two swept non-seed axes (median
    over the others), or median and min–max band over one. Failed cells are
    never dropped silently: a heatmap square whose cells all failed is hatched,
    one where some failed says how many, and on curves failed cells are red ×
    at the bottom of the axis."""
    import matplotlib.patches as mpatches

    failed = np.asarray(failed, bool)
    values = np.where(failed, np.nan, np.asarray(values, float))
    keys = [k for k in axes if k != "seed"] or list(axes)
    fig, (ax,) = plotting.figure(1, width=5.0, height=3.8)
    note = f"{int(failed.sum())} of {len(failed)} cells failed" if failed.any() else "no cell failed"
    if len(keys) >= 2:
        a, b = keys[:2]
        xs, ys = sorted(set(cells[a])), sorted(set(cells[b]))
        grid = np.full((len(ys), len(xs)), np.nan)
        marks = []
        for j, y in enumerate(ys):
            for i, x in enumerate(xs):
                sel = (cells[a] == x) & (cells[b] == y)
                if np.any(sel) and np.any(np.isfinite(values[sel])):
                    grid[j, i] = np.nanmedian(values[sel])
                marks.append((i, j, int(failed[sel].sum()), int(sel.sum())))
        im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
        for i, j, n_bad, n_all in marks:
            if n_all and n_bad == n_all:
                ax.add_patch(mpatches.Rectangle((i - 0.5, j - 0.5), 1, 1, fill=False, hatch="xx", edgecolor="red", lw=0))
            elif n_bad:
                ax.text(i, j, f"{n_bad}/{n_all}\nfailed", ha="center", va="center", color="red", fontsize=7)
        ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
        ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
        ax.set(xlabel=a, ylabel=b, title=f"{title}: {metric} (median over other axes)\n{note}; hatched: all failed")
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
        bad_x = np.asarray(cells[a], float)[failed]
        if bad_x.size:
            ax.plot(bad_x, np.zeros_like(bad_x), "x", color="red", ms=8, mew=2, clip_on=False,
                    transform=ax.get_xaxis_transform(), label=f"failed cell ({int(failed.sum())})")
        if np.all(xs > 0) and xs.max() / xs.min() > 20:
            ax.set_xscale("log")
        ax.set(xlabel=a, ylabel=metric, title=f"{title}: {metric}\n{note}")
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


# ------------------------------------------------------ `saddle sweep --cell`

def load_cell(spec: str):
    """``"mypkg.cells:fn"`` → the function; one-line ValueError if it cannot be had.

    The current folder is searched last (as ``python -m`` would search it first),
    so a cells module next to the user's shell works without installing it.
    """
    import importlib
    import os
    import sys

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name.strip() or not attr.strip():
        raise ValueError(f"--cell expects module:function (e.g. mypkg.cells:fn), got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            raise ValueError(f"--cell {spec}: module {module_name!r} not found (install its package, or run from "
                             f"the folder that holds it, or add that folder to PYTHONPATH)") from None
        raise ValueError(f"--cell {spec}: module {module_name!r} failed to import (ModuleNotFoundError: {err})") from None
    except Exception as err:  # the user's module raised while importing
        raise ValueError(f"--cell {spec}: module {module_name!r} failed to import ({type(err).__name__}: {err})") from None
    fn = module
    for part in attr.split("."):
        if not hasattr(fn, part):
            raise ValueError(f"--cell {spec}: module {module_name!r} has no attribute {attr!r}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise ValueError(f"--cell {spec}: {attr!r} is not callable (it is a {type(fn).__name__}); "
                         "--cell needs fn(values) -> dict of arrays")
    return fn


def parse_cell_grid(grid_args: List[str]) -> Dict[str, list]:
    """``["seed=0,1,2", "learning_rate=0.01,0.02"]`` → {field: numbers}: integers
    if every value is one, else finite floats; no repeated value."""
    import math

    axes: Dict[str, list] = {}
    for item in grid_args:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise ValueError(f"--grid expects key=v1,v2,..., got {item!r}")
        if not key.isidentifier():
            raise ValueError(f"--grid key {key!r} is invalid; allowed: a Python identifier (the cell reads values[key])")
        if key in axes:
            raise ValueError(f"--grid {key} given twice")
        texts = [v.strip() for v in text.split(",") if v.strip()]
        try:
            values = [int(v) for v in texts]
        except ValueError:
            try:
                values = [float(v) for v in texts]
            except ValueError:
                raise ValueError(f"--grid {key}={text!r}: values must be numbers") from None
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"--grid {key}={text!r}: values must be finite numbers")
        if len(set(values)) != len(values):
            raise ValueError(f"--grid {key}={text!r} repeats a value; give each value once")
        axes[key] = values
    if not axes:
        raise ValueError("sweep needs at least one --grid key=v1,v2,...")
    return axes


def run_cell(spec: str, axes: Dict[str, list], out_dir: Path, *, resume=False, n_devices=None, batch_size=64,
             max_loss=1e6, progress=True):
    """Sweep the user function ``spec`` = "module:fn" over the product of ``axes``
    into ``out_dir`` (same chunks, resume, failed cells and folder as an
    experiment's sweep); return (cells, outputs, failed)."""
    import jax

    out_dir = Path(out_dir)
    fn = load_cell(spec)
    cells = engine.product_grid(axes)
    engine.check_cell(fn, cells, name=f"--cell {spec}")
    if not resume:
        if (out_dir / "grid.json").exists():
            raise FileExistsError(f"{str(out_dir)!r} already holds a sweep; pass --resume to continue it or choose another --out")
        common.ensure_fresh_dir(out_dir)
    elif not (out_dir / "grid.json").exists():
        raise FileNotFoundError(f"{str(out_dir)!r} holds no --cell sweep to resume (no grid.json)")
    start = time.perf_counter()
    outputs, failed = engine.run_sweep(fn, cells, out_dir=out_dir, resume=resume, batch_size=batch_size,
                                       n_devices=n_devices, max_loss=max_loss, fingerprint={"cell": spec},
                                       progress=progress, write_results=False)
    wall = time.perf_counter() - start
    if jax.process_index() == 0:
        write_folder(out_dir, cells, outputs, failed, axes=axes, max_loss=max_loss, n_devices=n_devices,
                     metric=None, title=spec, meta={"cell": spec, "wall_time_s": round(wall, 3),
                                                    "cells_per_s": round(len(failed) / wall, 2)})
    return cells, outputs, failed
