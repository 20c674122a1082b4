"""Sweeps: a grid of configurations run as one compiled program per group.

A *cell* is ``cell(values) -> dict of arrays``, where ``values`` maps each swept
numeric field (seed, init scale, learning rate, λ, ...) to a scalar. Cells run
``jax.vmap``-ed in micro-batches of ``batch_size`` under ``jax.lax.map`` (which
bounds memory), and the cell axis is sharded over a 1-D device mesh with
``jax.shard_map``, so the same code fills one CPU core, every core (one CPU
device per core via ``JAX_NUM_CPU_DEVICES``), several GPUs, or, after
``jax.distributed.initialize()``, every device of several hosts. Each device
always sees micro-batches of the same shape, so results do not depend on the
number of devices. Fields that change shapes (width, depth, steps) are static:
the caller groups the grid by them and compiles once per group.

Chunks of cells stream to disk as they finish (temp file + rename), so a sweep
killed at any instant resumes without losing or corrupting a finished chunk;
a cell whose outputs are not finite, or whose ``loss`` exceeds a bound, is
marked failed and the others go on.
"""
from __future__ import annotations

import functools

import itertools
import json
import os
import time
from pathlib import Path
from typing import Callable, Dict, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from dynamics import records
# The sweep folder (results.npz, meta.json, summary.txt) is written by these; public here too.
from dynamics.sweep_folder import (  # noqa: F401
    failure_reasons, grid_of, metric_values, sweep_summary, time_axes, write_sweep_folder,
)

Cells = Dict[str, np.ndarray]


def product_grid(axes: Mapping[str, Sequence[float]]) -> Cells:
    """Cartesian product of the axes, row-major (the last axis varies fastest).

    ``{"seed": [0, 1], "lr": [.1, .2, .3]}`` → 6 cells, each field an (6,) array.
    """
    if not axes:
        raise ValueError("a grid needs at least one axis")
    for name, vals in axes.items():
        if len(vals) == 0:
            raise ValueError(f"grid axis {name!r} has no values")
    combos = list(itertools.product(*axes.values()))
    return {name: np.asarray([c[i] for c in combos]) for i, name in enumerate(axes)}


def n_cells(cells: Cells) -> int:
    sizes = {len(v) for v in cells.values()}
    if len(sizes) != 1:
        raise ValueError(f"every field of a cell list needs the same length, got {sorted(sizes)}")
    return sizes.pop()


class Plan(NamedTuple):
    """How cells are cut: ``chunk`` cells per compiled call, ``batch_size`` per vmap."""

    n_devices: int
    batch_size: int
    chunk: int

    @property
    def per_device(self) -> int:
        return self.chunk // self.n_devices


