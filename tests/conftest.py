"""Tests run in float64. Modules marked ``pytest.mark.strict_dtypes`` (the
theory tests) also run under strict dtype promotion, as diffrax/equinox tests
do, so a theory function never promotes an int or a float32 silently. Tests
that mix in flax (float32 params) stay on standard promotion."""
import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)
# Tests that call the CLI must not fill the user's compilation cache (experiments.jax_cache).
os.environ.setdefault("SADDLE_NO_CACHE", "1")
# Most default tests are small programs whose cost is XLA compiling them, not running them:
# the unoptimised CPU backend compiles faster (measured 12-28% less CPU on test_balanced,
# test_relu, test_shaping). The numbers are the same programs' (no fast-math is enabled),
# and the backend reads this before its first computation, which comes after conftest.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")
# Figures are written as PNG only in tests (PDF doubles the writing cost); test_cli checks PDF.
os.environ.setdefault("SADDLE_FIGURE_FORMATS", "png")


@pytest.fixture(autouse=True)
def _dtype_promotion(request):
    mode = "strict" if request.node.get_closest_marker("strict_dtypes") else "standard"
    with jax.numpy_dtype_promotion(mode):
        yield


@pytest.fixture
def key():
    return jax.random.key(0)
