"""relu-escape-grid: the slope fit, config checks and the smoke run (every row)."""
import numpy as np
import pytest

from experiments import relu_escape_grid as grid


def test_escape_slopes_recover_known_slopes():
    # t_k = c_k + T_k ln(1/σ) exactly for σ ≤ fit_max_scale; the larger σ (off the line) are not fitted
    cfg = grid.Config()
    scales = np.asarray(cfg.init_scales)
    T, c = np.array([25.5, 52.1]), np.array([-25.0, -51.0])
    times = c + T * np.log(1 / scales)[:, None]
    times[scales > cfg.fit_max_scale] += 1e3
    times = np.stack([times, times + 0.0])  # two identical seeds
    np.testing.assert_allclose(grid.escape_slopes(cfg, times), T, rtol=1e-10)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="n_kinks"):
        grid.Config(n_kinks=(7,))
    with pytest.raises(ValueError, match="init_scales"):
        grid.Config(init_scales=(1e-4, 1e-8, 1e-2))
    with pytest.raises(ValueError, match="fit_max_scale"):
        grid.Config(init_scales=(1e-4, 1e-2, 1e-1), fit_max_scale=1e-4)
    with pytest.raises(ValueError, match="hidden"):
        grid.Config(n_kinks=(4,), hidden=6)


def test_smoke_passes_every_row():  # ~7 s on 2 cores
    cfg = grid.smoke()
    arrays = grid.simulate(cfg)
    rows = grid.verify(arrays, cfg)
    assert len(rows) == 4 and all(r["passed"] for r in rows), [r for r in rows if not r["passed"]]
    assert set(grid.plot(arrays, cfg)) == {"relu_escape_grid"}
