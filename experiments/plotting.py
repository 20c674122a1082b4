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
