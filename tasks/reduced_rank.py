"""Reduced-rank regression data at a singular point (Aoyagi & Watanabe 2005).

y = W₀x with x ~ N(0, I) and W₀ = U diag(s) Vᵀ of rank r (s evenly spaced in
[1, 2], or 1.5 for r = 1), noise-free, so the empirical loss
‖y − BAx‖²/(2σ²) (σ = 1) minus its minimum is exactly the quadratic form
½ tr((BA − W₀) Σxx (BA − W₀)ᵀ) of their Main Theorem, with Σxx = XᵀX/n.
The true parameter w₀ is the balanced factorization A = √S Vᵀ, B = U √S with the
extra H − r hidden units at zero.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ReducedRankTask(NamedTuple):
    x: np.ndarray        # (n, n_in)
    y: np.ndarray        # (n, n_out)
    params: dict         # w₀: {"a": (n_hidden, n_in), "b": (n_out, n_hidden)}, y = x Aᵀ Bᵀ


def reduced_rank(seed: int, *, n_in: int, n_hidden: int, n_out: int, rank: int, n: int) -> ReducedRankTask:
    """The task above, sampled with numpy (no compilation) from ``seed``."""
    if not 0 <= rank <= min(n_in, n_hidden, n_out):
        raise ValueError(f"rank={rank!r} is invalid; allowed: an integer in [0, min(n_in, n_hidden, n_out)]")
    if n < 1:
        raise ValueError(f"n={n!r} is invalid; allowed: an integer ≥ 1")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n_in))
    u = np.linalg.qr(rng.standard_normal((n_out, n_out)))[0][:, :rank]
    v = np.linalg.qr(rng.standard_normal((n_in, n_in)))[0][:, :rank]
    s = np.linspace(1.0, 2.0, rank) if rank > 1 else np.full((rank,), 1.5)
    a, b = np.zeros((n_hidden, n_in)), np.zeros((n_out, n_hidden))
    a[:rank] = np.sqrt(s)[:, None] * v.T
    b[:, :rank] = u * np.sqrt(s)[None, :]
    return ReducedRankTask(x, x @ (b @ a).T, {"a": a, "b": b})


def loss(params: dict, batch) -> "jax.Array":
    """Mean per-sample loss ‖y − BAx‖²/2 (Gaussian likelihood, σ = 1)."""
    x, y = batch
    pred = x @ (params["b"] @ params["a"]).T
    return 0.5 * ((y - pred) ** 2).sum(axis=-1).mean()
