"""The one result type of every integrator, log-spaced recording grids, and saving one to .npz."""
from __future__ import annotations

import importlib
import json
import os
from collections import namedtuple
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np


class Trajectory(NamedTuple):
    """Summary statistics recorded along a run.

    t: (T,) recording times in the DESIGN convention (GD: step index k; flow:
    time t with τ dθ/dt = −∂L/∂θ). loss: (T,) full-data loss at those times.
    stats: pytree, each leaf with leading axis T (whatever ``observe`` returned).
    params: the final parameters.
    history: the parameters at every recording time, each leaf with leading
      axis T (``keep_params=True``), else None.
    """

    t: jax.Array
    loss: jax.Array
    stats: Any
    params: Any
    history: Any = None


def log_steps(n_steps: int, n_points: int) -> np.ndarray:
    """Sorted unique integer steps 0, 1, ..., n_steps, log-spaced, ≤ n_points + 1 of them."""
    if n_steps < 1 or n_points < 2:
        raise ValueError(f"need n_steps ≥ 1 and n_points ≥ 2, got {n_steps}, {n_points}")
    steps = np.unique(np.round(np.geomspace(1, n_steps, n_points)).astype(np.int64))
    return np.concatenate([[0], steps])


def log_times(t_max: float, n_points: int, *, t_min: float = 1e-2) -> np.ndarray:
    """0 followed by n_points log-spaced times in [t_min, t_max]."""
    if not 0 < t_min < t_max or n_points < 2:
        raise ValueError(f"need 0 < t_min < t_max and n_points ≥ 2, got {t_min}, {t_max}, {n_points}")
    return np.concatenate([[0.0], np.geomspace(t_min, t_max, n_points)])


def no_stats(params) -> dict:
    """Default observer: records nothing beyond the loss."""
    return {}


# ------------------------------------------------------------------ save / load
# A Trajectory is saved as one .npz: its leaves as arrays "leaf_0", "leaf_1", ...
# and its tree structure as JSON in "__tree__" (no pickle, so loading runs no code
# beyond importing a NamedTuple's own module). Containers: dict (str/int keys),
# list, tuple, NamedTuple, None; leaves: arrays and Python/numpy scalars.

def _encode(node, leaves: list, where: str):
    if node is None:
        return {"type": "none"}
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        cls = type(node)
        return {"type": "namedtuple", "class": f"{cls.__module__}:{cls.__qualname__}", "fields": list(node._fields),
                "children": [_encode(v, leaves, f"{where}.{f}") for f, v in zip(node._fields, node)]}
    if isinstance(node, (list, tuple)):
        return {"type": type(node).__name__, "children": [_encode(v, leaves, f"{where}[{i}]") for i, v in enumerate(node)]}
    if isinstance(node, dict):
        keys = list(node)
        if not all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in keys):
            raise ValueError(f"cannot save {where}: dict keys must be str or int, got {[type(k).__name__ for k in keys]}")
        return {"type": "dict", "keys": keys, "children": [_encode(node[k], leaves, f"{where}[{k!r}]") for k in keys]}
    if isinstance(node, (jax.Array, np.ndarray, np.generic, int, float, complex, bool)):
        leaves.append(np.asarray(node))
        return {"type": "leaf", "index": len(leaves) - 1}
    raise ValueError(f"cannot save {where} of type {type(node).__module__}.{type(node).__qualname__}; allowed: "
                     "dicts, lists, tuples, NamedTuples and None holding arrays (convert other pytree nodes first)")


def _namedtuple_class(path: str, fields: list):
    module, _, qualname = path.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if list(getattr(obj, "_fields", ())) == fields:
            return obj
    except (ImportError, AttributeError):
        pass
    # the class is gone or changed: an equivalent namedtuple with the saved fields
    return namedtuple(qualname.split(".")[-1], fields)


def _decode(spec, leaves):
    kind = spec["type"]
    if kind == "none":
        return None
    if kind == "leaf":
        return leaves[spec["index"]]
    children = [_decode(c, leaves) for c in spec.get("children", [])]
    if kind == "namedtuple":
        return _namedtuple_class(spec["class"], spec["fields"])(*children)
    if kind == "list":
        return children
    if kind == "tuple":
        return tuple(children)
    if kind == "dict":
        return dict(zip(spec["keys"], children))
    raise ValueError(f"unknown node type {kind!r} in a saved trajectory")


def save(path: os.PathLike, traj: Trajectory) -> Path:
    """Write ``traj`` (stats, params and history pytrees included) to ``path`` (.npz added if missing).

    Refuses an existing file and pytrees other than dicts (str/int keys), lists,
    tuples, NamedTuples and None of arrays, naming the offending node. Written
    to a temporary file and renamed, so an interrupted save leaves nothing.
    Returns the path written.
    """
    if not isinstance(traj, Trajectory):
        raise ValueError(f"save needs a dynamics.Trajectory, got {type(traj).__name__}")
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if path.exists():
        raise FileExistsError(f"{str(path)!r} exists; a trajectory is never overwritten")
    leaves: list = []
    tree = _encode(traj, leaves, "trajectory")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, __tree__=np.asarray(json.dumps(tree)), **{f"leaf_{i}": a for i, a in enumerate(leaves)})
    tmp.replace(path)
    return path


def load(path: os.PathLike) -> Trajectory:
    """A Trajectory saved by ``save``; leaves come back as numpy arrays (``jnp.asarray`` to compute on them)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no trajectory file {str(path)!r}")
    with np.load(path, allow_pickle=False) as data:
        if "__tree__" not in data.files:
            raise ValueError(f"{str(path)!r} is not a saved trajectory (no __tree__ entry; written by dynamics.trajectory.save?)")
        tree = json.loads(str(data["__tree__"]))
        leaves = [data[f"leaf_{i}"] for i in range(len(data.files) - 1)]
    out = _decode(tree, leaves)
    if not isinstance(out, tuple) or getattr(out, "_fields", None) != Trajectory._fields:
        raise ValueError(f"{str(path)!r} holds a {type(out).__name__}, not a Trajectory")
    return Trajectory(*out)
