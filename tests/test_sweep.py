"""Sweeps: grids, emulated devices, streaming + resume after SIGKILL, divergence."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynamics import sweep
from experiments import cli

ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def _square_cell(v):
    x = v["a"] * jnp.arange(3.0)
    return {"y": x**2, "loss": jnp.sum(x**2) + v["seed"]}


def test_product_grid_is_row_major():
    cells = sweep.product_grid({"a": [1, 2], "b": [10, 20, 30]})
    np.testing.assert_array_equal(cells["a"], [1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(cells["b"], [10, 20, 30, 10, 20, 30])
    with pytest.raises(ValueError, match="no values"):
        sweep.product_grid({"a": []})


def test_padding_and_order_survive_chunking():
    cells = sweep.product_grid({"a": np.linspace(0, 1, 7), "seed": [0, 1, 2]})
    out, failed = sweep.run_sweep(_square_cell, cells, batch_size=2)  # 21 cells, chunks of 8
    expected = cells["a"] ** 2 * 5 + cells["seed"]
    np.testing.assert_allclose(out["loss"], expected, rtol=1e-12)
    assert out["y"].shape == (21, 3) and not failed.any()


def test_divergent_cells_are_marked_and_the_rest_go_on():
    cells = {"a": np.array([1.0, np.inf, 2.0, 1e4]), "seed": np.zeros(4)}
    out, failed = sweep.run_sweep(_square_cell, cells, batch_size=2, max_loss=1e6)
    np.testing.assert_array_equal(failed, [False, True, False, True])
    np.testing.assert_allclose(out["loss"][[0, 2]], [5.0, 20.0])


def test_rejects_more_devices_than_exist():
    with pytest.raises(ValueError, match="n_devices"):
        sweep.make_plan(10, n_devices=10_000)


_DEVICES_SCRIPT = textwrap.dedent("""
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    import experiments.saxe_modes as m
    from dynamics.sweep import product_grid, run_sweep
    assert len(jax.devices()) == 4, jax.devices()
    cfg = m.smoke()
    cells = product_grid({"u0": [1e-3, 3e-3, 1e-2], "learning_rate": [0.01, 0.02], "seed": [0, 1]})
    four, _ = run_sweep(lambda v: m.cell(cfg, v), cells, n_devices=4, batch_size=2)
    one, _ = run_sweep(lambda v: m.cell(cfg, v), cells, n_devices=1, batch_size=2)
    again, _ = run_sweep(lambda v: m.cell(cfg, v), cells, n_devices=4, batch_size=2)
    for k in four:
        assert np.array_equal(four[k], one[k]), k      # sharding changes nothing
        assert np.array_equal(four[k], again[k]), k    # same seed, same bits
    assert np.all(four["half_time_rel_err"] < 0.05)
    print("ok")
""")


@pytest.mark.slow  # ~30-45 s: subprocesses with emulated devices/hosts
def test_four_emulated_devices_equal_one_device_exactly():
    env = {**ENV, "JAX_NUM_CPU_DEVICES": "4", "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    proc = subprocess.run([sys.executable, "-c", _DEVICES_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def _sweep_cmd(out, *extra):
    return [sys.executable, "-m", "experiments.cli", "sweep", "saxe-modes", "--smoke", "--x64", "--no-progress",
            "--grid", "seed=" + ",".join(map(str, range(24))), "--grid", "u0=1e-3,1e-2",
            "--set", "horizon=40", "--batch-size", "2", "--out", str(out), *extra]


def _load(out):
    with np.load(Path(out) / "results.npz") as d:
        return {k: d[k] for k in d.files}


def test_sweep_killed_with_sigkill_resumes_to_identical_results(tmp_path):
    # The three runs build the same programs: a compilation cache of this test's own (the CLI's
    # persistent cache, experiments.jax_cache) lets the reference compile them and the others load
    # them; a loaded program is the same executable, so "identical" keeps its meaning.
    env = {**ENV, "SADDLE_NO_CACHE": "0", "SADDLE_CACHE_DIR": str(tmp_path / "jax-cache")}
    reference = tmp_path / "reference"
    subprocess.run(_sweep_cmd(reference), env=env, check=True, capture_output=True, timeout=600)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_sweep_cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    chunks = killed / "groups" / "000" / "chunks"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(chunks.glob("chunk-*.npz"))) < 2:
        time.sleep(0.02)
    assert proc.poll() is None, "sweep finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(list(chunks.glob("chunk-*.npz")))
    assert 2 <= finished < 6 and not (killed / "results.npz").exists()  # 48 cells = 6 chunks of 8
    # the same sweep without --resume refuses to touch it
    refused = subprocess.run(_sweep_cmd(killed), env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    subprocess.run(_sweep_cmd(killed, "--resume"), env=env, check=True, capture_output=True, timeout=600)
    ref, res = _load(reference), _load(killed)
    assert ref.keys() == res.keys()
    for k in ref:
        np.testing.assert_array_equal(ref[k], res[k], err_msg=k)
    meta = json.loads((killed / "meta.json").read_text())
    assert meta["n_cells"] == 48 and meta["n_failed"] == 0


def test_resume_with_a_different_grid_is_refused(tmp_path, capsys):
    out = tmp_path / "s"
    args = ["sweep", "saxe-modes", "--smoke", "--no-progress", "--grid", "seed=0,1", "--out", str(out)]
    assert cli.main(args) == 0
    assert (out / "sweep.png").exists() and (out / "summary.txt").exists()
    code = cli.main(args[:-4] + ["--grid", "seed=0,1,2", "--out", str(out), "--resume"])
    assert code == 2 and "different sweep" in capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["sweep", "saxe-modes", "--grid", "u0"], "key=v1,v2"),
    (["sweep", "saxe-modes", "--grid", "bogus=1,2"], "bogus"),
    (["sweep", "saxe-modes", "--grid", "u0=1e-3,abc"], "u0"),
    (["sweep", "saxe-modes", "--grid", "u0=-1,1e-3"], "u0"),
    (["sweep", "saxe-modes"], "--grid"),
    (["sweep", "saxe-modes", "--grid", "seed=0", "--devices", "999"], "n_devices"),
])
def test_sweep_bad_input_is_one_line(capsys, argv, needle, tmp_path):
    code = cli.main(argv + ["--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err


_HOST_SCRIPT = textwrap.dedent("""
    import sys
    import jax
    jax.config.update("jax_enable_x64", True)
    process_id, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    if process_id >= 0:
        jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
    import numpy as np
    import experiments.saxe_modes as m
    from dynamics.sweep import product_grid, run_sweep
    cfg = m.smoke()
    cells = product_grid({"u0": [1e-3, 3e-3, 1e-2], "seed": [0, 1, 2], "learning_rate": [0.01]})
    result, failed = run_sweep(lambda v: m.cell(cfg, v), cells, batch_size=2)
    np.savez(out, **result)
