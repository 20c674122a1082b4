"""Compiler options for long-running programs (a GD loop of 1e4+ steps, a long ODE solve).

XLA's CPU backend optimiser (LLVM at ``xla_backend_optimization_level`` 3, its default)
costs compile time and pays it back many times over in a long loop. Some setups turn it off
with ``XLA_FLAGS=--xla_backend_optimization_level=0`` — tests/conftest.py does, because most
test programs are small and compile-bound (12-28% less CPU there) — and a long loop then runs
unvectorised: the relu-plateau-grid smoke's GD grids (40,000 + 10,000 steps × 6 nets of 128
units) took 48 CPU s to run at level 0 and 5 at level 2 (compiling: 2.3 s vs 3.3 s); its test
file, 60 CPU s at level 0, takes 19 with ``jit_loop``.

``jit_loop`` compiles a program at XLA's default backend optimisation whatever ``XLA_FLAGS``
say (jax.jit's ``compiler_options``, per program): use it for the outermost jit of a
program whose run time dominates its compile time. Results agree with the level-0
program up to rounding (vectorised reductions may sum in another order).
"""
from __future__ import annotations

from typing import Callable

import jax

# XLA's own defaults (xla/debug_options_flags.cc), restated per program
LOOP_COMPILER_OPTIONS = {"xla_backend_optimization_level": 3, "xla_llvm_disable_expensive_passes": False}


def jit_loop(fun: Callable, **jit_kwargs) -> Callable:
    """``jax.jit(fun, **jit_kwargs)`` compiled with ``LOOP_COMPILER_OPTIONS`` (module docstring)."""
    return jax.jit(fun, compiler_options=LOOP_COMPILER_OPTIONS, **jit_kwargs)
