"""dynamics.plateaus.detect_plateaus on synthetic staircases and on simulated deep linear nets."""
import numpy as np
import pytest

from dynamics.plateaus import Plateaus, detect_plateaus, rise_times


def _log_staircase(t, levels, times, sharpness):
    """Loss falling from levels[k] to levels[k+1] around times[k], a logistic in ln t:
    the drop is half done at times[k] and a fraction f done at times[k]·(f/(1−f))^{1/sharpness}."""
    loss = np.full_like(t, levels[-1], dtype=float)
    with np.errstate(divide="ignore", over="ignore"):
        for k, tk in enumerate(times):
            loss += (levels[k] - levels[k + 1]) / (1.0 + (t / tk) ** sharpness)
    return loss


LEVELS = (10.5, 2.5, 0.5, 0.0)  # s = (4, 2, 1), trace_yy = 21
TIMES = (100.0, 200.0, 400.0)  # t_k ∝ 1/s_k, as in a depth-3 net


@pytest.mark.parametrize("sharpness", [12.0, 20.0, 80.0])
def test_log_staircase_levels_and_times(sharpness):
    t = np.concatenate([[0.0], np.geomspace(1.0, 4000.0, 400)])
    loss = _log_staircase(t, LEVELS, TIMES, sharpness)
    for level in (0.5, 0.75):
        p = detect_plateaus(t, loss, level=level)
        assert isinstance(p, Plateaus) and p.n_plateaus == 4
        np.testing.assert_allclose(p.plateau_losses, LEVELS, rtol=2e-2, atol=2e-3)
        expected = np.array(TIMES) * (level / (1 - level)) ** (1 / sharpness)
        np.testing.assert_allclose(p.transition_times, expected, rtol=1e-2)
        assert p.starts[0] == 0 and p.ends[-1] == t.size - 1
        assert np.all(p.starts <= p.ends) and np.all(p.ends[:-1] < p.starts[1:])


def test_linear_grid_and_logistic_in_time():
    # Depth-2-like: logistic drops in t (width ∝ 1/s), recorded on a linear grid (GD steps).
    t = np.arange(0, 3001, dtype=float)
    s, t_half = np.array([4.0, 2.0, 1.0]), np.array([300.0, 700.0, 1500.0])
    drops = s**2 / 2
    loss = np.sum(drops[None, :] / (1 + np.exp((t[:, None] - t_half) * 2 * s / 40.0)), axis=1)
    p = detect_plateaus(t, loss)
    assert p.n_plateaus == 4
    np.testing.assert_allclose(p.plateau_losses, [10.5, 2.5, 0.5, 0.0], rtol=2e-2, atol=2e-3)
    # level 0.75 of a logistic in t: t_half + ln 3 · (40 / 2s)
    np.testing.assert_allclose(p.transition_times, t_half + np.log(3) * 40 / (2 * s), rtol=1e-2)


def test_single_drop_and_flat_curves():
    t = np.geomspace(1e-2, 1e3, 300)
    one = detect_plateaus(t, 1.0 / (1.0 + (t / 3.0) ** 6))
    assert one.n_plateaus == 2 and one.transition_times.shape == (1,)  # before and after the one drop
    np.testing.assert_allclose(one.plateau_losses, [1.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(one.transition_times, [3.0 * 3 ** (1 / 6)], rtol=1e-2)
    # a lazy-regime exponential decay on a linear grid: one drop, no spurious plateaus
    tl = np.linspace(0, 50, 1001)
    exp = detect_plateaus(tl, 2.0 * np.exp(-tl))
    assert exp.n_plateaus == 2
    flat = detect_plateaus(t, np.full_like(t, 0.7))
    assert flat.n_plateaus == 1 and flat.transition_times.size == 0 and flat.plateau_losses[0] == pytest.approx(0.7)


@pytest.mark.parametrize("t_end", [210.0, 260.0])
def test_no_final_plateau_when_curve_ends_mid_drop(t_end):
    t = np.geomspace(1.0, t_end, 300)  # stops during the second drop (half done at t = 200)
    p = detect_plateaus(t, _log_staircase(t, LEVELS, TIMES, 20.0))
    assert p.n_plateaus == 2 and p.ends[-1] < t.size - 1
    np.testing.assert_allclose(p.plateau_losses, LEVELS[:2], rtol=2e-2)


def test_small_late_drop_is_resolved():
    # s = (8, 4, 2, 1): the last drop is 0.6% of the total, still its own plateau.
    s = np.array([8.0, 4.0, 2.0, 1.0])
    levels = 0.5 * np.concatenate([[np.sum(s**2)], np.sum(s**2) - np.cumsum(s**2)])
    t = np.geomspace(1.0, 1e4, 500)
    p = detect_plateaus(t, _log_staircase(t, levels, 100.0 * 8 / s, 20.0))
    assert p.n_plateaus == 5
    np.testing.assert_allclose(p.plateau_losses, levels, rtol=2e-2, atol=1e-3)


def test_robust_to_small_noise():
    rng = np.random.default_rng(0)
    t = np.geomspace(1.0, 4000.0, 600)
    clean = _log_staircase(t, LEVELS, TIMES, 20.0)
    p = detect_plateaus(t, clean * (1 + 1e-3 * rng.standard_normal(t.size)) + 1e-4 * rng.standard_normal(t.size))
    assert p.n_plateaus == 4
    np.testing.assert_allclose(p.plateau_losses, LEVELS, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("depth,width,init_scale,n_seeds", [(2, 8, 1e-4, 48), (3, 16, 1e-3, 8)])
def test_simulated_deep_linear_nets(depth, width, init_scale, n_seeds):
    # Same (cached) gradient-flow runs as tests/test_saddle_theory.py, s = (4, 2, 1).
    from test_saddle_theory import S, horizon_for, simulate
    task, t, losses, _ = simulate(depth, width, init_scale, n_seeds, S, horizon_for(depth, width, init_scale, n_seeds))
    expected = 0.5 * float(task.trace_yy) - 0.5 * np.concatenate([[0.0], np.cumsum(np.square(S))])
    for loss in losses:
        p = detect_plateaus(t, loss)
        assert p.n_plateaus == 4
        np.testing.assert_allclose(p.plateau_losses, expected, rtol=2e-2, atol=1e-3)
        assert np.all(np.diff(p.transition_times) > 0)


def test_input_validation():
    t = np.geomspace(1, 10, 20)
    with pytest.raises(ValueError, match="equal length"):
        detect_plateaus(t, t[:-1])
    with pytest.raises(ValueError, match="finite"):
        detect_plateaus(t, np.where(t > 5, np.nan, 1.0))
    with pytest.raises(ValueError, match="level"):
        detect_plateaus(t, 1 / t, level=1.0)
    with pytest.raises(ValueError, match="non-decreasing"):
        detect_plateaus(t[::-1], 1 / t)


def test_rise_times_interpolate_in_log_time():
    # y linear in ln t crosses ½ at exactly t = √(t₁t₂); linear interpolation in ln t is exact there.
    t = np.concatenate([[0.0], np.geomspace(1.0, 1e4, 37)])
    frac = np.clip(np.log(np.maximum(t, 1e-300) / 10.0) / np.log(1e3 / 10.0), 0, None)[:, None]
    np.testing.assert_allclose(rise_times(t, frac, 0.5), [100.0], rtol=1e-12)
    assert np.isinf(rise_times(t, 0.1 * frac, 0.5)[0])
