"""How parameters move: losses, GD/SGD (optax + lax.scan), gradient flow (diffrax).

Time convention (docs/design.md): gradient flow τ dθ/dt = −∂L/∂θ; gradient descent
with learning rate η is its Euler discretisation with τ = 1/η, so step k sits
at time t = k (in units of τ, t/τ = kη).
"""
from dynamics.trajectory import Trajectory, log_steps, log_times
from dynamics.losses import affine_free_loss, affine_residual, mse, linear_loss_from_stats, model_loss
from dynamics.gd import descend
from dynamics.flow import gradient_flow

__all__ = [
    "Trajectory", "log_steps", "log_times", "mse", "affine_free_loss", "affine_residual", "linear_loss_from_stats",
    "model_loss", "descend", "gradient_flow",
]
