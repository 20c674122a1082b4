"""Gradient descent and minibatch SGD: an optax update inside ``jax.lax.scan``.

Step k sits at time t = k; with ``optax.sgd(η)`` this is the Euler
discretisation of τ dθ/dt = −∂L/∂θ with τ = 1/η (docs/design.md).
"""
from __future__ import annotations

import inspect
import warnings
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


class Float32ParamsWarning(UserWarning):
    """descend got float32 params while jax_enable_x64 is on (see ``descend``)."""


_warned_float32 = False


def _warn_float32(params) -> None:
    """Warn once per process: float32 params under x64 train in float32 (data and
    theory may be float64), so a comparison with float64 theory is limited to ~1e-7."""
    global _warned_float32
    if _warned_float32 or not jax.config.jax_enable_x64:
        return
    if any(getattr(a, "dtype", None) == jnp.float32 for a in jax.tree_util.tree_leaves(params)):
        _warned_float32 = True
        warnings.warn("descend: params are float32 while jax_enable_x64 is on (a flax module's default); they train "
                      "in float32. Cast them for float64 dynamics: jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), "
                      "params)", Float32ParamsWarning, stacklevel=3)


def _observer_keywords(observe: Callable) -> tuple:
    """Which of ``step``, ``grads`` an observer asks for by naming them as keyword-only parameters."""
    try:
        sig = inspect.signature(observe)
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return ()
    return tuple(name for name in ("step", "grads")
                 if name in sig.parameters and sig.parameters[name].kind == inspect.Parameter.KEYWORD_ONLY)


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
    keep_params: bool = False,
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
        It may also declare keyword-only parameters ``step`` and/or ``grads``,
        ``observe(params, *, step, grads)``: it then receives the number of
        updates done (an int array, = t) and the full-data gradient
        ∂L/∂θ(params) at that recording (computed only when asked for).
        Plain ``observe(params)`` callables work unchanged.
      keep_params: also keep the params at every record step in
        ``Trajectory.history`` (each leaf with leading axis T; memory T × params).
      progress: show a tqdm bar (runs the recording segments from Python, one
        compiled segment each); otherwise one ``lax.scan``, usable under ``jax.vmap``.

    Returns:
      Trajectory with t = record_steps (float), the full-data loss, the stats,
      the final params and (``keep_params``) the params at every record step.
      Save it with ``dynamics.trajectory.save(path, traj)``.

    Precision: with ``jax_enable_x64`` on, float32 params (a flax module's
    default) still train in float32; descend warns once per process
    (``Float32ParamsWarning``) and does not cast: cast the params yourself
    (``jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)``) to
    compare with float64 theory, or silence the warning to keep float32.
    """
    if batch_size is not None:
        if key is None:
            raise ValueError("SGD (batch_size set) needs a PRNG key")
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    key = jax.random.key(0) if key is None else key
    segments = _segment_lengths(record_steps)
    _warn_float32(params)
    wanted = _observer_keywords(observe)
    advance = _make_advance(loss_fn, optimizer, batch_size)

    # data enters every compiled program as an argument, never as a closed-over
    # constant: XLA would otherwise embed (and try to constant-fold) a large
    # data set, which takes minutes for ~1e5 sequences.
    def record(carry, n_steps, step, data):
        carry = advance(carry, n_steps, data)
        p = carry[0]
        extra = {}
        if "step" in wanted:
            extra["step"] = step
        if "grads" in wanted:
            extra["grads"] = jax.grad(loss_fn)(p, data)
        return carry, (loss_fn(p, data), observe(p, **extra), p if keep_params else None)

    carry = (params, optimizer.init(params), key)
    steps = jnp.cumsum(jnp.asarray(segments))
    if progress:
        record_jit = jax.jit(record)
        outs = []
        # leave=None: the finished bar stays when it is the only one, and makes room
        # when it runs inside an experiment's stage bar.
        with tqdm(total=int(np.sum(segments)), desc="gradient descent", unit="step", leave=None) as bar:
            for n, k in zip(segments, steps):
                carry, out = record_jit(carry, jnp.asarray(n), k, data)
                # Dispatch is asynchronous: without waiting, the loop would queue every
                # segment at once and the bar would jump from 0 to the end. Waiting per
                # segment costs a few µs of sync; the steps themselves dominate.
                jax.block_until_ready(out)
                outs.append(out)
                bar.update(int(n))
        losses, stats, history = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *outs)
    else:
        scan = jax.jit(lambda c, segs, ks, d: jax.lax.scan(lambda ci, nk: record(ci, nk[0], nk[1], d), c, (segs, ks)))
        carry, (losses, stats, history) = scan(carry, jnp.asarray(segments), steps, data)
    t = steps.astype(losses.dtype)
    return Trajectory(t, losses, stats, carry[0], history)
