import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynamics
import tasks
from models import linear


@pytest.fixture(scope="module")
def task():
    return tasks.teacher(jax.random.key(4), n_in=4, n_out=3, s=(2.0, 1.0), n_samples=32)


def test_mse_convention_matches_statistics(task, key):
    params = linear.init_gaussian(key, (4, 5, 3), std=0.4)
    direct = dynamics.mse(linear.apply(params, task.x), task.y)
    via_stats = dynamics.linear_loss_from_stats(linear.end_to_end(params), task.sigma_xx, task.sigma_yx, task.trace_yy)
    np.testing.assert_allclose(direct, via_stats, rtol=1e-12)
    manual = 0.5 * np.mean(np.sum((np.asarray(task.y) - np.asarray(linear.apply(params, task.x))) ** 2, axis=1))
    np.testing.assert_allclose(direct, manual, rtol=1e-12)


def test_log_steps_and_times():
    steps = dynamics.log_steps(1000, 50)
    assert steps[0] == 0 and steps[-1] == 1000 and np.all(np.diff(steps) > 0)
    times = dynamics.log_times(10.0, 20, t_min=0.1)
    assert times[0] == 0 and times[-1] == pytest.approx(10.0) and len(times) == 21


def test_progress_path_equals_scan_path(task, key):
    loss = dynamics.model_loss(linear.apply)
    params = linear.init_gaussian(key, (4, 5, 3), std=0.1)
    steps = dynamics.log_steps(300, 20)
    a = dynamics.descend(loss, params, optax.sgd(0.05), (task.x, task.y), record_steps=steps)
    b = dynamics.descend(loss, params, optax.sgd(0.05), (task.x, task.y), record_steps=steps, progress=True)
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.t, steps)


def test_first_record_is_the_initial_loss(task, key):
    loss = dynamics.model_loss(linear.apply)
    params = linear.init_gaussian(key, (4, 5, 3), std=0.1)
    traj = dynamics.descend(loss, params, optax.sgd(0.05), (task.x, task.y), record_steps=[0, 1, 2])
    np.testing.assert_allclose(traj.loss[0], loss(params, (task.x, task.y)))
    grads = jax.grad(loss)(params, (task.x, task.y))
    one_step = [w - 0.05 * g for w, g in zip(params, grads)]
    np.testing.assert_allclose(traj.loss[1], loss(one_step, (task.x, task.y)), rtol=1e-12)


def test_sgd_is_reproducible_and_converges(task, key):
    loss = dynamics.model_loss(linear.apply)
    params = linear.init_gaussian(key, (4, 5, 3), std=0.1)
    run = lambda k: dynamics.descend(loss, params, optax.sgd(0.05), (task.x, task.y),
                                     record_steps=[0, 2000], batch_size=8, key=k)
    a, b, c = run(jax.random.key(1)), run(jax.random.key(1)), run(jax.random.key(2))
    np.testing.assert_array_equal(a.loss, b.loss)
    assert float(a.loss[-1]) != float(c.loss[-1])
    assert float(a.loss[-1]) < 1e-3 * float(a.loss[0])  # noiseless teacher: SGD interpolates


def test_sgd_needs_a_key(task, key):
    loss = dynamics.model_loss(linear.apply)
    with pytest.raises(ValueError, match="key"):
        dynamics.descend(loss, linear.init_gaussian(key, (4, 3), std=0.1), optax.sgd(0.1),
                         (task.x, task.y), record_steps=[1], batch_size=4)


def test_descend_vmaps_over_seeds(task):
    loss = dynamics.model_loss(linear.apply)

    def one(seed):
        params = linear.init_gaussian(jax.random.key(seed), (4, 5, 3), std=0.1)
        return dynamics.descend(loss, params, optax.sgd(0.05), (task.x, task.y), record_steps=[0, 10, 100]).loss

    batched = jax.jit(jax.vmap(one))(jnp.arange(3))
    assert batched.shape == (3, 3)
    np.testing.assert_allclose(batched[1], one(1), rtol=1e-12)


def test_gd_converges_to_flow_as_rate_shrinks(task, key):
    loss = dynamics.model_loss(linear.apply)
    params = linear.init_gaussian(key, (4, 5, 3), std=0.3)
    flow = dynamics.gradient_flow(loss, params, (task.x, task.y), times=[0.0, 2.0])
    gaps = []
    for eta in (0.01, 0.005):
        gd = dynamics.descend(loss, params, optax.sgd(eta), (task.x, task.y), record_steps=[0, int(2 / eta)])
        gaps.append(abs(float(gd.loss[-1] - flow.loss[-1])))
    assert 1.7 < gaps[0] / gaps[1] < 2.3  # Euler: first order in η


def test_flax_module_trains_with_descend_and_flow(task, key):
    from flax import linen as nn  # in the test extra: bringing your own network must work

    class TwoLayer(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3, use_bias=False)(nn.tanh(nn.Dense(8)(x)))

    model = TwoLayer()
    params = model.init(key, task.x)
    loss = dynamics.model_loss(model.apply)
    traj = dynamics.descend(loss, params, optax.sgd(0.1), (task.x, task.y), record_steps=[0, 500])
    assert float(traj.loss[-1]) < 0.2 * float(traj.loss[0])
    flow = dynamics.gradient_flow(loss, params, (task.x, task.y), times=[0.0, 50.0], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(flow.loss[-1], traj.loss[-1], rtol=0.05)  # t = 50 = 500 steps × η


def test_gradient_flow_rejects_bad_times(task, key):
    loss = dynamics.model_loss(linear.apply)
    with pytest.raises(ValueError, match="times"):
        dynamics.gradient_flow(loss, linear.init_gaussian(key, (4, 3), std=0.1), (task.x, task.y), times=[2.0, 1.0])


def test_jit_loop_compiles_with_its_options_and_matches_jit():
    # XLA refuses an unknown compile option, so this also checks LOOP_COMPILER_OPTIONS' names;
    # the backend optimiser may reorder floating-point work, hence rounding-level agreement
    from dynamics.compiling import jit_loop

    def f(x):
        return jax.lax.fori_loop(0, 200, lambda i, v: jnp.tanh(v) + 0.1 * v, x)

    x = jnp.linspace(-2.0, 2.0, 64)
    np.testing.assert_allclose(jit_loop(f)(x), jax.jit(f)(x), rtol=1e-12, atol=1e-14)
