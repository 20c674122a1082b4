"""JAX's persistent compilation cache for the ``saddle`` CLI.

Every ``saddle run``/``verify``/``sweep`` process compiles its XLA programs
from scratch; with the cache on, a compiled program is written to disk and
later processes that build the same program (same shapes, dtypes, flags and
jax/jaxlib version) load it instead of compiling it again.

Directory: ``$SADDLE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/saddle/jax``,
else ``~/.cache/saddle/jax``. On by default in the CLI; off with
``saddle --no-cache ...`` or ``SADDLE_NO_CACHE=1``. The library itself never
turns it on (importing ``dynamics`` or ``models`` leaves JAX's config alone).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

# Cache every program, however fast it compiles: a run builds ~100 small
# programs (eager ops, theory helpers) at 0.01-0.1 s each, and loading them
# beats compiling them. `saddle run saxe-modes --smoke`, warm cache, CPU s
# (2026-12-05, 2 cores at load 8): 16.8 with a 0.1 s threshold (46 files), 12.9
# with none (132 files); cold runs cost the same (19.0 / 19.8). JAX's default
# threshold, 1 s, would skip nearly all of them.
MIN_COMPILE_SECONDS = 0.0


def cache_dir() -> Path:
    """Where the CLI's compilation cache lives (see the module docstring)."""
    if os.environ.get("SADDLE_CACHE_DIR"):
        return Path(os.environ["SADDLE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "saddle" / "jax"


def disabled_by_env() -> bool:
    return os.environ.get("SADDLE_NO_CACHE", "").strip().lower() not in ("", "0", "false", "no")


def enable(no_cache: bool = False) -> Optional[Path]:
    """Point JAX's persistent compilation cache at ``cache_dir()``; return it, or
    None when the cache is off (``no_cache``, ``SADDLE_NO_CACHE``) or the
    directory cannot be created (the run then just compiles, as without it)."""
    if no_cache or disabled_by_env():
        return None
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return path
