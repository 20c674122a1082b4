"""The CLI's persistent compilation cache switch (experiments.jax_cache)."""
import jax
import pytest

from experiments import cli, jax_cache


@pytest.fixture
def restore_cache_config():
    before = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
    yield
    jax.config.update("jax_compilation_cache_dir", before[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", before[1])


def test_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SADDLE_CACHE_DIR", str(tmp_path / "c"))
    assert jax_cache.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SADDLE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert jax_cache.cache_dir() == tmp_path / "xdg" / "saddle" / "jax"


def test_enable_points_jax_at_the_directory(monkeypatch, tmp_path, restore_cache_config):
    monkeypatch.delenv("SADDLE_NO_CACHE", raising=False)
    monkeypatch.setenv("SADDLE_CACHE_DIR", str(tmp_path / "c"))
    assert jax_cache.enable() == tmp_path / "c"
    assert (tmp_path / "c").is_dir()
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "c")
    assert jax.config.jax_persistent_cache_min_compile_time_secs == jax_cache.MIN_COMPILE_SECONDS


@pytest.mark.parametrize("env, flag", [("1", False), ("yes", False), ("", True), ("0", True)])
def test_off_by_flag_or_env(monkeypatch, tmp_path, restore_cache_config, env, flag):
    monkeypatch.setenv("SADDLE_NO_CACHE", env)
    monkeypatch.setenv("SADDLE_CACHE_DIR", str(tmp_path / "c"))
    before = jax.config.jax_compilation_cache_dir
    assert jax_cache.enable(no_cache=flag) is None
    assert jax.config.jax_compilation_cache_dir == before
    assert not (tmp_path / "c").exists()


def test_unusable_directory_means_no_cache(monkeypatch, tmp_path, restore_cache_config):
    (tmp_path / "file").write_text("")
    monkeypatch.delenv("SADDLE_NO_CACHE", raising=False)
    monkeypatch.setenv("SADDLE_CACHE_DIR", str(tmp_path / "file" / "jax"))
    assert jax_cache.enable() is None


def test_cli_accepts_no_cache(capsys):
    assert cli.main(["--no-cache", "list"]) == 0
    assert "saxe-modes" in capsys.readouterr().out
