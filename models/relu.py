"""Two-layer networks f(x) = Σᵢ aᵢ σ(wᵢ·x + bᵢ) (+ c) with σ ∈ {relu, tanh, linear}.

Params are a dict of arrays (hidden width h)::

    {"w": (h, n_in), "b": (h,), "a": (n_out, h)}      + "c": (n_out,) if output_bias

``"b"`` is absent in a net built with ``bias=False``, ``"c"`` is present only
with ``output_bias=True`` and the linear skip ``"v": (n_out, n_in)`` only with ``skip=True``; every function reads the keys it finds, so one
``apply`` serves all four variants. Unit i is the triple (wᵢ, bᵢ, a[:, i]).

Activation. ``apply(params, x, activation="relu")`` has the package's standard
``apply(params, x)`` signature for ReLU nets (its default); for tanh or linear
units use ``make_apply(activation)``, which returns ``apply(params, x)`` with σ
fixed (the activation is a Python choice, never traced, so it stays out of the
params pytree).

Saddles of narrower networks (Fukumizu & Amari 2000; Simsek et al. 2021, arXiv
2105.12221; Zhang, Saxe & Latham, arXiv 2512.20607). Because σ(0) = 0 for all
three activations, a unit with wᵢ = bᵢ = aᵢ = 0 is *silent*: it adds nothing to
f and receives zero gradient. ``embed_narrow`` pads a k-unit net with silent
units, so every critical point of the k-unit net (its optimum included) is a
critical point, typically a saddle, of the wide net with the same loss;
``narrow`` keeps a subset of units, and ``merge_units`` merges units that point
the same way (how a wide net at a plateau is read as a narrow one). From small init, gradient descent on a
ReLU net visits such embedded narrow optima one unit at a time; in 1-D each
unit whose breakpoint −bᵢ/wᵢ lies inside the data adds one kink (``kinks``).

Conserved quantity. For σ = relu or linear, f is invariant under
(wᵢ, bᵢ, aᵢ) → (λwᵢ, λbᵢ, aᵢ/λ), λ > 0, so gradient flow conserves
‖aᵢ‖² − ‖wᵢ‖² − bᵢ² for every unit (``balance``; Du, Hu & Lee 2018, arXiv
1806.00900). ``init(..., scheme="balanced")`` starts every unit at zero.
"""
from __future__ import annotations

from typing import Callable, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "linear": lambda z: z,
}
SCHEMES = ("gaussian", "balanced")


def _activation(activation: str) -> Callable:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r} is invalid; allowed: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[activation]


def init(
    key: jax.Array,
    *,
    n_in: int,
    hidden: int,
    n_out: int,
    scale: float,
    scheme: str = "gaussian",
    bias: bool = True,
    output_bias: bool = False,
    skip: bool = False,
    dtype=None,
) -> dict:
    """Small random init of a two-layer net (any activation).

    scheme="gaussian": every entry of w, b and a i.i.d. N(0, scale²) (no fan-in
      scaling, so ``scale`` is the size of each weight; the output bias c = 0).
    scheme="balanced": (wᵢ, bᵢ) i.i.d. N(0, scale²) as above, and aᵢ a random
      direction in R^{n_out} (a random sign for n_out = 1) times ‖(wᵢ, bᵢ)‖, so
      ‖aᵢ‖ = ‖(wᵢ, bᵢ)‖ for every unit: ``balance(params)`` is 0, and stays 0
      under gradient flow for relu and linear units.

    bias=False drops b; output_bias=True adds c = 0; skip=True adds a linear
    skip path v: (n_out, n_in) = 0, so f(x) = Σᵢ aᵢ σ(wᵢ·x + bᵢ) + v x + c.

    Returns {"w": (hidden, n_in), "b": (hidden,), "a": (n_out, hidden)} (+ "c": (n_out,), "v").
    """
    for name, value in (("n_in", n_in), ("hidden", hidden), ("n_out", n_out)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r} is invalid; allowed: an integer ≥ 1")
    if not scale >= 0:
        raise ValueError(f"scale={scale!r} is invalid; allowed: a number ≥ 0")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme={scheme!r} is invalid; allowed: {', '.join(SCHEMES)}")
    dtype = dtype or jnp.result_type(float)
    k_w, k_b, k_a = jax.random.split(key, 3)
    w = scale * jax.random.normal(k_w, (hidden, n_in), dtype)
    b = scale * jax.random.normal(k_b, (hidden,), dtype)
    if scheme == "gaussian":
        a = scale * jax.random.normal(k_a, (n_out, hidden), dtype)
    else:
        norms = jnp.sqrt(jnp.sum(w**2, axis=1) + (b**2 if bias else 0.0))
        direction = jax.random.normal(k_a, (n_out, hidden), dtype)
        a = direction / jnp.linalg.norm(direction, axis=0, keepdims=True) * norms[None, :]
    params = {"w": w, "a": a}
    if bias:
        params["b"] = b
    if output_bias:
        params["c"] = jnp.zeros((n_out,), dtype)
    if skip:
        params["v"] = jnp.zeros((n_out, n_in), dtype)
    return params


