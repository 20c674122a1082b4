"""activation-geometry experiment: centred kernel alignment, the task, and the smoke run (slow)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import activation_geometry as ag
from experiments.common import run_experiment


def _hsic_alignment(k, t):
    """Independent form: A = HSIC(K, T)/sqrt(HSIC(K, K) HSIC(T, T)), HSIC = tr(K H T H), H centring."""
    p = k.shape[0]
    h = np.eye(p) - np.ones((p, p)) / p
    hsic = lambda a, b: np.trace(a @ h @ b @ h)
    return hsic(k, t) / np.sqrt(hsic(k, k) * hsic(t, t))


def test_centered_alignment_against_hsic_form():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    k, t = a @ a.T, b @ b.T
    np.testing.assert_allclose(ag.centered_alignment(jnp.asarray(k), jnp.asarray(t)), _hsic_alignment(k, t), rtol=1e-12)
    np.testing.assert_allclose(ag.centered_alignment(jnp.asarray(k), jnp.asarray(k)), 1.0, rtol=1e-12)
    # Invariant to adding a constant to every entry (centring) and to scaling.
    np.testing.assert_allclose(ag.centered_alignment(jnp.asarray(3 * k + 5.0), jnp.asarray(t)), _hsic_alignment(k, t), rtol=1e-12)


def test_task_inputs_carry_irrelevant_structure_only():
    cfg = ag.Config(n_latents=3, gain=1.0)
    z, x, y = ag.make_task(cfg, jax.random.key(0))
    assert z.shape == (8, 3) and x.shape == (8, cfg.n_in) and np.array_equal(y[:, 0], z[:, 0])
    # x_c = e_c + g Σ_{k≥2} z_k u_k with orthonormal e_c, u_k: Gram = I + g² Σ_{k≥2} z_k z_kᵀ.
    np.testing.assert_allclose(x @ x.T, np.eye(8) + z[:, 1:] @ z[:, 1:].T, atol=1e-12)
    # z_1 only through e_c: centred alignment ⟨CKC, Cyyᵀ C⟩ = ‖Cy‖² = 8, ‖Cyyᵀ C‖ = 8,
    # ‖CKC‖² = 7 + 2·8² (identity part + two rank-one latent blocks, mutually orthogonal after centring)
    # + 2·2·8 cross terms: ⟨C, z zᵀ⟩ = 8 for each latent; so A = 8 / (8 · sqrt(7 + 128 + 32)).
    np.testing.assert_allclose(ag.centered_alignment(x @ x.T, y @ y.T), 1 / np.sqrt(167), rtol=1e-12)


def test_config_checks():
    with pytest.raises(ValueError, match="n_in"):
        ag.Config(n_latents=4, n_in=16)
    with pytest.raises(ValueError, match="n_seeds"):
        ag.Config(n_seeds=2)


@pytest.mark.slow
def test_smoke_run_passes(tmp_path):
    # ~30 s of GD (6 seeds × 2 activations × 8000 steps) on 2 idle cores.
    result = run_experiment(ag, ag.smoke(), tmp_path / "run")
    assert all(r["passed"] for r in result.rows)
    assert {"rsm.png", "alignment.png"} <= {p.name for p in (tmp_path / "run").iterdir()}


def test_sign_test_threshold_is_the_binomial_tail_at_five_percent():
    from scipy.stats import binom

    from experiments.activation_geometry import sign_test_min_wins

    for n in range(1, 25):
        k = sign_test_min_wins(n)
        assert k == n + 1 or binom.sf(k - 1, n, 0.5) <= 0.05  # P(≥ k) within the level
        assert binom.sf(k - 2, n, 0.5) > 0.05  # and k − 1 would not be
    assert (sign_test_min_wins(6), sign_test_min_wins(8)) == (6, 7)