""")


@pytest.mark.slow  # ~30-45 s: subprocesses with emulated devices/hosts
def test_two_hosts_emulated_with_jax_distributed_equal_one_process(tmp_path):
    """Two processes × two CPU devices joined by jax.distributed.initialize (the
    multi-host path) give every host the same cells as a single process."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = {**ENV, "JAX_NUM_CPU_DEVICES": "2", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    procs = [subprocess.Popen([sys.executable, "-c", _HOST_SCRIPT, str(i), port, str(tmp_path / f"host{i}.npz")],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    single = subprocess.run([sys.executable, "-c", _HOST_SCRIPT, "-1", port, str(tmp_path / "single.npz")],
                            env={**ENV, "JAX_NUM_CPU_DEVICES": "1"}, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    ref = np.load(tmp_path / "single.npz")
    for i in (0, 1):
        got = np.load(tmp_path / f"host{i}.npz")
        for k in ref.files:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=k)


def _constant_carry_cell(v):
    # The loop's carry starts as a constant (device-invariant) and becomes
    # per-cell in the body: under shard_map's varying-axes check this was a
    # while_loop TypeError whenever that field was the only swept axis.
    n = jnp.asarray(3)  # a traced trip count makes fori_loop a while_loop, as in descend
    x = jax.lax.fori_loop(0, n, lambda i, x: x * v["a"], jnp.ones(2))
    return {"y": x, "loss": jnp.sum(x)}


def test_a_loop_carry_built_from_constants_sweeps_on_one_axis():
    cells = sweep.product_grid({"a": [2.0, 3.0]})
    out, failed = sweep.run_sweep(_constant_carry_cell, cells, batch_size=1)
    np.testing.assert_allclose(out["y"], [[8.0, 8.0], [27.0, 27.0]])
    assert not failed.any()


def test_saxe_modes_sweeps_on_learning_rate_alone(tmp_path, capsys):
    args = ["sweep", "saxe-modes", "--smoke", "--no-progress", "--grid", "learning_rate=0.01,0.02",
            "--out", str(tmp_path / "s")]
    assert cli.main(args) == 0, capsys.readouterr().err
    with np.load(tmp_path / "s" / "results.npz") as d:
        assert d["cell/learning_rate"].tolist() == [0.01, 0.02] and not d["failed"].any()


def test_resume_with_another_batch_size_is_refused_and_names_the_original(tmp_path):
    # Decided: a different --batch-size/--devices is refused, not re-chunked (see
    # dynamics.sweep._resume_mismatch); a same-plan resume returns the same bits.
    cells = sweep.product_grid({"a": np.linspace(0, 1, 5), "seed": [0, 1]})
    first, _ = sweep.run_sweep(_square_cell, cells, out_dir=tmp_path, batch_size=2)
    saved = sorted(p.read_bytes() for p in (tmp_path / "chunks").glob("*.npz"))
    with pytest.raises(ValueError, match="--batch-size 2 --devices 1") as err:
        sweep.run_sweep(_square_cell, cells, out_dir=tmp_path, batch_size=3, resume=True)
    assert "\n" not in str(err.value)
    assert sorted(p.read_bytes() for p in (tmp_path / "chunks").glob("*.npz")) == saved  # nothing touched
    again, _ = sweep.run_sweep(_square_cell, cells, out_dir=tmp_path, batch_size=2, resume=True)
    for k in first:
        np.testing.assert_array_equal(first[k], again[k])
