"""The one prediction type of every saddle-to-saddle theory: a loss staircase.

``theory.saddle.predict`` (deep linear), ``theory.diagonal.predict`` (diagonal
linear), ``theory.relu.predict`` (1-D ReLU, affine part free) and
``theory.attention_icl.predict`` / ``theory.attention_heads.predict`` (linear
attention) all return a ``Staircase`` for the user's own setting, in the DESIGN
time convention (docs/design.md): gradient flow τ dθ/dt = −∂L/∂θ, and GD with
learning rate η is its Euler discretisation with τ = 1/η, step k at t = k.
``dynamics.plateaus.compare`` turns one into verify rows against a simulated
curve and ``experiments.plotting.staircase`` draws it over one.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np


class Staircase(NamedTuple):
    """Predicted plateaus and transitions of a loss curve, in time order.

    plateau_losses: (n + 1,) loss L = (1/2P)Σ‖y − ŷ‖² on each plateau (the
      first is the loss at init, the last the loss after the last transition).
    transition_times: (n,) time of the transition from plateau k to k + 1, in
      units of τ (GD: steps, when the prediction was made with ``learning_rate``).
    ranks: (n + 1,) what the network has learned on each plateau: rank of W
      (deep linear), support size of β (diagonal), kinks (ReLU), learned
      eigen-directions (attention).
    level: fraction of the drop L_k − L_{k+1} the loss has covered at the
      transition time (0.75 where the theory times a mode half learned,
      0.5 for the midpoint), passed to ``dynamics.plateaus.detect_plateaus``
      so simulated transitions are read at the same instant.
    """

    plateau_losses: np.ndarray
    transition_times: np.ndarray
    ranks: np.ndarray
    level: float


def time_constant(tau: Optional[float], learning_rate: Optional[float]) -> float:
    """τ from either ``tau`` (gradient flow; default 1) or ``learning_rate`` η (GD: τ = 1/η, t = step).

    One of the two, never both; each must be > 0.
    """
    if tau is not None and learning_rate is not None:
        raise ValueError("pass tau= or learning_rate= (τ = 1/η), not both")
    if learning_rate is not None:
        if not float(learning_rate) > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        return 1.0 / float(learning_rate)
    tau = 1.0 if tau is None else tau
    if not float(tau) > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    return float(tau)


def staircase(plateau_losses, transition_times, ranks, level: float) -> Staircase:
    """A Staircase of float64 numpy arrays, shapes checked ((n+1,), (n,), (n+1,))."""
    pl = np.asarray(plateau_losses, dtype=np.float64).ravel()
    tt = np.asarray(transition_times, dtype=np.float64).ravel()
    rk = np.asarray(ranks).ravel().astype(np.int64)
    if pl.size != tt.size + 1 or rk.size != pl.size:
        raise ValueError(f"need n + 1 plateau losses and ranks for n transition times; got {pl.size}, {rk.size}, {tt.size}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return Staircase(pl, tt, rk, float(level))
