"""``saddle gallery``: one small PNG per experiment, from its smoke config.

Each experiment's smoke config is simulated in float64 and its first figure
(the one its ``plot`` returns first) is saved as ``OUT/<name>.png`` at a low
resolution, small enough to commit (docs/gallery.md shows them). Nothing
existing is overwritten unless ``overwrite`` is set.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Optional

import numpy as np

DPI = 60  # ~30-60 KB per figure: small enough to keep in git


def targets(out_dir: Path, names: Iterable[str]) -> List[Path]:
    return [Path(out_dir) / f"{name}.png" for name in names]


def make(out_dir, names: Optional[Iterable[str]] = None, *, overwrite: bool = False,
         dpi: int = DPI, progress: bool = False) -> List[Path]:
    """Write ``out_dir/<name>.png`` for each experiment in ``names`` (default: all).

    Unknown names and existing PNGs (without ``overwrite``) are refused before
    any compute. Returns the written paths in name order.
    """
    import jax

    import experiments
    from experiments import plotting

    names = list(names) if names else experiments.names()
    exps = [experiments.get(n) for n in names]  # unknown names fail first
    out_dir = Path(out_dir)
    paths = targets(out_dir, names)
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist; pass --overwrite to replace them")
    if int(dpi) < 20:
        raise ValueError(f"dpi must be ≥ 20, got {dpi}")
    out_dir.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_enable_x64", True)
    written = []
    for exp, path in plotting.progress(list(zip(exps, paths)), progress, desc="gallery"):
        cfg = exp.smoke()
        arrays = {k: np.asarray(v) for k, v in exp.simulate(cfg, progress=False).items()}
        figures = exp.plot(arrays, cfg)
        first = next(iter(figures.values()))
        tmp = path.with_suffix(".tmp.png")
        first.savefig(tmp, dpi=dpi, bbox_inches="tight")
        tmp.replace(path)
        for fig in figures.values():
            plotting.plt.close(fig)
        written.append(path)
    return written
