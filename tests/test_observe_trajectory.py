"""descend's observe(step, grads) and keep_params, Trajectory save/load, the float32-under-x64
warning, and kernel_distance on empirical NTKs (issue 12 item 7)."""
import collections
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynamics
from dynamics import gd, ntk, trajectory
from models import linear
from theory.rich_lazy import kernel_distance


def _problem():
    x = jax.random.normal(jax.random.key(1), (16, 3))
    y = x @ jnp.array([[1.0], [-2.0], [0.5]])
    params = linear.init_gaussian(jax.random.key(2), (3, 4, 1), std=0.1)
    return dynamics.model_loss(linear.apply), params, (x, y)


@pytest.mark.parametrize("progress", [False, True])
def test_observe_receives_step_and_grads_and_keep_params(progress):
    loss, params, data = _problem()
    steps = [0, 1, 5, 20]

    def observe(p, *, step, grads):
        return {"step": step, "gnorm": sum(jnp.sum(g**2) for g in jax.tree_util.tree_leaves(grads))}

    traj = dynamics.descend(loss, params, optax.sgd(0.05), data, record_steps=steps, observe=observe,
                            keep_params=True, progress=progress)
    assert traj.stats["step"].tolist() == steps
    # the recorded params reproduce the recorded loss and gradient norm, and the last is the final state
    for i in range(len(steps)):
        p = jax.tree_util.tree_map(lambda a: a[i], traj.history)
        assert float(loss(p, data)) == pytest.approx(float(traj.loss[i]), rel=1e-12)
        g = jax.grad(loss)(p, data)
        assert float(traj.stats["gnorm"][i]) == pytest.approx(float(sum(jnp.sum(a**2) for a in jax.tree_util.tree_leaves(g))), rel=1e-10)
    np.testing.assert_array_equal(jax.tree_util.tree_leaves(traj.history)[0][-1], jax.tree_util.tree_leaves(traj.params)[0])
    # step 0 records the init itself
    np.testing.assert_array_equal(jax.tree_util.tree_leaves(traj.history)[0][0], jax.tree_util.tree_leaves(params)[0])


def test_plain_observe_is_unchanged_and_history_is_none_by_default():
    loss, params, data = _problem()
    traj = dynamics.descend(loss, params, optax.sgd(0.05), data, record_steps=[1, 2], observe=lambda p: {"n": p[0].sum()})
    assert traj.history is None and traj.stats["n"].shape == (2,)
    # step as a positional parameter is not the keyword opt-in: observe gets params only
    assert gd._observer_keywords(lambda p, step=0: {}) == ()
    assert gd._observer_keywords(lambda p, *, grads: {}) == ("grads",)


Pair = collections.namedtuple("Pair", ["left", "right"])


def test_trajectory_save_load_roundtrip(tmp_path):
    loss, params, data = _problem()
    traj = dynamics.descend(loss, params, optax.sgd(0.05), data, record_steps=[1, 3],
                            observe=lambda p: {"pair": Pair(p[0].sum(), [p[1], None]), "ints": {7: (p[0][0, 0],)}},
                            keep_params=True)
    path = trajectory.save(tmp_path / "run", traj)
    assert path.name == "run.npz"
    back = trajectory.load(path)
    assert isinstance(back, dynamics.Trajectory) and isinstance(back.stats["pair"], Pair)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(traj)
    for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(traj)):
        np.testing.assert_array_equal(a, np.asarray(b))
    with pytest.raises(FileExistsError, match="never overwritten"):
        trajectory.save(path, traj)


def test_trajectory_save_refuses_other_pytree_nodes(tmp_path):
    class Box:
        pass

    traj = dynamics.Trajectory(jnp.zeros(2), jnp.zeros(2), {"x": Box()}, None)
    with pytest.raises(ValueError, match=r"trajectory\.stats\['x'\] of type .*Box"):
        trajectory.save(tmp_path / "t.npz", traj)
    assert not (tmp_path / "t.npz").exists()
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not a saved trajectory"):
        trajectory.load(tmp_path / "other.npz")


def test_float32_params_under_x64_warn_once(monkeypatch):
    loss, params, data = _problem()
    p32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params)
    monkeypatch.setattr(gd, "_warned_float32", False)
    with pytest.warns(gd.Float32ParamsWarning, match="float32"):
        dynamics.descend(loss, p32, optax.sgd(0.05), data, record_steps=[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", gd.Float32ParamsWarning)
        dynamics.descend(loss, p32, optax.sgd(0.05), data, record_steps=[1])  # once per process
        dynamics.descend(loss, params, optax.sgd(0.05), data, record_steps=[1])


def test_kernel_distance_on_empirical_ntks():
    """Whole-NTK distance equals the distance of the flattened (n·out, n·out) matrices;
    the bare 4-D call is refused instead of returning per-block distances."""
    def apply(p, x):
        return jnp.tanh(x @ p["w"]) @ p["a"]

    k = jax.random.split(jax.random.key(0), 3)
    p0 = {"w": jax.random.normal(k[0], (3, 5)), "a": jax.random.normal(k[1], (5, 2))}
    p1 = jax.tree_util.tree_map(lambda a: a + 0.5, p0)
    x = jax.random.normal(k[2], (4, 3))
    t0, t1 = ntk.empirical_ntk(apply, p0, x), ntk.empirical_ntk(apply, p1, x)
    assert t0.shape == (4, 4, 2, 2)
    with pytest.raises(ValueError, match="kernel_axes=4"):
        kernel_distance(t0, t1)
    whole = kernel_distance(t0, t1, kernel_axes=4)
    flat = kernel_distance(ntk.flatten_kernel(t0), ntk.flatten_kernel(t1))
    assert float(whole) == pytest.approx(float(flat), rel=1e-12)
    assert kernel_distance(t0, t1, kernel_axes=2).shape == (4, 4)
    with pytest.raises(ValueError, match="kernel_axes"):
        kernel_distance(t0, t1, kernel_axes=3)