def init_breakpoints(
    key: jax.Array,
    *,
    hidden: int,
    x_range: Tuple[float, float] = (-1.0, 1.0),
    scale: float = 1.0,
    n_out: int = 1,
    dtype=None,
) -> dict:
    """O(1) random init of a 1-D net (n_in = 1) with every breakpoint inside the data.

    Unit i gets a breakpoint pᵢ ~ U(x_range), an orientation sᵢ = ±1 with equal
    odds, wᵢ = sᵢ·scale, bᵢ = −wᵢ pᵢ and aᵢ ~ N(0, scale²). Meant for training
    *narrow* nets to their optimum (``dynamics.narrow``): a Gaussian init puts
    many breakpoints outside the data, where a unit is either dead or linear
    and the fit gets stuck with fewer kinks than units.

    Returns {"w": (hidden, 1), "b": (hidden,), "a": (n_out, hidden)}.
    """
    if not isinstance(hidden, (int, np.integer)) or hidden < 1:
        raise ValueError(f"hidden={hidden!r} is invalid; allowed: an integer ≥ 1")
    lo, hi = (float(v) for v in x_range)
    if not lo < hi:
        raise ValueError(f"x_range={x_range!r} is invalid; allowed: (lo, hi) with lo < hi")
    if not scale > 0:
        raise ValueError(f"scale={scale!r} is invalid; allowed: a number > 0")
    dtype = dtype or jnp.result_type(float)
    k_p, k_s, k_a = jax.random.split(key, 3)
    p = jax.random.uniform(k_p, (hidden,), dtype, lo, hi)
    w = scale * jnp.where(jax.random.bernoulli(k_s, 0.5, (hidden,)), 1.0, -1.0).astype(dtype)
    a = scale * jax.random.normal(k_a, (n_out, hidden), dtype)
    return {"w": w[:, None], "b": -w * p, "a": a}


def preactivation(params: dict, x: jax.Array) -> jax.Array:
    """wᵢ·x + bᵢ for every sample and unit; x: (batch, n_in) → (batch, hidden)."""
    z = x @ params["w"].T
    return z + params["b"][None, :] if "b" in params else z


def apply(params: dict, x: jax.Array, activation: str = "relu") -> jax.Array:
    """f(x) = Σᵢ aᵢ σ(wᵢ·x + bᵢ) + c; x: (batch, n_in) → (batch, n_out)."""
    y = _activation(activation)(preactivation(params, x)) @ params["a"].T
    if "v" in params:
        y = y + x @ params["v"].T
    return y + params["c"][None, :] if "c" in params else y


def make_apply(activation: str) -> Callable:
    """``apply(params, x)`` with σ fixed to ``activation`` (checked now, not at call time)."""
    _activation(activation)

    def apply_fixed(params: dict, x: jax.Array) -> jax.Array:
        return apply(params, x, activation)

    apply_fixed.__name__ = f"apply_{activation}"
    return apply_fixed


def width(params: dict) -> int:
    """Number of hidden units h."""
    return int(params["w"].shape[0])


def balance(params: dict) -> jax.Array:
    """‖aᵢ‖² − ‖wᵢ‖² − bᵢ² per unit, shape (hidden,): conserved by gradient flow for
    relu and linear units (positive homogeneity of σ), 0 after a balanced init."""
    d = jnp.sum(params["a"] ** 2, axis=0) - jnp.sum(params["w"] ** 2, axis=1)
    return d - params["b"] ** 2 if "b" in params else d


