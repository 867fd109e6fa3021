"""g: the small latent denoiser, conditioned on a vector (the missing mask, or a step embedding)."""
from __future__ import annotations

import torch
from torch import nn


class Denoiser(nn.Module):
    """Two layers: z0' = g([c, z_t]), or z_t + g([c, z_t]) when residual.

    The residual form starts as the identity (last layer zeroed), so wrapping a base model does not
    disturb it at initialisation.
    """

    def __init__(self, latent_dim: int, cond_dim: int, hidden: int = 256, residual: bool = True):
        super().__init__()
        self.residual = residual
        self.net = nn.Sequential(nn.Linear(cond_dim + latent_dim, hidden), nn.SiLU(), nn.Linear(hidden, latent_dim))
        if residual:
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        out = self.net(torch.cat([cond.to(z.dtype), z], dim=1))
        return z + out if self.residual else out
