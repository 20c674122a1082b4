"""In-context linear regression (Garg et al. 2022; the setting of Zhang, Singh,
Latham & Saxe, ICML 2025, arXiv 2501.16265).

One sequence: a task vector w ~ N(0, I_D), N context inputs xₙ ~ N(0, Λ) and a
query x_q ~ N(0, Λ), all independent, with Λ = diag(lam) (the paper rotates Λ by
a random orthogonal matrix; the population dynamics are equivariant under that
rotation, so we keep Λ diagonal), targets yₙ = wᵀxₙ + εₙ and y_q = wᵀx_q + ε_q
with εₙ, ε_q ~ N(0, σ²) (σ = ``noise_std``, 0 in the paper).

Token layout (token-major, rows are tokens, as ``x: (batch, in)`` elsewhere in
saddle)::

    tokens: (batch, N+1, D+1),  tokens[b, n] = (xₙ, yₙ) for n < N,
                                tokens[b, N] = (x_q, 0)

i.e. ``tokens[b]`` is the transpose of the paper's Z ∈ R^{(D+1)×(N+1)}.

Population moments. A linear-attention prediction is linear in the features
φ = S ⊗ x_q / N, S = Σ_{all N+1 tokens} z zᵀ = ZZᵀ (see ``models.attention``),
so its exact population loss needs E[y_q²], E[φ y_q] and E[φ φᵀ]; these are
polynomial Gaussian moments (orders ≤ 6), computed here in closed form by
conditioning on w (given w a token (x, y) is Gaussian with covariance
C_w = [[Λ, Λw], [wᵀΛ, wᵀΛw + σ²]]), Wishart second moments for the context sum,
and Isserlis' theorem for the query. ``cubic_feature_moments`` gives the
moments of the paper's cubic feature z = (1/N) Σₙ yₙ xₙ x_qᵀ, the input of the
two-layer network that merged-key-query attention is equivalent to.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def _check(lam, n_context, noise_std=0.0):
    lam = np.asarray(lam, dtype=float)
    if lam.ndim != 1 or lam.size == 0 or np.any(lam <= 0):
        raise ValueError(f"lam must be a non-empty 1-D array of positive eigenvalues of Λ, got {lam!r}")
    if int(n_context) != n_context or n_context < 1:
        raise ValueError(f"n_context must be an integer ≥ 1, got {n_context!r}")
    if noise_std < 0:
        raise ValueError(f"noise_std must be ≥ 0, got {noise_std}")
    return lam, int(n_context)


def sample(key: jax.Array, *, lam, n_context: int, batch: int, noise_std: float = 0.0, dtype=None):
    """Draw ``batch`` sequences; returns ``(tokens, targets)``.

    tokens: (batch, N+1, D+1) in the layout of the module docstring (query's y
    slot is 0); targets: (batch,) the query targets y_q = wᵀx_q + ε_q.
    ``(tokens, targets)`` is the ``data`` of ``dynamics.model_loss(attention.apply)``.
    """
    lam_np, n = _check(lam, n_context, noise_std)
    if batch < 1:
        raise ValueError(f"batch must be ≥ 1, got {batch}")
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    return _sample(key, jnp.sqrt(jnp.asarray(lam_np, dtype)), jnp.asarray(noise_std, dtype), n=n, batch=int(batch))


@functools.partial(jax.jit, static_argnames=("n", "batch"))
def _sample(key, sqrt_lam, noise_std, *, n, batch):
    d, dtype = sqrt_lam.shape[0], sqrt_lam.dtype
    k_w, k_x, k_e = jax.random.split(key, 3)
    w = jax.random.normal(k_w, (batch, d), dtype)
    x = jax.random.normal(k_x, (batch, n + 1, d), dtype) * sqrt_lam
    y = jnp.einsum("bnd,bd->bn", x, w) + noise_std * jax.random.normal(k_e, (batch, n + 1), dtype)
    tokens = jnp.concatenate([x, y[..., None]], axis=-1).at[:, n, d].set(0.0)
    return tokens, y[:, n]


def cubic_features(tokens: jax.Array) -> jax.Array:
    """z = (1/N) Σₙ yₙ xₙ x_qᵀ, shape (batch, D, D) (paper's cubic feature, index order (n-side, query-side))."""
    n = tokens.shape[1] - 1
    ctx = tokens[:, :n]
    xy = jnp.einsum("bn,bnd->bd", ctx[..., -1], ctx[..., :-1]) / n
    return xy[:, :, None] * tokens[:, n, None, :-1]


def _pairings(indices):
    """All perfect matchings of a tuple of positions."""
    if not indices:
        yield ()
        return
    first, rest = indices[0], indices[1:]
    for i, partner in enumerate(rest):
        for others in _pairings(rest[:i] + rest[i + 1:]):
            yield ((first, partner),) + others


def gaussian_moment(cov, order: int) -> np.ndarray:
    """E[x_{i1} ⋯ x_{ik}] for x ~ N(0, cov), as a numpy tensor with k = ``order`` axes of size D.

    Isserlis/Wick: the sum over the (k−1)!! pairings of products of covariances
    (3 terms for k = 4, 15 for k = 6); zero for odd k. Memory D^k.
    """
    cov = np.asarray(cov, dtype=float)
    d = cov.shape[0]
    if order % 2:
        return np.zeros((d,) * order)
    letters = "abcdefghijkl"[:order]
    total = np.zeros((d,) * order)
    for pairing in _pairings(tuple(range(order))):
        spec = ",".join(letters[i] + letters[j] for i, j in pairing) + "->" + letters
        total += np.einsum(spec, *([cov] * len(pairing)))
    return total


class ICLMoments(NamedTuple):
    """Population moments of the features φ_{abc} = S_ab x_{q,c} / N.

    yy: E[y_q²] = tr Λ + σ².
    phi_y: (D+1, D+1, D), E[φ y_q].
    phi_phi: (D+1, D+1, D, D+1, D+1, D), E[φ ⊗ φ].
    Any predictor ŷ = ⟨Γ, φ⟩ has ½E(y_q − ŷ)² = ½ yy − ⟨Γ, phi_y⟩ + ½ ⟨Γ, phi_phi Γ⟩.
    """

    yy: jax.Array
    phi_y: jax.Array
    phi_phi: jax.Array


def population_moments(lam, *, n_context: int, noise_std: float = 0.0, dtype=None,
                       divide_by_n: bool = True) -> ICLMoments:
    """Exact E[y_q²], E[φ y_q], E[φφᵀ] for φ = (ZᵀZ) ⊗ x_q / N (memory O(D⁶); numpy, then jax arrays).

    ``divide_by_n=False``: the moments of φ without the 1/N (linattn-icl's
    attention has none), i.e. phi_y × N and phi_phi × N².

    Derivation (S = S_c + S_q, context sum S_c = Σₙ z̃ₙz̃ₙᵀ, query part
    S_q = B x_q x_qᵀ Bᵀ with B = [I_D; 0]; x_q is independent of (w, context)):
      given w, z̃ₙ ~ N(0, C_w), C_w = C₀ + Σ_d w_d F_d + (wᵀΛw) e eᵀ,
        C₀ = blockdiag(Λ, σ²), F_d = Λ_{:,d} in the y-column and y-row, e = e_D;
      E[S_c] = N C̄, C̄ = blockdiag(Λ, trΛ + σ²);
      E[S_c ⊗ S_c | w] = N² C⊗C + N (C_aa'C_bb' + C_ab'C_ba')   (Wishart),
        E_w[C⊗C] = C₀⊗C₀ + trΛ (C₀⊗eeᵀ + eeᵀ⊗C₀) + Σ_d F_d⊗F_d + ((trΛ)² + 2trΛ²) eeᵀ⊗eeᵀ;
      E[S_c,ab x_c y_q] = N Σ_d (F_d)_ab Λ_cd;  query terms by Isserlis (4th, 6th moments).
    """
    lam_np, n = _check(lam, n_context, noise_std)
    dtype = dtype or jnp.result_type(float)
    d = lam_np.size
    d1 = d + 1
    lam_m = np.diag(lam_np)
    tr, tr2, s2 = lam_np.sum(), (lam_np**2).sum(), float(noise_std) ** 2

    e = np.zeros((d1, d1))
    e[d, d] = 1.0
    c0 = np.zeros((d1, d1))
    c0[:d, :d], c0[d, d] = lam_m, s2
    c_bar = c0 + tr * e
    f = np.zeros((d, d1, d1))  # f[k] = F_k
    f[:, :d, d] = lam_m
    f[:, d, :d] = lam_m

    outer = lambda a, b: np.einsum("ab,cd->abcd", a, b)
    q4 = outer(c0, c0) + tr * (outer(c0, e) + outer(e, c0)) + np.einsum("kab,kcd->abcd", f, f) \
        + (tr**2 + 2.0 * tr2) * outer(e, e)
    ss = n**2 * q4 + n * (np.einsum("acbd->abcd", q4) + np.einsum("adbc->abcd", q4))

    e4 = np.zeros((d1, d1, d, d))
    e4[:d, :d] = gaussian_moment(lam_m, 4)
    e6 = np.zeros((d1, d1, d1, d1, d, d))
    e6[:d, :d, :d, :d] = gaussian_moment(lam_m, 6)

    m2 = (
        np.einsum("abAB,cC->abcABC", ss, lam_m)
        + n * np.einsum("ab,ABcC->abcABC", c_bar, e4)
        + n * np.einsum("AB,abcC->abcABC", c_bar, e4)
        + np.einsum("abABcC->abcABC", e6)
    )
    phi_y = np.einsum("kab,ck->abc", f, lam_m)
    as_j = lambda a: jnp.asarray(a, dtype)
    scale = 1.0 if divide_by_n else float(n)
    return ICLMoments(as_j(tr + s2), as_j(scale * phi_y), as_j(scale**2 * m2 / n**2))


def cubic_feature_moments(lam, *, n_context: int, noise_std: float = 0.0, dtype=None):
    """Moments of the cubic feature z = (1/N) Σₙ yₙ xₙ x_qᵀ: ``(sigma_zz, sigma_yz, yy)``.

    sigma_zz: (D, D, D, D), E[z_ab z_cd] = A_ac Λ_bd with
        A = ((N+1)/N) Λ² + ((trΛ + σ²)/N) Λ;
    sigma_yz: (D, D), E[y_q z] = Λ²;  yy = E[y_q²] = trΛ + σ².
    These are the input covariance and input-output correlation of the
    two-layer linear network that merged-KQ attention is equivalent to
    (arXiv 2501.16265). For diagonal Λ they are diagonal: mode (a, b)
    has input variance A_a λ_b and correlation λ_a² δ_ab.
    """
    lam_np, n = _check(lam, n_context, noise_std)
    dtype = dtype or jnp.result_type(float)
    lam_m = np.diag(lam_np)
    a = np.diag((n + 1) / n * lam_np**2 + (lam_np.sum() + noise_std**2) / n * lam_np)
    as_j = lambda x: jnp.asarray(x, dtype)
    return as_j(np.einsum("ac,bd->abcd", a, lam_m)), as_j(lam_m @ lam_m), as_j(lam_np.sum() + noise_std**2)


def training_set(key: jax.Array, *, lam, n_context: int, size: int, centre: bool = True,
                 noise_std: float = 0.0, dtype=None):
    """A fixed training set of ``size`` sequences drawn as in linattn-icl's ``data.py`` (arXiv 2501.16265 code).

    Returns ``(tokens, targets)`` like ``sample``. With ``centre`` (their data
    pipeline) the draws are normalised over the set before y is formed:
      x ← x − mean over sequences (separately per token position and coordinate),
      w ← (w − w̄) C^{−1/2},  C = the unbiased sample covariance of w over the set
    (``torch.cov``; C^{−1/2} symmetric, from its eigendecomposition), so the
    task vectors of the set have mean 0 and covariance exactly I_D; then
    yₙ = wᵀxₙ (+ ε). Their Λ is rotated by a random orthogonal matrix; the set's
    distribution is equivariant under that rotation, so Λ stays diagonal here.
    Needs size ≥ D + 2 (C invertible).
    """
    lam_np, n = _check(lam, n_context, noise_std)
    if int(size) != size or size < lam_np.size + 2:
        raise ValueError(f"size must be an integer ≥ D + 2 = {lam_np.size + 2}, got {size!r}")
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    return _training_set(key, jnp.sqrt(jnp.asarray(lam_np, dtype)), jnp.asarray(noise_std, dtype), n=n,
                         size=int(size), centre=bool(centre))


@functools.partial(jax.jit, static_argnames=("n", "size", "centre"))
def _training_set(key, sqrt_lam, noise_std, *, n, size, centre):
    d, dtype = sqrt_lam.shape[0], sqrt_lam.dtype
    k_w, k_x, k_e = jax.random.split(key, 3)
    w = jax.random.normal(k_w, (size, d), dtype)
    x = jax.random.normal(k_x, (size, n + 1, d), dtype) * sqrt_lam
    if centre:
        x = x - x.mean(axis=0, keepdims=True)
        w = w - w.mean(axis=0, keepdims=True)
        evals, evecs = jnp.linalg.eigh(w.T @ w / (size - 1))
        w = w @ (evecs / jnp.sqrt(evals)) @ evecs.T
    y = jnp.einsum("bnd,bd->bn", x, w) + noise_std * jax.random.normal(k_e, (size, n + 1), dtype)
    tokens = jnp.concatenate([x, y[..., None]], axis=-1).at[:, n, d].set(0.0)
    return tokens, y[:, n]


def empirical_moments(tokens: jax.Array, targets: jax.Array, *, divide_by_n: bool = True) -> ICLMoments:
    """``ICLMoments`` of a finite set: the sample means of y_q², φ y_q and φ ⊗ φ.

    tokens: (P, N+1, D+1), targets: (P,). φ = S ⊗ x_q / N as in
    ``population_moments`` (without the /N when ``divide_by_n`` is false). The
    loss is quadratic in Γ, so ``models.attention.population_loss(params,
    empirical_moments(tokens, targets))`` equals the sample loss
    ½ mean (y_q − ŷ)² exactly: GD on it is full-batch GD on the training set at
    a cost independent of P (linattn-icl trains full-batch).
    """
    p, n1, d1 = tokens.shape
    n = n1 - 1
    s = jnp.einsum("bni,bnj->bij", tokens, tokens)
    phi = jnp.einsum("bij,bk->bijk", s, tokens[:, n, :-1]) / (n if divide_by_n else 1)
    flat = phi.reshape(p, -1)
    shape = (d1, d1, d1 - 1)
    return ICLMoments(jnp.mean(targets**2), jnp.einsum("bi,b->i", flat, targets).reshape(shape) / p,
                      (flat.T @ flat / p).reshape(shape + shape))
