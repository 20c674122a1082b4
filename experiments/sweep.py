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
        values = [v for v in text.split(",") if v.strip()]
        # parse_overrides maps a deprecated key to its new name (one warning)
        ((key, first),) = common.parse_overrides(exp.Config, [f"{key.strip()}={values[0] if values else ''}"]).items()
        if key in axes:
            raise ValueError(f"--grid {key} given twice")
        typed = [first] + [common.parse_overrides(exp.Config, [f"{key}={v}"])[key] for v in values[1:]]
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
