"""Figure conventions: simulation solid, theory dashed on top, time axes labelled with their unit."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SIM = dict(lw=2.0, alpha=0.75)
THEORY = dict(lw=1.4, ls="--", color="k")
TIME_LABEL = "time t/τ  (GD: step × η)"


def colors(n: int) -> list:
    cmap = plt.get_cmap("viridis")
    return [cmap(i / max(n - 1, 1) * 0.85) for i in range(n)]


def figure(n_panels: int, width: float = 4.2, height: float = 3.4):
    fig, axes = plt.subplots(1, n_panels, figsize=(width * n_panels, height), squeeze=False)
    return fig, list(axes[0])


def legend_sim_theory(ax) -> None:
    """Add 'simulation' (solid) and 'theory' (dashed) entries to an axis legend."""
    ax.plot([], [], color="0.4", label="simulation", **SIM)
    ax.plot([], [], label="theory", **THEORY)
    ax.legend(fontsize=8, frameon=False)


def progress(items, enabled: bool, desc: str):
    """tqdm over items when enabled (the CLI's progress bars), else the items.

    The stage bar stays on screen when done (with its elapsed time); bars of the
    simulation inside a stage (GD steps, flow time) show below it while it runs."""
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=True)


def staircase(ax, t, loss, prediction, *, time_label: str = TIME_LABEL, color: str = "C0", label: str = "simulation"):
    """Draw a simulated loss curve (solid) and a predicted ``theory.staircase.Staircase`` over it:
    plateau levels dashed, each spanning its predicted stretch of time, and the
    predicted transition times as dotted vertical lines; log time, log loss.

    Points with t ≤ 0 are left out (log axis). Returns ``ax``.
    """
    import numpy as np

    t, loss = np.asarray(t, float), np.asarray(loss, float)
    keep = t > 0
    ax.plot(t[keep], loss[keep], color=color, label=label, **SIM)
    pl = np.asarray(prediction.plateau_losses, float)
    tt = np.asarray(prediction.transition_times, float)
    t_lo, t_hi = t[keep][0], t[keep][-1]
    edges = np.concatenate([[t_lo], np.clip(tt, t_lo, t_hi), [t_hi]])
    floor = max(1e-6 * float(np.max(np.abs(loss))), float(np.min(loss[keep][loss[keep] > 0])) / 2 if np.any(loss[keep] > 0) else 1e-12)
    for k, level in enumerate(pl):
        ax.hlines(max(level, floor), edges[k], edges[k + 1], label="theory plateaus" if k == 0 else None, **THEORY)
    for k, tk in enumerate(tt):
        ax.axvline(tk, color="C3", ls=":", lw=1.2, label="theory transitions" if k == 0 else None)
    ax.set(xscale="log", yscale="log", xlabel=f"{time_label} (log)", ylabel="loss L = (1/2P)Σ‖y − ŷ‖²")
    ax.legend(fontsize=7, frameon=False)
    return ax
