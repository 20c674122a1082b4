"""Data distributions: samplers and their (population or empirical) statistics.

Conventions (docs/design.md): inputs are rows, ``x: (n_samples, n_in)``, targets
``y: (n_samples, n_out)``; Σxx = XᵀX/P and Σyx = YᵀX/P, so that the loss
L = (1/2P) Σ_μ ‖y_μ − W x_μ‖² = ½ tr Σyy − tr(W Σyxᵀ) + ½ tr(W Σxx Wᵀ).
"""
from tasks.linear_teacher import LinearTask, teacher, from_data
from tasks.hierarchy import hierarchy, tree_features

__all__ = ["LinearTask", "teacher", "from_data", "hierarchy", "tree_features"]
