"""Online learning one episode at a time (RL students: ``models.rl_perceptron``).

``run_episodes`` applies ``episode(state, key) -> state`` n_records × every times under
``lax.scan``, each episode with its own key (``jax.random.fold_in`` of the episode index), and
records ``observe(state)`` at episodes 0, every, 2·every, ... Online-learning time is
α = episodes / N (the order-parameter ODEs' clock), which the caller computes from the
returned episode counts. Pure: vmap it over keys for seeds.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class EpisodeRecord(NamedTuple):
    episodes: jnp.ndarray   # (n_records + 1,) episode counts at the records
    observed: object        # pytree of (n_records + 1, ...) arrays from observe
    final: object           # the state after the last episode


def run_episodes(episode: Callable, state, key, *, n_records: int, every: int, observe: Callable,
                 start: int = 0) -> EpisodeRecord:
    """``episode`` applied n_records·every times from ``state``; observe(state) before the first
    and after every ``every`` episodes. ``start`` offsets the episode index used to fold the key
    (so a second phase run from the same key draws fresh inputs). ``every`` and ``start`` may be
    traced (e.g. vmapped over cells with different horizons); n_records sets the shapes."""
    if n_records < 1 or (isinstance(every, int) and every < 0):
        raise ValueError(f"n_records={n_records!r}, every={every!r} are invalid; allowed: n_records ≥ 1, every ≥ 0")

    def block(s, i):
        def one(j, s):
            return episode(s, jax.random.fold_in(key, start + i * every + j))
        s = jax.lax.fori_loop(0, every, one, s)
        return s, observe(s)

    final, obs = jax.lax.scan(block, state, jnp.arange(n_records))
    obs = jax.tree_util.tree_map(lambda a0, a: jnp.concatenate([jnp.asarray(a0)[None], a]), observe(state), obs)
    return EpisodeRecord(start + every * jnp.arange(n_records + 1), obs, final)
