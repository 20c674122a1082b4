"""Learning a semantic hierarchy with a deep linear network (Saxe, McClelland &
Ganguli 2019, PNAS 116:11537, "A mathematical theory of semantic development in
deep neural networks", arXiv 1810.10531).

Task (``tasks.hierarchy``): the P = 2^D items are the leaves of a binary tree of
depth D. Every feature is a branching diffusion: the root is ±1 with equal
probability and each of the D edges on the way down flips the sign with
probability ε. Inputs are one-hot, so Σxx = I/P and Σyx = Yᵀ/P, Y: (P, N).

Spectrum. With θ = 1 − 2ε and q = θ², two leaves whose common ancestor sits k
levels above them agree in expectation as E[y_i y_j] = θ^{2k} (the 2k flips on
the path between them), so the item correlation matrix is

    C = E[Y Yᵀ]/N,   C_ij = q^{k(i,j)}.

C is a sum of block-constant matrices, C = Σ_{m=0}^{D} w_m B_m with B_m the
indicator "same node at level m" (blocks of 2^{D−m} leaves), w_0 = q^D and
w_m = q^{D−m}(1 − q) for m ≥ 1. The Haar-like tree modes diagonalise every B_m:
the level-0 mode is uniform over all items; a level-ℓ mode (ℓ ≥ 1) is +1 on one
child subtree of a node at level ℓ − 1 and −1 on the other (2^{ℓ−1} of them).
B_m maps a level-ℓ mode to 2^{D−m} times itself if m ≥ ℓ and to 0 if m < ℓ, so

    λ_ℓ = (1 − q) Σ_{j=0}^{D−ℓ} (2q)^j                    (ℓ ≥ 1, multiplicity 2^{ℓ−1})
    λ_0 = (2q)^D + (1 − q) Σ_{j=0}^{D−1} (2q)^j          (multiplicity 1)

(Σ_ℓ mult_ℓ λ_ℓ = tr C = P). The singular values of Σyx = Yᵀ/P are the square
roots of the eigenvalues of Σyxᵀ Σyx = Y Yᵀ/P² ≈ N C/P², so in the many-feature
limit the level-ℓ singular value is

    s_ℓ = √(N λ_ℓ) / P,

decreasing with ℓ: broad distinctions are the strongest modes (Saxe et al. 2019,
"Hierarchical structure" and SI: the object analyzers of a hierarchy are
wavelets on the tree). The right singular vectors are the tree modes.

Dynamics. A two-layer net from a small balanced init aligned with the modes
(``models.linear.init_aligned``) has W = Σ_α u_α(t) a_α b_αᵀ with u_α the
logistic of ``theory.linear.mode_strength`` at s = s_α and input variance
λ_x = 1/P (one-hot items), so u_α → P s_α. Hence, with g_α = u_α(t)/(P s_α)
(the fraction of mode α learned) and a_α P s_α = Yᵀ b_α,

    ŷ(t) = Σ_α g_α(t) Yᵀ b_α b_αᵀ           (features × items)
    H Hᵀ = W1ᵀ W1 = Σ_α u_α(t) b_α b_αᵀ       (item × item hidden similarity),

because balanced aligned weights are W1 = R diag(√u) Bᵀ. In tree terms ŷ_i(t) ≈
Σ_ℓ g_ℓ(t) (m_ℓ(i) − m_{ℓ−1}(i)), m_ℓ(i) the feature's mean over i's ancestor at
level ℓ: the prediction walks through the category means from broad to fine
(progressive differentiation), and where a broad category's mean has the
opposite sign of the item's own value the prediction first moves the wrong way
and comes back (an illusory correlation).

Conventions: loss (1/2P) Σ_μ ‖y_μ − ŷ(x_μ)‖², τ dW/dt = −∂L/∂W (docs/design.md).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from theory.linear import mode_strength, mode_time


class LevelSpectrum(NamedTuple):
    """Σyx singular values of the hierarchy task, one entry per tree level.

    values: (D+1,) s_ℓ, level 0 (root split, all items) first, descending.
    multiplicities: (D+1,) ints 1, 1, 2, 4, ..., 2^{D−1} (they sum to P = 2^D).
    levels: (D+1,) ints 0, 1, ..., D.
    """

    values: jax.Array
    multiplicities: jax.Array
    levels: jax.Array


# ----------------------------------------------------------------- checks

def _check_depth(depth) -> int:
    if isinstance(depth, bool) or int(depth) != depth or depth < 1:
        raise ValueError(f"depth={depth!r} is invalid; allowed: an integer ≥ 1 (static, it fixes P = 2^depth)")
    return int(depth)


def _check_range(name, value, lo, hi, allowed):
    """Check a concrete scalar (traced values pass through unchecked)."""
    if isinstance(value, jax.core.Tracer):
        return
    v = float(value)
    if not lo <= v <= hi:
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")


def _check_flip(flip_prob):
    _check_range("flip_prob", flip_prob, 0.0, 0.5, "a number in [0, 0.5]")


def _check_features(n_features):
    _check_range("n_features", n_features, 1.0, float("inf"), "a number ≥ 1")


# ------------------------------------------------------------- structure

# The tree's structure depends on the (static) depth only: built with numpy and
# returned as constants, so it costs no compilation and is free under jit.

def _np_levels(depth: int) -> np.ndarray:
    return np.concatenate([[0]] + [np.full(2 ** (l - 1), l) for l in range(1, depth + 1)])


def _np_modes(depth: int) -> np.ndarray:
    p = 2**depth
    items = np.arange(p)
    cols = [np.full((p, 1), 1.0 / np.sqrt(p))]
    for level in range(1, depth + 1):
        inside = (items[:, None] >> (depth - level + 1)) == np.arange(2 ** (level - 1))[None, :]
        sign = 1.0 - 2.0 * ((items >> (depth - level)) & 1)
        cols.append(np.where(inside, sign[:, None], 0.0) / np.sqrt(2.0 ** (depth - level + 1)))
    return np.concatenate(cols, axis=1)


def _np_projectors(depth: int) -> np.ndarray:
    b, levels = _np_modes(depth), _np_levels(depth)
    return np.stack([b[:, levels == l] @ b[:, levels == l].T for l in range(depth + 1)])


def _np_distance(depth: int) -> np.ndarray:
    items = np.arange(2**depth)
    x = items[:, None] ^ items[None, :]
    return np.sum((x[..., None] >> np.arange(depth)) > 0, axis=-1)


def tree_levels(depth: int) -> jax.Array:
    """(P,) level of each tree mode in the column order of ``tree_modes``: 0, 1, 2, 2, 3, 3, 3, 3, ...

    The levels of the hierarchy's SVD modes (Saxe, McClelland & Ganguli 2019, arXiv 1810.10531:
    one mode per branching node, broad distinctions at low levels)."""
    return jnp.asarray(_np_levels(_check_depth(depth)))


def tree_modes(depth: int, dtype=None) -> jax.Array:
    """(P, P) orthonormal Haar-like tree modes, columns ordered by level (``tree_levels``).

    Column 0 is 1/√P on every item. For level ℓ ≥ 1 and node n at level ℓ − 1
    (items i with i >> (D − ℓ + 1) = n), the mode is ±1/√(2^{D−ℓ+1}) on that
    node's leaves: + on its first child (bit D − ℓ of i is 0), − on the second;
    the eigenvectors of the item correlation matrix (Saxe et al. 2019,
    arXiv 1810.10531, hierarchical structure: the object analyzers are tree wavelets).
    """
    return jnp.asarray(_np_modes(_check_depth(depth)), dtype or jnp.result_type(float))


def level_projectors(depth: int, dtype=None) -> jax.Array:
    """(D+1, P, P) orthogonal projectors Π_ℓ = Σ_{modes α of level ℓ} b_α b_αᵀ; Σ_ℓ Π_ℓ = I.

    Modes of one level share a singular value in the tree of arXiv 1810.10531 (Saxe et al. 2019),
    so the learned similarity is a sum over levels of these projectors (our bookkeeping)."""
    return jnp.asarray(_np_projectors(_check_depth(depth)), dtype or jnp.result_type(float))


def common_ancestor_distance(depth: int) -> jax.Array:
    """(P, P) ints k(i, j): levels from leaves i, j up to their common ancestor (0 on the diagonal).

    Leaves i and j share the node at level m iff i >> (D − m) = j >> (D − m), so
    k is the bit length of i XOR j (our bookkeeping for the tree of arXiv 1810.10531).
    """
    return jnp.asarray(_np_distance(_check_depth(depth)))


def item_correlation(*, depth: int, flip_prob) -> jax.Array:
    """(P, P) expected item correlation C = E[Y Yᵀ]/N, C_ij = (1 − 2ε)^{2 k(i,j)}.

    The 2k(i, j) edges between leaves i and j each flip independently with
    probability ε, and E[product of the flip signs] = (1 − 2ε)^{2k} (Saxe et al.
    2019, arXiv 1810.10531, branching diffusion generative model).
    """
    depth = _check_depth(depth)
    _check_flip(flip_prob)
    theta = 1.0 - 2.0 * jnp.asarray(flip_prob, jnp.result_type(float))
    return theta ** (2 * _np_distance(depth)).astype(theta.dtype)


def correlation_eigenvalues(*, depth: int, flip_prob) -> jax.Array:
    """(D+1,) eigenvalue λ_ℓ of C per tree level (module docstring):

        λ_ℓ = (1 − q) Σ_{j=0}^{D−ℓ} (2q)^j  (ℓ ≥ 1),   λ_0 = (2q)^D + λ_1,   q = (1 − 2ε)².

    The geometric sums are summed term by term (no division by 2q − 1, which
    vanishes at ε = (1 − 1/√2)/2). Saxe et al. 2019, arXiv 1810.10531.
    """
    depth = _check_depth(depth)
    _check_flip(flip_prob)
    return _eigenvalues(depth, jnp.asarray(flip_prob, jnp.result_type(float)))


@functools.partial(jax.jit, static_argnums=0)
def _eigenvalues(depth, flip_prob):
    q = (1.0 - 2.0 * flip_prob) ** 2
    partial = jnp.cumsum((2.0 * q) ** jnp.arange(depth, dtype=q.dtype))  # partial[n] = Σ_{j=0}^{n} (2q)^j
    lam_fine = (1.0 - q) * partial[::-1]  # levels 1..D: Σ up to D − ℓ
    return jnp.concatenate([((2.0 * q) ** depth + lam_fine[0])[None], lam_fine])


def singular_values(*, depth: int, flip_prob, n_features) -> LevelSpectrum:
    """Σyx singular values per tree level in the many-feature limit:

        s_ℓ = √(N λ_ℓ) / P,   multiplicity 1 (ℓ = 0) and 2^{ℓ−1} (ℓ ≥ 1),

    where Σyx = YᵀX/P = Yᵀ/P (X = I, P = 2^D items), Σyxᵀ Σyx = Y Yᵀ/P² and
    E[Y Yᵀ] = N C (``correlation_eigenvalues``). A sample with N features has
    singular values within O(s_ℓ/√N) of these (``singular_value_std``).
    Saxe, McClelland & Ganguli 2019, arXiv 1810.10531.

    Args:
      depth: D ≥ 1 (static). flip_prob: ε ∈ [0, 1/2]. n_features: N ≥ 1.
    Returns:
      LevelSpectrum(values (D+1,), multiplicities (D+1,), levels (D+1,)).
    """
    depth = _check_depth(depth)
    _check_features(n_features)
    lam = correlation_eigenvalues(depth=depth, flip_prob=flip_prob)
    values = jnp.sqrt(jnp.asarray(n_features, lam.dtype) * lam) / 2**depth
    levels = np.arange(depth + 1)
    mult = np.where(levels == 0, 1, 2 ** np.maximum(levels - 1, 0))
    return LevelSpectrum(values, jnp.asarray(mult), jnp.asarray(levels))


# ------------------------------------------------------ sampling fluctuations

@functools.lru_cache(maxsize=16)
def _np_fourth_moment_polynomial(depth: int) -> np.ndarray:
    """(D+1, 4D+1) coefficients A with E[(yᵀ Π_ℓ y)²] = Σ_n A[ℓ, n] θ^n, θ = 1 − 2ε.

    The product y_i y_j y_k y_l is the root sign to the 4th power times every
    edge flip lying above an odd number of the four leaves, so
    E[y_i y_j y_k y_l] = θ^{n(i,j,k,l)}, n = #edges with an odd count. The edges
    into level m are the nodes a = leaf >> (D − m); among four nodes, those
    with odd multiplicity hold one leaf (c1 positions) or three (c3 positions),
    so they number c1 + c3/3. A collects Σ_{ijkl} Π_ij Π_kl by exponent.
    """
    p, n_max = 2**depth, 4 * depth
    proj = _np_projectors(depth)
    idx = np.arange(p)
    coef = np.zeros((depth + 1, n_max + 1))
    for i in range(p):
        leaves = [np.full((1, 1, 1), i), idx[:, None, None], idx[None, :, None], idx[None, None, :]]
        n_odd = np.zeros((p, p, p), dtype=np.int64)
        for m in range(1, depth + 1):
            nodes = [x >> (depth - m) for x in leaves]
            counts = [sum((a == b).astype(np.int64) for b in nodes) for a in nodes]
            n_odd += sum((c == 1).astype(np.int64) for c in counts) + sum((c == 3).astype(np.int64) for c in counts) // 3
        for level in range(depth + 1):
            weight = proj[level, i, :, None, None] * proj[level][None, :, :]
            coef[level] += np.bincount(n_odd.ravel(), weights=weight.ravel(), minlength=n_max + 1)
    coef.setflags(write=False)
    return coef


def singular_value_std(*, depth: int, flip_prob, n_features) -> jax.Array:
    """(D+1,) standard deviation of a sampled level's RMS singular value.

    A sample of N features has Ĉ = Y Yᵀ/N. To first order in Ĉ − C, the
    eigenvalues of Ĉ in level ℓ's group (the mult_ℓ values after sorting) sum to
    tr(Π_ℓ Ĉ) = (1/N) Σ_f y_fᵀ Π_ℓ y_f, an average of N i.i.d. terms, so the
    level mean λ̂_ℓ has

        Var λ̂_ℓ = (E[(yᵀ Π_ℓ y)²] − (mult_ℓ λ_ℓ)²) / (mult_ℓ² N),

    with the exact four-point function E[y_i y_j y_k y_l] = θ^{#edges above an
    odd number of i, j, k, l} of the branching diffusion (θ = 1 − 2ε). The level's
    RMS singular value ŝ_ℓ = √(N λ̂_ℓ)/P then has std s_ℓ · std(λ̂_ℓ)/(2λ_ℓ).
    Second-order terms are O(1/N) relative, smaller by another 1/√N, provided
    the level gaps λ_ℓ − λ_{ℓ+1} are many std apart (else sorting mixes levels).
    The four-point sums are a polynomial in θ whose coefficients are counted
    once per depth in numpy (O(P⁴) work, cached); Saxe et al. 2019, arXiv 1810.10531.
    """
    depth = _check_depth(depth)
    _check_flip(flip_prob)
    _check_features(n_features)
    dtype = jnp.result_type(float)
    return _singular_value_std(depth, jnp.asarray(flip_prob, dtype), jnp.asarray(n_features, dtype))


@functools.partial(jax.jit, static_argnums=0)
def _singular_value_std(depth, flip_prob, n_features):
    theta = 1.0 - 2.0 * flip_prob
    coef = jnp.asarray(_np_fourth_moment_polynomial(depth), flip_prob.dtype)
    e_q2 = coef @ theta ** jnp.arange(coef.shape[1], dtype=theta.dtype)  # E[(yᵀ Π_ℓ y)²]
    lam = _eigenvalues(depth, flip_prob)
    mult = jnp.asarray(np.where(np.arange(depth + 1) == 0, 1, 2 ** np.maximum(np.arange(depth + 1) - 1, 0)), flip_prob.dtype)
    var_lam = (e_q2 - (mult * lam) ** 2) / (mult**2 * n_features)
    values = jnp.sqrt(n_features * lam) / 2**depth
    return values * jnp.sqrt(jnp.maximum(var_lam, 0.0)) / (2.0 * lam)


# ---------------------------------------------------------------- dynamics

def level_learning_times(*, depth: int, flip_prob, n_features, u0, tau=1.0) -> jax.Array:
    """(D+1,) population half-learning time of each tree level:

        t_ℓ = (τ / 2s_ℓ) ln[ u_f (s_ℓ − λ u0) / (u0 (s_ℓ − λ u_f)) ],  u_f = P s_ℓ/2, λ = 1/P,

    ``theory.linear.mode_time`` (Saxe et al. 2014, arXiv 1312.6120, Eq. 9) at the
    level's singular value (``singular_values``): a two-layer net from a small
    aligned init (strength u0 < P s_ℓ/2) learns broad levels first, t_ℓ ≈
    (τ/2s_ℓ) ln(P s_ℓ/u0) (Saxe et al. 2019, arXiv 1810.10531).
    """
    values = singular_values(depth=depth, flip_prob=flip_prob, n_features=n_features).values
    p = 2**depth
    return mode_time(u0, p * values / 2, s=values, tau=tau, lam_x=1.0 / p)



def _strengths(t, s, u0, tau, n_items):
    """(..., r) u_α(t) of a two-layer aligned net on one-hot items (λ_x = 1/P)."""
    return mode_strength(jnp.asarray(t)[..., None], s=s, u0=u0, tau=tau, lam_x=1.0 / n_items)


@jax.jit
def hidden_similarity(t, *, s, modes, u0, tau=1.0):
    """(..., P, P) item × item similarity H Hᵀ of the hidden representations h_i = W1 x_i:

        H Hᵀ = W1ᵀ W1 = Σ_α u_α(t) b_α b_αᵀ,

    for a balanced two-layer net aligned with the modes (W1 = R diag(√u) Bᵀ);
    u_α(t) = ``theory.linear.mode_strength`` with λ_x = 1/P (Saxe et al. 2019,
    arXiv 1810.10531, progressive differentiation; Saxe et al. 2014, 1312.6120,
    Eq. 8). s: (r,) singular values of Σyx; modes: (P, r) right singular
    vectors b_α (use ``tree_modes`` with s repeated per level for the
    population version); u0: initial strength(s); t broadcasts as leading axes.
    """
    s, modes = jnp.asarray(s), jnp.asarray(modes)
    u = _strengths(t, s, u0, tau, modes.shape[0])
    return jnp.einsum("ia,...a,ja->...ij", modes, u, modes)


@jax.jit
def predictions(t, *, s, modes, y, u0, tau=1.0):
    """(..., P, F) network outputs ŷ_{i f}(t) for every item i and the features in y:

        ŷ(t) = Σ_α [u_α(t) / (P s_α)] b_α b_αᵀ Y      (items × features),

    because the aligned net is W = Σ_α u_α a_α b_αᵀ and Σyx b_α = s_α a_α with
    Σyx = Yᵀ/P, i.e. a_α = Yᵀ b_α/(P s_α). At t → ∞, u_α → P s_α and ŷ → Y. y: (P, F), any subset of the task's
    feature columns (the formula is column by column); s, modes: the task's full
    SVD (r modes, r = rank). Saxe et al. 2019, arXiv 1810.10531 (illusory
    correlations); u_α from Saxe et al. 2014, arXiv 1312.6120, Eq. 8.
    """
    s, modes, y = jnp.asarray(s), jnp.asarray(modes), jnp.asarray(y)
    p = modes.shape[0]
    frac = _strengths(t, s, u0, tau, p) / (p * s)
    return jnp.einsum("ia,...a,ja,jf->...if", modes, frac, modes, y)


class Illusion(NamedTuple):
    """Wrong-way excursion of each prediction (see ``illusory_correlations``).

    excursion: (P, F) max_t −sign(y_if) ŷ_if(t) (> 0: the prediction crossed to
    the opposite sign of the item's true value before settling on it).
    peak_index: (P, F) index into t of that extremum.
    """

    excursion: jax.Array
    peak_index: jax.Array


@jax.jit
def illusory_correlations(t, *, s, modes, y, u0, tau=1.0) -> Illusion:
    """Illusory correlations on a time grid t: (T,), from ``predictions``.

    excursion_if = max_t [−sign(y_if) ŷ_if(t)]. From a small init ŷ(0) ≈ 0, so a
    positive excursion means the network first predicts the value of a broad
    category the item does not share, then unlearns it (Saxe et al. 2019,
    arXiv 1810.10531, "illusory correlations" between developmental transitions).
    """
    y = jnp.asarray(y)
    wrong_way = -jnp.sign(y) * predictions(t, s=s, modes=modes, y=y, u0=u0, tau=tau)
    return Illusion(jnp.max(wrong_way, axis=0), jnp.argmax(wrong_way, axis=0))
