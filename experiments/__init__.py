"""One module per figure or claim; ``registry()`` maps names to experiments.

Each experiment has ``Config`` (frozen, validated dataclass), ``smoke()``,
``run(config, out_dir) -> Result`` (writes results.npz, meta.json, verify.json
and PNG+PDF figures), ``plot`` and ``verify``. Nothing imports ``experiments``.
"""
from __future__ import annotations

import functools
import importlib
from types import SimpleNamespace
from typing import Dict

# name -> module; a module is imported only when its experiment is used.
_MODULES = {
    "saxe-modes": "experiments.saxe_modes",
    "lambda-balanced": "experiments.lambda_balanced",
    "saddle-to-saddle": "experiments.saddle_to_saddle",
    "relu-kinks": "experiments.relu_kinks",
    "relu-plateau-grid": "experiments.relu_plateau_grid",
    "relu-escape-grid": "experiments.relu_escape_grid",
    "conv-kernels": "experiments.conv_kernels",
    "activation-geometry": "experiments.activation_geometry",
    "semantic-hierarchy": "experiments.semantic_hierarchy",
    "rich-lazy": "experiments.rich_lazy",
    "linear-attention-plateaus": "experiments.linear_attention_plateaus",
    "attention-heads": "experiments.attention_heads",
    "softmax-icl-patterns": "experiments.softmax_icl_patterns",
    "diagonal-sparse": "experiments.diagonal_sparse",
    "llc-calibration": "experiments.llc_calibration",
    "stagewise-influence": "experiments.stagewise_influence",
}


@functools.lru_cache(maxsize=None)
def get(name: str) -> SimpleNamespace:
    """The experiment ``name``; ValueError naming the allowed ones if unknown."""
    if name not in _MODULES:
        raise ValueError(f"unknown experiment {name!r}; available: {', '.join(sorted(_MODULES))}")
    from experiments.common import run_experiment

    module = importlib.import_module(_MODULES[name])
    return SimpleNamespace(
        NAME=module.NAME,
        description=module.DESCRIPTION,
        doc=module.__doc__,
        Config=module.Config,
        smoke=module.smoke,
        simulate=module.simulate,
        verify=module.verify,
        plot=module.plot,
        run=functools.partial(run_experiment, module),
        module=module,
    )


def names() -> list:
    return sorted(_MODULES)


def registry() -> Dict[str, SimpleNamespace]:
    """Mapping name -> experiment (imports every experiment module)."""
    return {name: get(name) for name in names()}
