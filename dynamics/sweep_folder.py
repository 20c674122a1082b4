"""The sweep folder: ``results.npz``, ``meta.json`` and ``summary.txt``.

``dynamics.sweep.run_sweep(out_dir=...)`` and ``saddle sweep`` (name or
``--cell``) write the same folder, and ``experiments.load`` reads it:

- results.npz: ``failed`` (n,), ``cell/<field>`` (n,) grid values,
  ``out/<output>`` (n, ...) every output, time axes included;
- meta.json: ``kind = "sweep"``, the grid, package versions, git commit and
  whether the tree was dirty, creation time, which output is the time axis of
  which curve, each failed cell's values and reason;
- summary.txt: one line per cell, failed cells with their reason.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Mapping, Optional

import jax
import numpy as np

from dynamics import records

Cells = Dict[str, np.ndarray]


def time_axes(outputs: Mapping[str, np.ndarray]) -> Dict[str, str]:
    """{curve: its time output} for the outputs recorded along time.

    A cell names the time axis of a curve ``k`` by returning ``k + "_t"``, or
    one axis ``t`` for every output whose first per-cell axis has its length
    (outputs are batched: ``outputs[k]`` has shape (n_cells, T, ...)).
    """
    out = {}
    for k, v in outputs.items():
        if k == "t" or k.endswith("_t") or np.ndim(v) < 2:
            continue
        for tk in (f"{k}_t", "t"):
            tv = outputs.get(tk)
            if tv is not None and np.ndim(tv) == 2 and tv.shape[1] == np.shape(v)[1]:
                out[k] = tk
                break
    return out


def _where(j: int, t: Optional[np.ndarray]) -> str:
    return f"record {j}" if t is None else f"t={float(t[j]):.4g} (record {j})"


def failure_reasons(outputs: Mapping[str, np.ndarray], failed: np.ndarray, *, loss_key: str = "loss",
                    max_loss: float = np.inf) -> Dict[int, str]:
    """{cell index: why it failed} for every failed cell, e.g. ``"NaN in loss from
    t=12.5 (record 50)"`` or ``"loss 3.1e+07 > max_loss 1e+06 from t=…"``; the
    time is the cell's own record time where it returns one (``time_axes``)."""
    axes = time_axes(outputs)
    reasons = {}
    for i in np.flatnonzero(failed):
        parts = []
        for k, v in outputs.items():
            v = np.asarray(v[i])
            if not np.issubdtype(v.dtype, np.floating) or np.all(np.isfinite(v)):
                continue
            bad = ~np.isfinite(v)
            kind = "NaN" if np.isnan(v[bad]).all() else ("inf" if np.isinf(v[bad]).all() else "NaN/inf")
            if v.ndim == 0:
                parts.append(f"{k} is {kind}")
                continue
            if k in axes:  # a curve: from which record on
                j = int(np.argmax(bad.reshape(v.shape[0], -1).any(axis=1)))
                parts.append(f"{kind} in {k} from {_where(j, np.asarray(outputs[axes[k]][i]))}")
            else:
                index = np.unravel_index(int(np.argmax(bad.ravel())), v.shape)
                parts.append(f"{kind} in {k}[{', '.join(map(str, index))}]")
        if loss_key in outputs:
            loss = np.asarray(outputs[loss_key][i], float)
            over = np.isfinite(loss) & (loss > max_loss)
            if over.any():
                j = int(np.argmax(over.reshape(loss.shape[0], -1).any(axis=1))) if loss.ndim else 0
                t = np.asarray(outputs[axes[loss_key]][i]) if loss_key in axes else None
                value = float(np.ravel(loss)[int(np.argmax(np.ravel(over)))])
                where = f" from {_where(j, t)}" if loss.ndim else ""
                parts.append(f"{loss_key} {value:.3g} > max_loss {max_loss:g}{where}")
        reasons[int(i)] = "; ".join(parts) or "failed"
    return reasons


def grid_of(cells: Cells) -> Dict[str, list]:
    """{field: its distinct values, in order of first appearance}."""
    out = {}
    for k, v in cells.items():
        _, first = np.unique(np.asarray(v), return_index=True)
        out[k] = np.asarray(v)[np.sort(first)].tolist()
    return out


