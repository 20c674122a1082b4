"""Gradient descent and minibatch SGD: an optax update inside ``jax.lax.scan``.

Step k sits at time t = k; with ``optax.sgd(η)`` this is the Euler
discretisation of τ dθ/dt = −∂L/∂θ with τ = 1/η (DESIGN.md).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from dynamics.trajectory import Trajectory, no_stats


def _segment_lengths(record_steps):
    if isinstance(record_steps, jax.core.Tracer):
        # Traced steps (e.g. round(t/η) for a swept η): lengths only; the caller
        # guarantees they increase. fori_loop then runs a while loop per segment.
        steps = jnp.asarray(record_steps)
        return jnp.diff(steps, prepend=jnp.zeros((1,), steps.dtype))
    given = np.asarray(record_steps)
    if given.dtype == bool or not (np.issubdtype(given.dtype, np.integer) or np.issubdtype(given.dtype, np.floating)):
        raise ValueError(f"record_steps={record_steps!r} is invalid; allowed: integer step indices")
    if np.issubdtype(given.dtype, np.floating) and not np.all(np.isfinite(given) & (given == np.round(given))):
        # a fractional step would be truncated silently, shifting the recorded times
        raise ValueError(f"record_steps={record_steps!r} is invalid; allowed: integer step indices "
                         f"(round them, e.g. np.round(t / learning_rate).astype(int))")
    steps = given.astype(np.int64)
    if steps.ndim != 1 or steps.size == 0 or steps[0] < 0 or np.any(np.diff(steps) <= 0):
        raise ValueError(f"record_steps must be a non-empty increasing sequence of steps ≥ 0, got {record_steps!r}")
    return np.diff(np.concatenate([[0], steps]))


def _make_advance(loss_fn: Callable, optimizer: optax.GradientTransformation, batch_size: Optional[int]):
    """(carry, n, data) -> carry after n optimiser steps; carry = (params, opt_state, key)."""

    def advance(carry, n_steps, data):
        n_data = None if batch_size is None else jax.tree_util.tree_leaves(data)[0].shape[0]
        return jax.lax.fori_loop(0, n_steps, lambda i, c: step(i, c, data, n_data), carry)

    def step(_, carry, data, n_data):
        params, opt_state, key = carry
        if batch_size is None:
            batch = data
        else:
            key, sub = jax.random.split(key)
            idx = jax.random.randint(sub, (batch_size,), 0, n_data)
            batch = jax.tree_util.tree_map(lambda a: a[idx], data)
        grads = jax.grad(loss_fn)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key

    return advance


def descend(
    loss_fn: Callable,
    params: Any,
    optimizer: optax.GradientTransformation,
    data: Any,
    *,
    record_steps,
    batch_size: Optional[int] = None,
    key: Optional[jax.Array] = None,
    observe: Callable = no_stats,
    progress: bool = False,
) -> Trajectory:
    """Run an optax optimiser and record loss and ``observe(params)`` at ``record_steps``.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``, e.g. ``model_loss(apply)``;
        any pytree params work (our models, or a flax module's ``apply`` + params).
      params: initial parameters.
      optimizer: e.g. ``optax.sgd(eta)`` for plain GD.
      data: pytree whose leaves have leading axis P (or any pytree the loss
        reads, e.g. population statistics, when ``batch_size`` is None).
      record_steps: increasing step indices (e.g. ``log_steps``); the state
        after k updates is recorded at entry k.
      batch_size: None for full-batch GD; else SGD with minibatches drawn
        uniformly with replacement each step (needs ``key``).
      observe: ``params -> pytree`` of statistics to record (e.g. mode strengths).
      progress: show a tqdm bar (runs the recording segments from Python, one
        compiled segment each); otherwise one ``lax.scan``, usable under ``jax.vmap``.

    Returns:
      Trajectory with t = record_steps (float), the full-data loss, the stats.
    """
    if batch_size is not None:
        if key is None:
            raise ValueError("SGD (batch_size set) needs a PRNG key")
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    key = jax.random.key(0) if key is None else key
    segments = _segment_lengths(record_steps)
    advance = _make_advance(loss_fn, optimizer, batch_size)

    # data enters every compiled program as an argument, never as a closed-over
    # constant: XLA would otherwise embed (and try to constant-fold) a large
    # data set, which takes minutes for ~1e5 sequences.
    def record(carry, n_steps, data):
        carry = advance(carry, n_steps, data)
        return carry, (loss_fn(carry[0], data), observe(carry[0]))

    carry = (params, optimizer.init(params), key)
    if progress:
        record_jit = jax.jit(record)
        outs = []
        # leave=None: the finished bar stays when it is the only one, and makes room
        # when it runs inside an experiment's stage bar.
        with tqdm(total=int(np.sum(segments)), desc="gradient descent", unit="step", leave=None) as bar:
            for n in segments:
                carry, out = record_jit(carry, jnp.asarray(n), data)
                # Dispatch is asynchronous: without waiting, the loop would queue every
                # segment at once and the bar would jump from 0 to the end. Waiting per
                # segment costs a few µs of sync; the steps themselves dominate.
                jax.block_until_ready(out)
                outs.append(out)
                bar.update(int(n))
        losses, stats = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *outs)
    else:
        scan = jax.jit(lambda c, segs, d: jax.lax.scan(lambda ci, n: record(ci, n, d), c, segs))
        carry, (losses, stats) = scan(carry, jnp.asarray(segments), data)
    t = jnp.cumsum(jnp.asarray(segments)).astype(losses.dtype)
    return Trajectory(t, losses, stats, carry[0])
