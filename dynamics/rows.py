"""Verification rows: one prediction against one measurement, with an error and a tolerance.

The dicts ``saddle verify --json`` prints (plus the experiment's name there).
They live in ``dynamics`` so that both ``dynamics.plateaus.compare`` and every
experiment (``experiments.common`` re-exports them) build the same rows without
``dynamics`` importing ``experiments`` (docs/design.md, import direction).
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

Row = Dict[str, Any]


def row(quantity: str, theory: float, simulation: float, *, tol: float, relative: bool = True) -> Row:
    """One verification row; ``passed`` compares rel_err (or abs_err) with tol,
    and ``tol_kind`` says which ("relative" or "absolute").

    rel_err = abs_err/|theory|, or abs_err where theory is 0 (so every row is
    valid JSON: no inf or NaN unless the simulation itself produced one).
    """
    theory, simulation = float(theory), float(simulation)
    abs_err = abs(simulation - theory)
    rel_err = abs_err / abs(theory) if theory != 0 else abs_err
    err = rel_err if relative else abs_err
    return {
        "quantity": quantity, "theory": theory, "simulation": simulation,
        "abs_err": abs_err, "rel_err": rel_err, "tol": float(tol),
        "tol_kind": "relative" if relative else "absolute",
        "passed": bool(np.isfinite(err) and err <= tol),
    }


def bound_row(quantity: str, value: float, *, at_least: float = None, at_most: float = None) -> Row:
    """A one-sided row (a claim like "ratio ≥ 100" or "count ≤ K"): passes when
    ``value`` lies on the allowed side of the bound; ``theory`` is the bound and
    abs_err the amount by which the value oversteps it (0 when it passes)."""
    if (at_least is None) == (at_most is None):
        raise ValueError("bound_row needs exactly one of at_least=, at_most=")
    bound = float(at_least if at_most is None else at_most)
    value = float(value)
    over = max(0.0, bound - value) if at_most is None else max(0.0, value - bound)
    return {"quantity": quantity, "theory": bound, "simulation": value, "abs_err": over,
            "rel_err": over / abs(bound) if bound != 0 else over, "tol": 0.0,
            "tol_kind": "at_least" if at_most is None else "at_most",
            "passed": bool(np.isfinite(value) and over == 0.0)}