def embed_narrow(params_narrow: dict, hidden: int) -> dict:
    """Embed a k-unit net into a net of width ``hidden`` ≥ k by appending silent
    units (w = b = a = 0). The wide net computes the same function, and since
    σ(0) = 0 the silent units get zero gradient while the k live units get the
    narrow net's gradient: a critical point of the narrow net is one of the wide net."""
    k = width(params_narrow)
    if not isinstance(hidden, (int, np.integer)) or hidden < k:
        raise ValueError(f"hidden={hidden!r} is invalid; allowed: an integer ≥ the narrow width {k}")
    pad = hidden - k
    out = dict(params_narrow)
    out["w"] = jnp.concatenate([params_narrow["w"], jnp.zeros((pad,) + params_narrow["w"].shape[1:], params_narrow["w"].dtype)])
    out["a"] = jnp.concatenate([params_narrow["a"], jnp.zeros((params_narrow["a"].shape[0], pad), params_narrow["a"].dtype)], axis=1)
    if "b" in params_narrow:
        out["b"] = jnp.concatenate([params_narrow["b"], jnp.zeros((pad,), params_narrow["b"].dtype)])
    return out


def narrow(params: dict, keep: Union[Sequence[int], jax.Array]) -> dict:
    """The sub-network of the units ``keep`` (integer indices, or a boolean mask of
    length hidden); the output bias, if any, is kept."""
    h = width(params)
    keep = np.asarray(keep)
    if keep.dtype == bool:
        if keep.shape != (h,):
            raise ValueError(f"keep: a boolean mask must have shape ({h},), got {keep.shape}")
        keep = np.nonzero(keep)[0]
    if keep.ndim != 1 or not np.issubdtype(keep.dtype, np.integer) or np.any((keep < 0) | (keep >= h)):
        raise ValueError(f"keep={keep.tolist()!r} is invalid; allowed: unit indices in [0, {h}) or a boolean mask")
    out = dict(params)
    out["w"], out["a"] = params["w"][keep], params["a"][:, keep]
    if "b" in params:
        out["b"] = params["b"][keep]
    return out


def kinks(
    params: dict,
    x_range: Tuple[float, float] = (-1.0, 1.0),
    *,
    tol: float = 1e-2,
    rel_threshold: float = 1e-2,
    abs_threshold: float = 0.0,
) -> np.ndarray:
    """Breakpoints of a 1-D ReLU net inside ``x_range``, sorted (host-side numpy).

    Unit i with wᵢ ≠ 0 bends f at pᵢ = −bᵢ/wᵢ, where the slope of f jumps by
    Δᵢ = aᵢ|wᵢ| (both for wᵢ > 0 and wᵢ < 0). Breakpoints strictly inside
    x_range = (lo, hi) are grouped when they lie within ``tol`` of their
    neighbour (single linkage); a group is a kink when its net slope jump
    ‖Σ_{i∈group} Δᵢ‖ exceeds max(rel_threshold · largest group jump,
    abs_threshold). A group is located at the |Δᵢ|-weighted mean of its pᵢ.

    Units whose breakpoint lies outside x_range are linear (or off) on the data
    and are not kinks; two units at one breakpoint whose jumps cancel make no
    kink. ``abs_threshold`` (in slope units) keeps the tiny units of a small
    init from counting: with only the relative test every net has kinks.
    """
    w, a = np.asarray(params["w"]), np.asarray(params["a"])
    if w.ndim != 2 or w.shape[1] != 1:
        raise ValueError(f"params['w'] must have shape (hidden, 1) for kinks of a 1-D net, got {w.shape}")
    lo, hi = (float(v) for v in x_range)
    if not lo < hi:
        raise ValueError(f"x_range={x_range!r} is invalid; allowed: (lo, hi) with lo < hi")
    if tol < 0 or rel_threshold < 0 or abs_threshold < 0:
        raise ValueError(f"tol, rel_threshold, abs_threshold must be ≥ 0, got {tol}, {rel_threshold}, {abs_threshold}")
    w = w[:, 0]
    b = np.asarray(params["b"]) if "b" in params else np.zeros_like(w)
    live = w != 0
    p = np.where(live, -b / np.where(live, w, 1.0), np.inf)
    inside = live & (p > lo) & (p < hi)
    if not np.any(inside):
        return np.zeros(0)
    p, jump = p[inside], (a[:, inside] * np.abs(w[inside])[None, :]).T  # (m,), (m, n_out)
    order = np.argsort(p)
    p, jump = p[order], jump[order]
    group = np.concatenate([[0], np.cumsum(np.diff(p) > tol)])
    n = group[-1] + 1
    net = np.zeros((n, jump.shape[1]))
    np.add.at(net, group, jump)
    weight = np.linalg.norm(jump, axis=1)
    wsum = np.bincount(group, weight, n)
    where = np.bincount(group, weight * p, n) / np.where(wsum > 0, wsum, 1.0)
    strength = np.linalg.norm(net, axis=1)
    keep = strength > max(rel_threshold * strength.max(), abs_threshold)
    return where[keep]


