"""What every results folder shares: provenance, atomic writes, careful reads.

Run folders (``experiments``) and sweep folders (``dynamics.sweep.run_sweep``
and ``saddle sweep``) both hold ``results.npz`` + ``meta.json``; the pieces
both need live here because ``dynamics`` never imports ``experiments``.

Reads never show a user a ``BadZipFile`` or ``JSONDecodeError`` traceback: a
damaged file raises ``ValueError`` naming the file and what to do about it.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np

PACKAGES = ("saddle", "jax", "jaxlib", "optax", "diffrax", "numpy", "matplotlib")


def versions() -> Dict[str, str]:
    """{"python": ..., package: version} for the packages a result depends on."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in PACKAGES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit() -> Optional[str]:
    """HEAD of the checkout this code runs from, or None outside a git checkout."""
    out = _git("rev-parse", "HEAD")
    return (out or "").strip() or None


def git_dirty() -> Optional[bool]:
    """True if that checkout has uncommitted changes (``git status --porcelain``
    lists anything), so a result cannot be reproduced from ``git_commit`` alone;
    None outside a git checkout."""
    out = _git("status", "--porcelain")
    return None if out is None else bool(out.strip())


def provenance() -> Dict[str, Any]:
    """The meta.json keys every results folder carries: versions, git sha and
    whether the tree was dirty, creation time."""
    return {"versions": versions(), "git_commit": git_commit(), "git_dirty": git_dirty(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


# ------------------------------------------------------------------ writes

def atomic_savez(path: os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """np.savez to a temp file in the same folder, fsync, rename: a reader (or a
    killed writer) never sees a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: os.PathLike, text: str) -> None:
    """Write ``text`` to a temp file in the same folder, then rename over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str))


# ------------------------------------------------------------------- reads

def load_npz(path: os.PathLike, fix: str = "re-create it") -> Dict[str, np.ndarray]:
    """Every array of an .npz file; ValueError naming the file and ``fix`` if it
    is missing, truncated, not an .npz, or holds pickled objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist; {fix}")
    try:
        data = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        # np.load reports a text file as "pickled data"; say what it is instead.
        raise ValueError(f"{str(path)!r} is damaged or not an .npz file ({type(err).__name__}); {fix}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{str(path)!r} is a single .npy array, not an .npz archive; {fix}")
    try:
        with data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
        raise ValueError(f"{str(path)!r} is damaged (truncated or corrupt: {type(err).__name__}); {fix}") from None


def read_json(path: os.PathLike, fix: str = "restore it or re-create the folder") -> Any:
    """Parsed JSON; ValueError naming the file, the line and ``fix`` if it is invalid."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist; {fix}")
    try:
        return json.loads(path.read_text())
    except UnicodeDecodeError:
        raise ValueError(f"{str(path)!r} is not a text file; {fix}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r} is not valid JSON (line {err.lineno}: {err.msg}); {fix}") from None