def make_plan(total: int, *, batch_size: int = 64, n_devices: Optional[int] = None,
              micro_batches_per_chunk: int = 4) -> Plan:
    """A chunk is n_devices × batch_size × micro_batches cells (fewer if the grid is small)."""
    n_dev = len(jax.devices()) if n_devices is None else int(n_devices)
    if not 1 <= n_dev <= len(jax.devices()):
        raise ValueError(f"n_devices={n_devices} is invalid; allowed: 1..{len(jax.devices())} "
                         f"(set JAX_NUM_CPU_DEVICES to emulate more on CPU)")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} is invalid; allowed: an integer ≥ 1")
    per_device = -(-total // n_dev)  # cells each device gets if the whole grid were one chunk
    micro = max(1, min(micro_batches_per_chunk, -(-per_device // batch_size)))
    return Plan(n_dev, batch_size, n_dev * batch_size * micro)


@functools.lru_cache(maxsize=32)
def _sharded_map(cell: Callable, n_devices: int, batch_size: int):
    # Cached so repeated run_sweep calls on one cell (benchmarks, notebooks) reuse
    # the traced and compiled program instead of re-jitting (~0.2 CPU-s per call).
    mesh = jax.make_mesh((n_devices,), ("cells",), devices=jax.devices()[:n_devices])
    spec = PartitionSpec("cells")

    def local(values):
        return jax.lax.map(cell, values, batch_size=batch_size)

    sharded = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=spec))
    return sharded, NamedSharding(mesh, spec)


def compile_chunk(cell: Callable, plan: Plan) -> Callable:
    """jit(shard_map(lax.map(cell, batch_size))) over a mesh axis "cells"."""
    sharded, sharding = _sharded_map(cell, plan.n_devices, plan.batch_size)

    def run(values: Cells) -> Cells:
        # make_array_from_callback gives each (possibly remote) device its slice,
        # so the same call works on one host or many.
        arrays = {k: jax.make_array_from_callback(v.shape, sharding, lambda idx, v=v: v[idx]) for k, v in values.items()}
        out = sharded(arrays)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            out = multihost_utils.process_allgather(out, tiled=True)
        return {k: np.asarray(v) for k, v in out.items()}

    return run


def _pad(values: Cells, size: int) -> Cells:
    """Repeat the last cell up to ``size`` (the padding's results are dropped)."""
    n = n_cells(values)
    return {k: np.concatenate([v, np.repeat(v[-1:], size - n, axis=0)]) for k, v in values.items()}


def failed_cells(outputs: Mapping[str, np.ndarray], *, loss_key: str = "loss", max_loss: float = np.inf) -> np.ndarray:
    """(n,) bool: a cell failed if any output is NaN/inf or its ``loss`` exceeds ``max_loss``."""
    leaves = [np.asarray(v) for v in outputs.values()]
    n = leaves[0].shape[0]
    bad = np.zeros(n, bool)
    for v in leaves:
        if np.issubdtype(v.dtype, np.floating):
            bad |= ~np.isfinite(v.reshape(n, -1)).all(axis=1)
    if loss_key in outputs:
        loss = np.asarray(outputs[loss_key]).reshape(n, -1)
        bad |= np.nanmax(np.where(np.isfinite(loss), loss, np.inf), axis=1) > max_loss
    return bad


# ----------------------------------------------------------------- storage

# Kept as names here: the chunk writers below (and older callers) use them.
_atomic_savez = records.atomic_savez
_atomic_write_text = records.atomic_write_text


def _fingerprint(cells: Cells, plan: Plan, extra: Mapping) -> dict:
    return {
        "cells": {k: np.asarray(v).tolist() for k, v in cells.items()},
        "chunk": plan.chunk,
        "extra": json.loads(json.dumps(extra, default=str)),
    }


def run_sweep(
    cell: Callable,
    cells: Cells,
    *,
    out_dir: Optional[os.PathLike] = None,
    resume: bool = False,
    batch_size: int = 64,
    n_devices: Optional[int] = None,
    max_loss: float = np.inf,
    fingerprint: Optional[Mapping] = None,
    progress: bool = False,
    write_results: bool = True,
    meta: Optional[Mapping] = None,
    metric: Optional[str] = None,
) -> tuple:
    """Run every cell; return ``(outputs, failed)`` with outputs[k] of shape (n_cells, ...).

    With ``out_dir``, each finished chunk is written to ``out_dir/chunks/`` and
    ``resume=True`` skips chunks already there (the grid, chunking and
    ``fingerprint`` — e.g. the static config — must match what was started).
    Without ``resume``, ``out_dir`` must not hold a sweep already; a folder
    holding anything else is never written into. At the end (unless
    ``write_results=False``) the folder gets ``results.npz``, ``meta.json``
    (``meta`` added to it) and ``summary.txt`` (``metric`` per cell): see
    ``write_sweep_folder``; ``experiments.load(out_dir)`` reads it back.
    """
    total = n_cells(cells)
    start_time = time.perf_counter()
    plan = make_plan(total, batch_size=batch_size, n_devices=n_devices)
    chunk_dir = None
    if out_dir is not None:
        chunk_dir = Path(out_dir) / "chunks"
        grid_file = Path(out_dir) / "grid.json"
        spec = _fingerprint(cells, plan, fingerprint or {})
        if grid_file.exists():
            if not resume:
                raise FileExistsError(f"{str(out_dir)!r} already holds a sweep; pass --resume to continue it or choose another --out")
            if records.read_json(grid_file, fix="delete the folder and start the sweep again") != spec:
                raise ValueError(f"{str(out_dir)!r} holds a different sweep (grid, chunking or config differ); "
                                 f"resume with the same arguments or choose another --out")
        elif Path(out_dir).exists() and (not Path(out_dir).is_dir() or any(
                not p.name.startswith(".") for p in Path(out_dir).iterdir())):  # ".": a killed write's temp file
            raise FileExistsError(f"{str(out_dir)!r} exists and holds no sweep (no grid.json); "
                                  "choose another out_dir (nothing there is overwritten)")
        # grid.json before chunks/: a sweep killed in between leaves a folder that resumes
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        if not grid_file.exists():
            _atomic_write_text(grid_file, json.dumps(spec))
        chunk_dir.mkdir(exist_ok=True)

    run_chunk = compile_chunk(cell, plan)
    starts = range(0, total, plan.chunk)
    pieces = []
    with tqdm(total=total, desc="sweep", unit="cell", disable=not progress, smoothing=0.1) as bar:
        for i, start in enumerate(starts):
            stop = min(start + plan.chunk, total)
            path = None if chunk_dir is None else chunk_dir / f"chunk-{i:06d}.npz"
            if path is not None and path.exists():
                out = records.load_npz(path, fix=f"delete {path.name} and resume the sweep to recompute that chunk")
            else:
                values = _pad({k: v[start:stop] for k, v in cells.items()}, plan.chunk)
                out = {k: v[: stop - start] for k, v in run_chunk(values).items()}
                if path is not None and jax.process_index() == 0:
                    _atomic_savez(path, out)
            pieces.append(out)
            bar.update(stop - start)
    outputs = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
    failed = failed_cells(outputs, max_loss=max_loss)
    if out_dir is not None and write_results and jax.process_index() == 0:
        run_meta = {"wall_time_s": round(time.perf_counter() - start_time, 3), "batch_size": plan.batch_size,
                    "chunk": plan.chunk, **(meta or {})}
        write_sweep_folder(out_dir, cells, outputs, failed, max_loss=max_loss, n_devices=plan.n_devices,
                           meta=run_meta, metric=metric)
    return outputs, failed


def check_cell(cell: Callable, cells: Cells, *, name: str = "cell") -> Dict[str, jax.ShapeDtypeStruct]:
    """Trace ``cell`` on the first cell (no compute) and check it returns a flat
    dict of arrays; return their shapes. One-line ValueError naming ``name`` if not."""
    first = {k: jnp.asarray(np.asarray(v)[0]) for k, v in cells.items()}
    try:
        shapes = jax.eval_shape(cell, first)
    except Exception as err:  # the user's function raised while tracing: say so in one line
        msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(f"{name} raised {type(err).__name__}{': ' + msg if msg else ''} on the first cell "
                         f"{ {k: np.asarray(v)[0].item() for k, v in cells.items()} }") from None
    if not isinstance(shapes, dict) or not shapes:
        got = "an array" if isinstance(shapes, jax.ShapeDtypeStruct) else (
            "an empty dict" if isinstance(shapes, dict) else f"a {type(shapes).__name__}")
        raise ValueError(f"{name} must return a non-empty dict of arrays (name -> array), got {got}")
    bad = [k for k, v in shapes.items() if not isinstance(v, jax.ShapeDtypeStruct)]
    if bad:
        raise ValueError(f"{name} must return a flat dict of arrays; {', '.join(map(repr, bad))} is not an array")
    return shapes
