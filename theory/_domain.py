"""Domain checks for the closed forms: a one-line ValueError instead of a NaN.

Checks run only on concrete arguments: under ``jax.jit``/``jax.vmap`` the
arguments are tracers and are passed through unchecked (as ``dynamics.gd``
does for record steps), so every theory function stays traceable.
"""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np


def concrete(*values) -> bool:
    """True when no argument is a JAX tracer (its values can be inspected)."""
    return not any(isinstance(v, jax.core.Tracer) for v in values)


def _show(arr: np.ndarray) -> str:
    if arr.ndim == 0:
        return repr(arr.item())
    flat = arr.ravel().tolist()
    return f"[{', '.join(map(repr, flat[:6]))}{', ...' if len(flat) > 6 else ''}]"


def require(allowed: str, predicate: Callable[..., np.ndarray], **values) -> None:
    """Raise ``ValueError("name=value, ... is invalid; allowed: <allowed>")`` unless
    ``predicate(**values)`` (computed with numpy, broadcasting) holds everywhere.
    A NaN argument fails every comparison, so it is refused too. Skipped when an
    argument is traced."""
    if not concrete(*values.values()):
        return
    arrays = {k: np.asarray(v, dtype=float) for k, v in values.items()}
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = np.all(predicate(**arrays))
    if not ok:
        shown = ", ".join(f"{k}={_show(v)}" for k, v in arrays.items())
        raise ValueError(f"{shown} {'is' if len(arrays) == 1 else 'are'} invalid; allowed: {allowed}")


def positive(name: str, value) -> None:
    require(f"{name} > 0", lambda **a: a[name] > 0, **{name: value})
