"""The one result type of every integrator, and log-spaced recording grids."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np


class Trajectory(NamedTuple):
    """Summary statistics recorded along a run.

    t: (T,) recording times in the DESIGN convention (GD: step index k; flow:
    time t with τ dθ/dt = −∂L/∂θ). loss: (T,) full-data loss at those times.
    stats: pytree, each leaf with leading axis T (whatever ``observe`` returned).
    params: the final parameters.
    """

    t: jax.Array
    loss: jax.Array
    stats: Any
    params: Any


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