def metric_values(outputs: Mapping[str, np.ndarray], metric: Optional[str]) -> tuple:
    """(label, (n,) values): ``metric`` per cell; a curve gives its last entry.
    With metric None: ``loss`` if the cell returns it, else its first output."""
    metric = metric or ("loss" if "loss" in outputs else next(iter(outputs)))
    if metric not in outputs:
        raise ValueError(f"metric {metric!r} is not an output of the cell; outputs: {', '.join(outputs)}")
    v = np.asarray(outputs[metric])
    flat = v.reshape(v.shape[0], -1)
    if v.ndim == 1:
        return metric, flat[:, 0].astype(float)
    return f"{metric}[-1]", flat[:, -1].astype(float)


def sweep_summary(cells: Cells, outputs: Mapping[str, np.ndarray], failed: np.ndarray,
                  reasons: Mapping[int, str], metric: Optional[str] = None) -> str:
    """One line per cell: grid values, the metric, ok or FAILED with the reason."""
    label, values = metric_values(outputs, metric)
    names = list(cells)
    width = max(14, len(label))
    lines = ["  ".join(f"{n:>12}" for n in names) + f"  {label:>{width}}  status"]
    for i in range(len(failed)):
        vals = "  ".join(f"{float(cells[n][i]):>12.4g}" for n in names)
        status = f"FAILED: {reasons.get(i, 'failed')}" if failed[i] else "ok"
        lines.append(f"{vals}  {values[i]:>{width}.4g}  {status}")
    lines.append(f"{len(failed)} cells, {int(np.sum(failed))} failed")
    return "\n".join(lines) + "\n"


def write_sweep_folder(out_dir: os.PathLike, cells: Cells, outputs: Mapping[str, np.ndarray], failed: np.ndarray, *,
                       max_loss: float = np.inf, loss_key: str = "loss", n_devices: Optional[int] = None,
                       grid: Optional[Mapping[str, list]] = None, meta: Optional[Mapping] = None,
                       metric: Optional[str] = None) -> Dict:
    """Write ``results.npz``, ``meta.json`` and ``summary.txt`` into ``out_dir``; return the meta.

    results.npz: ``failed`` (n,), ``cell/<field>`` (n,) grid values, ``out/<key>``
    (n, ...) outputs, time axes included (``meta["time_axes"]`` maps each curve
    to its time output). meta.json: ``kind = "sweep"``, the grid, versions, git
    sha and dirty flag, creation time, each failed cell's values and reason.
    """
    out_dir = Path(out_dir)
    failed = np.asarray(failed, bool)
    reasons = failure_reasons(outputs, failed, loss_key=loss_key, max_loss=max_loss)
    records.atomic_savez(out_dir / "results.npz", {"failed": failed, **{f"cell/{k}": np.asarray(v) for k, v in cells.items()},
                                                  **{f"out/{k}": np.asarray(v) for k, v in outputs.items()}})
    info = {
        "kind": "sweep",
        "grid": {k: list(v) for k, v in (grid or grid_of(cells)).items()},
        "n_cells": int(len(failed)), "n_failed": int(failed.sum()),
        "failed": [{"index": i, "values": {k: np.asarray(v[i]).tolist() for k, v in cells.items()}, "reason": r}
                   for i, r in reasons.items()],
        "outputs": {k: list(np.shape(v)[1:]) for k, v in outputs.items()},
        "time_axes": time_axes(outputs),
        # the record times themselves, where every cell shares them (else see results.npz)
        "record_times": {k: np.asarray(outputs[tk][0]).tolist() for k, tk in time_axes(outputs).items()
                         if np.all(np.asarray(outputs[tk]) == np.asarray(outputs[tk])[:1])},
        "max_loss": float(max_loss) if np.isfinite(max_loss) else None,
        "backend": jax.default_backend(), "devices": n_devices or len(jax.devices()),
        "x64": bool(jax.config.jax_enable_x64),
        **records.provenance(),
        **json.loads(json.dumps(dict(meta or {}), default=str)),
    }
    records.write_json(out_dir / "meta.json", info)
    records.atomic_write_text(out_dir / "summary.txt", sweep_summary(cells, outputs, failed, reasons, metric))
    return info


