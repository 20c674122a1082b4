"""Figures a reader can read: curves that differ by more than line width, theory
dashes on top of simulation, large high-contrast labels, no invented floor values.

Each plot is drawn from synthetic arrays of the right shapes (built from the
theory), so these tests take well under a second each."""
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
from matplotlib.colors import to_rgb  # noqa: E402

from experiments import rich_lazy, saddle_to_saddle, saxe_modes  # noqa: E402
from theory.linear import deep_mode_strength  # noqa: E402


def _solid(line):
    return line.get_linestyle() == "-" and len(line.get_xdata()) > 0


def _dashed(line):
    return line.get_linestyle() == "--" and len(line.get_xdata()) > 0


def _saxe_arrays(cfg):
    s = np.asarray(cfg.s)
    gd_t = np.arange(0, cfg.horizon + 1e-9, 0.05)
    flow_t = np.linspace(0.0, cfg.horizon, 301)
    arrays = {"s": s, "u0": np.float64(cfg.u0), "trace_yy": np.float64(np.sum(s**2)), "gd_t": gd_t, "flow_t": flow_t}
    arrays["gd_modes"] = np.asarray(deep_mode_strength(gd_t[:, None], s=s, u0=cfg.u0, depth=2))
    arrays["gd_loss"] = 0.5 * np.sum((s - arrays["gd_modes"]) ** 2, axis=1) + 1e-12
    for d in cfg.flow_depths:
        arrays[f"flow{d}_modes"] = np.asarray(deep_mode_strength(flow_t[:, None], s=s, u0=cfg.u0, depth=d)) * 1.001
    return arrays


def test_saxe_depths_differ_by_marker_and_theory_is_on_top():
    cfg = saxe_modes.Config()
    figs = saxe_modes.plot(_saxe_arrays(cfg), cfg)
    ax_gd, ax_deep, _ = figs["modes"].axes[:3]
    by_depth = {}
    for line in ax_deep.lines:
        if _solid(line) and line.get_gid():
            by_depth.setdefault(line.get_gid(), set()).add(line.get_marker())
    assert set(by_depth) == {"sim-depth-3", "sim-depth-4"}
    markers = [m for ms in by_depth.values() for m in ms]
    assert len(set(markers)) == 2 and "None" not in markers and "" not in markers, by_depth
    widths = {line.get_linewidth() for line in ax_deep.lines if _solid(line)}
    assert len(widths) == 1  # not told apart by line width alone
    for ax in (ax_gd, ax_deep):
        solid = [line.get_zorder() for line in ax.lines if _solid(line)]
        dashed = [line.get_zorder() for line in ax.lines if _dashed(line)]
        assert dashed and min(dashed) > max(solid)


def _rich_lazy_arrays(cfg):
    rng = np.random.default_rng(0)
    nd, ns, d, k = cfg.n_deltas, cfg.n_scales, cfg.n_in, len(cfg.white_deltas)
    t = np.concatenate([[0.0], np.geomspace(1e-2, cfg.horizon, cfg.n_times)])
    wt = np.concatenate([[0.0], np.geomspace(1e-2, cfg.white_horizon, 50)])
    pos = lambda *shape: rng.uniform(1e-6, 1.0, shape)
    return {
        "white_t": wt, "white_loss": pos(k, wt.size), "white_loss_theory": pos(k, wt.size),
        "white_S": pos(k, wt.size), "white_S_theory": pos(k, wt.size),
        "t": t, "test_loss": pos(nd, ns, t.size), "test_loss_lin": pos(nd, ns, t.size), "S": pos(nd, ns, t.size),
        "loss": pos(nd, ns, t.size), "beta_lin": pos(nd, ns, t.size, d), "x_train": pos(cfg.n_train, d),
        "beta_target": pos(d), "grid_delta": np.linspace(-10, 10, nd), "grid_scale": np.geomspace(1e-3, 3, ns),
    }


def _dark(color) -> bool:
    return sum(to_rgb(color)) / 3 < 0.25


def test_rich_lazy_phase_diagram_labels_are_large_and_high_contrast():
    cfg = rich_lazy.smoke()
    fig = rich_lazy.plot(_rich_lazy_arrays(cfg), cfg)["rich_lazy_phase"]
    heatmaps = [ax for ax in fig.axes if ax.images]
    assert len(heatmaps) == 3
    for ax in heatmaps:
        labels = ax.get_xticklabels() + ax.get_yticklabels()
        assert labels and all(t.get_fontsize() >= 9.5 and _dark(t.get_color()) for t in labels)
        for text in (ax.xaxis.label, ax.yaxis.label):
            assert text.get_fontsize() >= 10.5 and _dark(text.get_color())
        corner_names = [t for t in ax.texts if t.get_text() in ("lazy", "rich")]
        assert len(corner_names) == 2
        for t in corner_names:  # light text with a dark outline: readable on any cell of the colour map
            assert t.get_fontsize() >= 10 and t.get_path_effects() and sum(to_rgb(t.get_color())) / 3 > 0.9


def _saddle_arrays(cfg):
    s = np.asarray(cfg.s)
    trace_yy = float(np.sum(s**2))  # no noise: the last plateau is exactly 0
    arrays = {"s": s, "trace_yy": np.float64(trace_yy)}
    for depth in cfg.depths:
        t = np.concatenate([[0.0], np.geomspace(1.0, 1e4, 60)])
        loss = np.tile(np.linspace(0.5 * trace_yy, 1e-8, t.size), (2, 1))
        svals = np.tile(np.linspace(0, 1, t.size)[None, :, None] * s, (2, 1, 1))
        arrays.update({f"t_{depth}": t, f"loss_{depth}": loss, f"svals_{depth}": svals})
    return arrays


def test_saddle_to_saddle_marks_a_zero_plateau_instead_of_drawing_it_at_the_floor():
    cfg = saddle_to_saddle.smoke()
    arrays = _saddle_arrays(cfg)
    fig = saddle_to_saddle.plot(arrays, cfg)["saddle_to_saddle"]
    floor = 1e-4 * float(arrays["trace_yy"])
    loss_axes = [ax for ax in fig.axes if ax.get_yscale() == "log"]
    assert len(loss_axes) == len(cfg.depths)
    for ax in loss_axes:
        levels = [line.get_ydata()[0] for line in ax.lines
                  if line.get_linestyle() == "--" and len(set(np.ravel(line.get_ydata()))) == 1]
        assert len(levels) == len(cfg.s)  # plateaus 0..r-1 drawn; the zero one is not
        assert not any(np.isclose(level, floor) for level in levels)
        marks = [t.get_text() for t in ax.texts if f"plateau {len(cfg.s)}" in t.get_text()]
        assert marks and "L = 0" in marks[0]
