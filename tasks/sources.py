"""Source distributions for the modularisation experiments (Dorrell, Hsu et al.,
arXiv 2410.06232, Sec. 3: sources on a grid with parts of their support removed).

``corner_cut_square(n_values, delta)``: two sources on the n_values × n_values
grid over [−½, ½]², keeping the points with |s_1 + s_2| ≤ δ, i.e. cutting off
the corners where both sources are low or both are high (δ = 1 keeps the whole
square: independent uniform sources). The grid is returned whole, with weight
1/P_kept on kept points and 0 on cut ones, so every δ has the same shapes (one
compiled program over a family; ``delta`` may be traced).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# Points exactly on the cut |s_1 + s_2| = δ are kept. The test runs on the integer
# diagonal index k = i + j − (n − 1), |k| ≤ δ(n − 1), with a slack of 1e-3 of a
# diagonal: float32 rounding of δ(n − 1) (~1e-6) cannot drop a diagonal, in float32
# training and float64 theory alike.
_EDGE = 1e-3


def corner_cut_square(n_values: int, delta):
    """Returns (s: (n_values², 2), weight: (n_values²,)) with Σ weight = 1."""
    g = np.linspace(-0.5, 0.5, n_values)
    x, y = np.meshgrid(g, g, indexing="ij")
    s = jnp.asarray(np.stack([x.ravel(), y.ravel()], axis=1))
    i, j = np.meshgrid(np.arange(n_values), np.arange(n_values), indexing="ij")
    k = jnp.asarray(np.abs(i + j - (n_values - 1)).ravel())
    kept = k <= delta * (n_values - 1) + _EDGE
    weight = kept / jnp.sum(kept)
    return s, weight.astype(s.dtype)


def kept_points(n_values: int, delta: float) -> np.ndarray:
    """The kept points only, (P_kept, 2) in numpy (what ``theory.modularisation`` reads)."""
    s, weight = corner_cut_square(n_values, delta)
    return np.asarray(s)[np.asarray(weight) > 0]
