"""Experiment ``modularisation`` (arXiv 2410.06232): its smoke rows, the pieces it wires
(models.autoencoder, tasks.sources) against hand computations, and, slow, the full
family against theory.modularisation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import experiments
from experiments import modularisation
from experiments.common import run_experiment
from models import autoencoder
from tasks import sources


def test_smoke_rows_pass_and_the_run_folder_is_complete(tmp_path):
    result = run_experiment(modularisation, modularisation.smoke(), tmp_path / "run")
    failed = [r for r in result.rows if not r["passed"]]
    assert result.rows and not failed, failed
    assert any(r["quantity"].startswith("linear AE") for r in result.rows)
    for name in ("results.npz", "meta.json", "verify.json", "modularisation.png"):
        assert (tmp_path / "run" / name).exists(), name


def test_corner_cut_square_keeps_the_strip_with_uniform_weights():
    s, w = sources.corner_cut_square(5, 0.5)
    kept = np.abs(np.asarray(s).sum(1)) <= 0.5 + 1e-9
    # diagonals i + j − 4 ∈ {−2..2} of a 5×5 grid (sum = (i + j − 4)/4): 3 + 4 + 5 + 4 + 3 points
    assert kept.sum() == 19
    np.testing.assert_allclose(np.asarray(w)[kept], 1 / 19)
    assert np.all(np.asarray(w)[~kept] == 0)
    assert sources.kept_points(5, 1.0).shape == (25, 2)


def _square():
    s, w = sources.corner_cut_square(5, 1.0)
    return s, w


# one compiled program per code shape instead of op-by-op dispatch of vmap(jacfwd)
_modularity = jax.jit(autoencoder.modularity)


def test_modularity_of_hand_built_linear_codes():
    s, w = _square()
    modular = {"w_in": jnp.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]]), "b_in": jnp.ones(3),
               "w_out": jnp.zeros((2, 3)), "b_out": jnp.zeros(2)}
    score, share, active = _modularity(modular, s, w)
    assert score == pytest.approx(1.0) and bool(jnp.all(active))
    # equal-variance sources: a (1, 1) neuron is half-half (share ½), a (1, 0) one is single-source
    mixed = dict(modular, w_in=jnp.array([[1.0, 1.0], [1.0, 0.0]]), b_in=jnp.ones(2))
    score, share, _ = _modularity(mixed, s, w)
    np.testing.assert_allclose(share, [0.5, 1.0], atol=1e-12)
    assert score == pytest.approx(((0.5 + 1.0) / 2 - 0.5) / 0.5)


def test_modularity_reads_the_mlp_jacobian():
    """Hidden units 0, 1 see only s_1 and feed code neuron 0; unit 2 sees only s_2 and feeds
    neuron 1: single-source neurons through the ReLU, so score 1; wiring unit 2 into
    neuron 0 as well makes neuron 0 mixed."""
    s, w = _square()
    params = autoencoder.init_mlp(jax.random.key(0), 2, 2, 3, init_scale=1.0)
    params.update(w_in=jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]), b_in=jnp.full(3, 0.1),
                  w_z=jnp.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    assert _modularity(params, s, w)[0] == pytest.approx(1.0)
    params["w_z"] = jnp.array([[1.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    assert _modularity(params, s, w)[1][0] < 0.9


def test_loss_terms_match_a_numpy_computation():
    s, w = sources.corner_cut_square(4, 0.7)
    p = autoencoder.init_linear(jax.random.key(3), 2, 3, init_scale=0.5)
    p["b_in"] = jnp.array([0.1, -0.2, 0.0])
    rec, act, neg, wts = jax.jit(autoencoder.loss_terms)(p, (s, w))
    S, W = np.asarray(s), np.asarray(w)
    z = S @ np.asarray(p["w_in"]).T + np.asarray(p["b_in"])
    s_hat = z @ np.asarray(p["w_out"]).T + np.asarray(p["b_out"])
    assert rec == pytest.approx(0.5 * np.sum(W * np.sum((S - s_hat) ** 2, 1)))
    assert act == pytest.approx(0.5 * np.sum(W * np.sum(z ** 2, 1)))
    assert neg == pytest.approx(np.sum(W * np.sum(np.maximum(-z, 0), 1)))
    assert wts == pytest.approx(0.5 * (np.sum(np.asarray(p["w_in"]) ** 2) + np.sum(np.asarray(p["w_out"]) ** 2)))


@pytest.mark.parametrize("bad", [dict(deltas=(0.0, 0.5)), dict(deltas=(0.8, 0.5)), dict(kinds=("conv",)),
                                 dict(n_values=2), dict(lam_w=-1.0)])
def test_bad_config_is_refused_in_one_line(bad):
    with pytest.raises(ValueError, match="allowed"):
        modularisation.Config(**bad)


def test_registered():
    assert "modularisation" in experiments.names()


@pytest.mark.slow
def test_full_family_matches_the_theorem(tmp_path):
    """Seeds 0-3 and the δ grid are the config's defaults, fixed before training."""
    result = run_experiment(modularisation, modularisation.Config(), tmp_path / "run")
    failed = [r for r in result.rows if not r["passed"]]
    assert len(result.rows) > 1 and not failed, failed
