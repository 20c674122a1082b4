"""Tests run in float64 with strict dtype promotion (as diffrax/equinox do)."""
import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def key():
    return jax.random.key(0)
