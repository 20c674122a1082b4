"""The narrow-network prediction of saddle-to-saddle plateaus, by training narrow nets.

Zhang, Saxe & Latham (arXiv 2512.20607; after Fukumizu & Amari 2000 and
Simsek et al. 2021, arXiv 2105.12221): from small init, gradient descent on a
wide network visits saddles that are optima of narrower networks embedded in
the wide one (extra units silent or merged with live ones); each escape adds
one unit. The k-th plateau loss is therefore predicted to be

    L*_k = min_θ L(θ)  over networks with k units,

the best loss a k-unit network reaches (L*_0 = L at θ = 0). For linear nets
this is the rank-k Eckart-Young loss (``theory.linear``); for ReLU nets in 1-D
it is the best k-breakpoint fit, with no closed form. ``narrow_optimum_losses``
estimates L*_k for any model by training k-unit networks to convergence from
many inits (vmapped) and keeping the best. It lives in ``dynamics``, not
``theory``, because it is computed by training networks (docs/design.md: theory
never simulates); it trains the *narrow* nets only, never the wide net whose
plateaus it predicts.

The best of ``n_inits`` runs is an upper bound on L*_k; it equals L*_k when at
least one run reaches the global optimum, which for the small k used here is
checked by the spread of the sorted losses (``NarrowOptima.losses``).
"""
from __future__ import annotations

from typing import Any, Callable, List, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax


class NarrowOptima(NamedTuple):
    """Best losses of narrow networks.

    widths: (n,) the widths k.
    best_loss: (n,) min over inits of the final loss of a k-unit net.
    losses: list of n arrays (n_inits,): every init's final loss, per width.
    best_aux: list of n pytrees: whatever ``train_narrow`` returned besides the
      loss (e.g. the trained params) for the best init, or None.
    """

    widths: np.ndarray
    best_loss: np.ndarray
    losses: List[np.ndarray]
    best_aux: List[Any]


def narrow_optimum_losses(train_narrow: Callable, widths: Sequence[int], *, n_inits: int, key: jax.Array,
                          traced_width: bool = False) -> NarrowOptima:
    """Estimate L*_k = min loss of a k-unit network for each k in ``widths``.

    Args:
      train_narrow: ``train_narrow(key, k) -> loss`` or ``-> (loss, aux)``:
        build a k-unit network from ``key``, train it to convergence and return
        its final loss (scalar) and optionally anything else (a pytree, e.g.
        its params). ``k`` is a Python int (it fixes shapes); ``key`` is traced:
        the function must be ``jax.vmap``-able over it. ``make_train_narrow``
        builds one from a loss, an init and an optimiser.
      widths: the widths k ≥ 0 to evaluate (k = 0 is allowed if train_narrow
        handles it, e.g. the loss of the zero function).
      n_inits: independent inits per width (vmapped, one compiled program per k).
      key: PRNG key; width k uses ``fold_in(key, k)``, so results for one k do
        not depend on which other widths are asked for.
      traced_width: ``train_narrow`` also accepts ``k`` traced (an int32
        scalar), e.g. by building a max(widths)-unit net whose units ≥ k are
        silent (all their weights 0: a silent unit gets exactly zero gradient,
        so gradient training keeps it silent and the net stays a k-unit net).
        Then every width runs in one compiled program (vmapped over widths and
        inits) instead of one per width, with the same key per width as above.

    Returns:
      NarrowOptima(widths, best_loss, losses, best_aux).
    """
    widths = [int(k) for k in widths]
    if not widths or any(k < 0 for k in widths):
        raise ValueError(f"widths={widths!r} is invalid; allowed: a non-empty sequence of integers ≥ 0")
    if not isinstance(n_inits, (int, np.integer)) or n_inits < 1:
        raise ValueError(f"n_inits={n_inits!r} is invalid; allowed: an integer ≥ 1")
    best, all_losses, best_aux = [], [], []
    keys = [jax.random.split(jax.random.fold_in(key, k), n_inits) for k in widths]
    if traced_width:  # one compile for all widths (compiling dominates at the sizes used here)
        batched = jax.jit(jax.vmap(jax.vmap(train_narrow, in_axes=(0, None))))(jnp.stack(keys), jnp.asarray(widths, jnp.int32))
        outs = [jax.tree_util.tree_map(lambda a, i=i: a[i], batched) for i in range(len(widths))]
    else:
        outs = [jax.jit(jax.vmap(lambda kk, k=k: train_narrow(kk, k)))(ks) for k, ks in zip(widths, keys)]
    for out in outs:
        loss, aux = (out[0], out[1]) if isinstance(out, tuple) else (out, None)
        loss = np.asarray(loss, dtype=float)
        if loss.shape != (n_inits,):
            raise ValueError(f"train_narrow must return a scalar loss (or (loss, aux)); got loss shape {loss.shape[1:]}")
        # A diverged init (NaN/inf) never counts as the optimum.
        i = int(np.argmin(np.where(np.isfinite(loss), loss, np.inf)))
        best.append(loss[i])
        all_losses.append(loss)
        best_aux.append(None if aux is None else jax.tree_util.tree_map(lambda a: np.asarray(a[i]), aux))
    return NarrowOptima(np.asarray(widths), np.asarray(best), all_losses, best_aux)


def make_train_narrow(
    loss_fn: Callable,
    init_narrow: Callable,
    optimizer: optax.GradientTransformation,
    data: Any,
    *,
    n_steps: int,
    return_params: bool = True,
) -> Callable:
    """``train_narrow(key, k)`` for ``narrow_optimum_losses``: full-batch training.

    Args:
      loss_fn: ``loss_fn(params, data) -> scalar`` (e.g. ``model_loss(apply)``).
      init_narrow: ``init_narrow(key, k) -> params`` of a k-unit network. Use an
        O(1) init here (not the small init of the wide run): the aim is the
        optimum of the narrow net, reached from as many basins as possible.
      optimizer: optax optimiser, e.g. Adam with a decaying rate then plain GD.
      data: the training data, passed to loss_fn.
      n_steps: optimiser steps (one ``lax.fori_loop``).
      return_params: also return the trained params as aux.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps={n_steps!r} is invalid; allowed: an integer ≥ 1")

    def train_narrow(key, k):
        params = init_narrow(key, k)
        grad = jax.grad(loss_fn)

        def step(_, carry):
            p, s = carry
            updates, s = optimizer.update(grad(p, data), s, p)
            return optax.apply_updates(p, updates), s

        params, _ = jax.lax.fori_loop(0, n_steps, step, (params, optimizer.init(params)))
        loss = loss_fn(params, data)
        loss = jnp.where(jnp.isfinite(loss), loss, jnp.inf)
        return (loss, params) if return_params else loss

    return train_narrow
