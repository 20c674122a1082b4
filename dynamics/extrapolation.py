"""A posteriori error estimates of quantities read off simulated curves: a crossing time read by
linear interpolation between records, and an extrapolation to ε → 0 of values measured at several ε.

Host-side numpy, our derivations (each function's docstring); used where a verify tolerance must be
computed from an argument rather than chosen (``experiments.diagonal_sparse``).
"""
from __future__ import annotations

import numpy as np


def crossing_error(t, values, level) -> float:
    """Error of reading the first time the decreasing ``values`` (T,) reach ``level`` by linear
    interpolation between the two records t (T,) around the crossing:
    |t_lin − t_true| ≤ (Δ²/8) max|L''| / min|L'| over the bracket (Δ its width; the interpolant
    misses L by at most Δ²/8 max|L''|, and L' converts that to time), with L'' from the second
    differences at both ends of the bracket and L' from its secant (an estimate: exact to leading
    order in Δ). NaN where the values never reach ``level`` or start below it."""
    below = np.nonzero(values <= level)[0]
    if below.size == 0 or below[0] == 0:
        return np.nan
    i = below[0]
    dt = t[i] - t[i - 1]
    second = max((abs(values[j + 1] - 2 * values[j] + values[j - 1]) for j in (i - 1, i) if 0 < j < len(values) - 1), default=0.0)
    return dt * second / (8.0 * abs(values[i - 1] - values[i]))


def extrapolate_to_zero(eps, values, read_errors=None):
    """Extrapolate values(ε) to ε = 0 and bound the error a posteriori (Richardson-style; our derivation).

    values(ε) = v₀ + c₁ε + c₂ε² + c₃ε³ + … (for the jump times, ε = 1/ln(1/α): the C_k ε of
    ``verify`` and the higher orders of the same expansion; the α^c terms are e^{−c/ε}). The
    least-squares line through the m points has intercept v₀ + c₂b₂ + O(c₃ε³), b₂ the intercept
    of the line through the εᵢ² (≈ −ε_min ε_max); the least-squares quadratic has intercept
    v₀ + O(c₃ε³) (v₀ + c₃b₃, b₃ ≈ ε_min ε_mid ε_max). The quadratic's intercept is returned, and
    as its error bound the distance between the two intercepts, |c₂b₂| + O(ε³): the lower
    order's error estimate bounding the higher order's error (as embedded Runge-Kutta pairs
    do). For a series that ends at ε³ it is guaranteed when |c₃/c₂| ≤ |b₂|/(|q₃| + |b₃ − q₃|)
    (b₃, q₃: the line's and the quadratic's intercepts through the εᵢ³; the ratio is 3.1-3.5 for
    the experiment's fit ranges, i.e. |c₃/c₂| ε_max ≲ 0.35): a series in ε that converges fast
    over the fit range. Beyond that the line's error can cancel by accident and the bound
    fails (an assumption of the row, not checked). Read errors eᵢ of the values (``read_errors``, same shape) add
    Σᵢ |wᵢ| eᵢ, w the quadratic fit's intercept weights (worst case: the errors may all push one way).

    eps: (m,), m ≥ 3 distinct values; values: (m, ...) → (intercept (...), bound (...)).
    """
    eps = np.asarray(eps, dtype=float)
    values = np.asarray(values, dtype=float)
    if eps.ndim != 1 or eps.size < 3 or np.unique(eps).size != eps.size:
        raise ValueError(f"eps must be ≥ 3 distinct values, got {eps!r}")
    if values.shape[:1] != eps.shape:
        raise ValueError(f"values must have len(eps) = {eps.size} rows, got shape {values.shape}")
    flat = values.reshape(eps.size, -1)
    weights = np.linalg.pinv(np.vander(eps, 3, increasing=True))[0]  # intercept = weights @ values
    line = np.linalg.pinv(np.vander(eps, 2, increasing=True))[0] @ flat  # NaN (a jump not seen) propagates
    quad = weights @ flat
    bound = np.abs(line - quad)
    if read_errors is not None:
        bound = bound + np.abs(weights) @ np.asarray(read_errors, dtype=float).reshape(eps.size, -1)
    return quad.reshape(values.shape[1:]), bound.reshape(values.shape[1:])