def merge_units(params: dict, *, tol: float = 1e-2, threshold: float = 0.0) -> dict:
    """Merge units that point the same way; drop units whose output is ≤ threshold.

    Unit i has direction θᵢ = (wᵢ, bᵢ)/‖(wᵢ, bᵢ)‖ and output vector
    Aᵢ = aᵢ‖(wᵢ, bᵢ)‖. For relu (and linear) units σ is positively homogeneous,
    so units with one direction θ act as a single unit:
    Σᵢ aᵢ σ(λᵢ θ·(x, 1)) = (Σᵢ Aᵢ) σ(θ·(x, 1)). Units are visited in order of
    decreasing ‖Aᵢ‖ and each joins the first group whose direction (the
    ‖Aᵢ‖-weighted mean, renormalised) is within ``tol`` (Euclidean, on the unit
    sphere; in 1-D two breakpoints p, p' with one orientation are ≈ |p − p'|/(1 + p²)
    apart); groups with ‖Σ Aᵢ‖ ≤ threshold are dropped. Each merged unit is
    returned balanced: w = θ_w √‖A‖, b = θ_b √‖A‖, a = A/√‖A‖.

    This is how the units of a wide net at a plateau are matched with a narrow
    net (Simsek et al. 2021, arXiv 2105.12221: a narrow critical point embeds
    into a wide net by duplicating units along one direction). Exact (same f)
    when the merged directions are identical. Host-side numpy.
    """
    if tol < 0 or threshold < 0:
        raise ValueError(f"tol and threshold must be ≥ 0, got {tol}, {threshold}")
    w, a = np.asarray(params["w"], float), np.asarray(params["a"], float)
    b = np.asarray(params["b"], float) if "b" in params else None
    wb = w if b is None else np.concatenate([w, b[:, None]], axis=1)  # (h, n_in [+1])
    norm = np.linalg.norm(wb, axis=1)
    out_vec = (a * norm[None, :]).T  # (h, n_out): Aᵢ
    size = np.linalg.norm(out_vec, axis=1)
    dirs, sums = [], []
    for i in np.argsort(-size):
        if norm[i] == 0 or size[i] == 0:
            continue
        theta = wb[i] / norm[i]
        for g in range(len(dirs)):
            d = dirs[g] / np.linalg.norm(dirs[g])
            if np.linalg.norm(theta - d) <= tol:
                dirs[g] = dirs[g] + size[i] * theta
                sums[g] = sums[g] + out_vec[i]
                break
        else:
            dirs.append(size[i] * theta)
            sums.append(out_vec[i].copy())
    keep = [g for g in range(len(dirs)) if np.linalg.norm(sums[g]) > threshold]
    n_in, n_out = w.shape[1], a.shape[0]
    theta = np.array([dirs[g] / np.linalg.norm(dirs[g]) for g in keep]).reshape(len(keep), wb.shape[1])
    total = np.array([sums[g] for g in keep]).reshape(len(keep), n_out)
    root = np.sqrt(np.linalg.norm(total, axis=1))
    out = {k: v for k, v in params.items() if k not in ("w", "b", "a")}
    out["w"] = theta[:, :n_in] * root[:, None]
    out["a"] = (total / np.where(root > 0, root, 1.0)[:, None]).T
    if b is not None:
        out["b"] = theta[:, n_in] * root
    return out
