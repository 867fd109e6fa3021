"""The diffusion processes, kept apart from the networks (as diffusers keeps its schedulers).

- `FeatureDropProcess`: AsymDiffRec's discrete forward process in feature space. Noise is
  missingness: x_t is x0 with t more observed fields masked. Drops come one field at a time or as
  whole feature views (a stale view is how features go missing in production).
- `LatentReverseProcess`: the continuous reverse process in latent space, z0' = g([s, z_t]),
  optionally as a chain of steps.
- `GaussianLatentSchedule`: the symmetric baseline (DiffRec-style) that adds Gaussian noise to z.

They act on masks and latents only; randomness comes from a caller's torch.Generator so a seed
reproduces a run.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=device)


def _pick_k(available: torch.Tensor, k: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """For each row, choose exactly k[row] of the True entries of `available`, uniformly at random."""
    scores = _rand(tuple(available.shape), generator, available.device)
    scores = scores.masked_fill(~available, 2.0)  # unavailable entries rank after every available one
    rank = scores.argsort(1).argsort(1)
    return rank < k.unsqueeze(1)


class FeatureDropProcess:
    """Forward process q(x_t | x0): mask t more observed fields (or whole feature views).

    t is uniform in 0..N_observed, or, with `t_schedule="fitted"`, drawn so that the total missing
    count follows the training data's missing-count histogram (restricted to counts reachable from
    the sample's own), mixed with a uniform floor of weight `smoothing`.
    """

    def __init__(
        self,
        groups: Sequence[int],
        group_drop_prob: float = 0.5,
        t_schedule: str = "uniform",
        missing_count_hist: Sequence[float] | None = None,
        smoothing: float = 0.2,
    ):
        self.groups = torch.as_tensor(list(groups), dtype=torch.long)
        self.n_fields = len(self.groups)
        self.n_groups = int(self.groups.max()) + 1 if self.n_fields else 0
        self.group_drop_prob = group_drop_prob
        self.t_schedule = t_schedule
        if t_schedule == "fitted":
            if not missing_count_hist or len(missing_count_hist) != self.n_fields + 1:
                raise ValueError("t_schedule='fitted' needs the schema's missing_count_hist (n_fields + 1 entries); refit the schema")
            hist = torch.as_tensor(list(missing_count_hist), dtype=torch.float32)
            self.count_weights = (1 - smoothing) * hist / hist.sum().clamp_min(1e-12) + smoothing / (self.n_fields + 1)

    def sample_t(self, mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """How many more fields to drop per sample, 0 <= t <= N_observed."""
        n_obs = (~mask).sum(1)
        if self.t_schedule == "uniform":
            u = _rand((mask.shape[0],), generator, mask.device)
            return torch.minimum((u * (n_obs + 1)).long(), n_obs)
        k0 = mask.sum(1, keepdim=True)
        counts = torch.arange(self.n_fields + 1, device=mask.device).unsqueeze(0)
        weights = self.count_weights.to(mask.device).unsqueeze(0) * (counts >= k0)
        total = torch.multinomial(weights, 1, generator=generator).squeeze(1)
        return total - k0.squeeze(1)

    def add_noise(self, mask: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mask exactly t[i] more observed fields of sample i; masked fields stay masked."""
        return mask | _pick_k(~mask, t, generator)

    def drop_groups(self, mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mask whole feature views: a uniform number (0..observed views) of views with an observed field."""
        groups = self.groups.to(mask.device)
        member = nn.functional.one_hot(groups, self.n_groups).float()  # (n_fields, n_groups)
        observed = ((~mask).float() @ member) > 0
        n_obs = observed.sum(1)
        k = torch.minimum((_rand((mask.shape[0],), generator, mask.device) * (n_obs + 1)).long(), n_obs)
        dropped_groups = _pick_k(observed, k, generator)
        return mask | dropped_groups[:, groups]

    def __call__(self, mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x0's mask -> x_t's mask, mixing field drops and view drops per sample."""
        by_field = self.add_noise(mask, self.sample_t(mask, generator), generator)
        if self.group_drop_prob <= 0 or self.n_groups == 0:
            return by_field
        by_group = self.drop_groups(mask, generator)
        use_group = _rand((mask.shape[0],), generator, mask.device) < self.group_drop_prob
        return torch.where(use_group.unsqueeze(1), by_group, by_field)


def sinusoidal_embedding(t: torch.Tensor, dim: int = 16) -> torch.Tensor:
    """(N,) steps (integer or not) -> (N, dim) sin/cos features."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    angles = t.float().unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class LatentReverseProcess:
    """Reverse process p(z0 | z_t, s): one g step, or a chain of `steps` with the mask fading out.

    Step k conditions g on s * (1 - k/steps): the chain starts from the sample's missingness and
    walks towards a complete sample, the latent analogue of restoring fields one by one. With
    `step_dim > 0` the condition also holds a sinusoidal embedding of the (faded) missing count |s|,
    the discrete process's time step.
    """

    def __init__(self, steps: int = 1, step_dim: int = 0):
        self.steps = steps
        self.step_dim = step_dim

    @property
    def extra_cond_dim(self) -> int:
        return self.step_dim

    def condition(self, mask: torch.Tensor, k: int, dtype: torch.dtype) -> torch.Tensor:
        s = mask.to(dtype) * (1.0 - k / self.steps)
        if self.step_dim:
            s = torch.cat([s, sinusoidal_embedding(s.sum(1), self.step_dim).to(dtype)], dim=1)
        return s

    def step(self, denoiser: nn.Module, z: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
        return denoiser(z, self.condition(mask, k, z.dtype))

    def __call__(self, denoiser: nn.Module, z_t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        z = z_t
        for k in range(self.steps):
            z = self.step(denoiser, z, mask, k)
        return z


class GaussianLatentSchedule:
    """DDPM-style linear beta schedule on latents, scaled by `noise_scale` (as DiffRec does)."""

    def __init__(self, num_steps: int = 50, beta_start: float = 1e-4, beta_end: float = 0.02, noise_scale: float = 0.1):
        self.num_steps = num_steps
        betas = noise_scale * torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(1 - betas, 0).float()

    def sample_timesteps(self, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        return torch.randint(0, self.num_steps, (n,), generator=generator, device=device)

    def add_noise(self, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.alphas_cumprod.to(z0.device)[t].unsqueeze(1).to(z0.dtype)
        return a.sqrt() * z0 + (1 - a).sqrt() * noise

    def embed_timesteps(self, t: torch.Tensor, dim: int = 16) -> torch.Tensor:
        """Sinusoidal step embedding, the condition of the Gaussian denoiser."""
        return sinusoidal_embedding(t, dim)
