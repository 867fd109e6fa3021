"""The model variants compared in the quality report, all wrapping one base model (h, f).

    base         p = σ(f(h(x)))                        trained on x0 (natural missingness)
    dropout      p = σ(f(h(x)))                        trained on x0 and on x_t (same drops, no denoiser)
    gaussian     p = σ(f(g(h(x), t_s)))                symmetric Gaussian diffusion of z (DiffRec-style)
    asymdiffrec  p = σ(f(g([s, h(x)])))                forward: drop fields; reverse: denoise the latent
    multimask    p = σ(f(h(a(s) ⊙ e(x))))              K masked copies per sample, a mask-conditioned field adapter
                                                       (AdaF2M2-style feature masking with a state-aware adapter)

AsymDiffRec's loss: BCE(f(h(x0)), y) + λ_rec ||z0' - h(x0)||² + λ_aux BCE(f(z0'), y), with
z0' = g([s_t, h(x_t)]). x0 and x_t share one embedding look-up: the ids are embedded once and x_t
only swaps in the missing embedding for the dropped fields. The squared error is averaged over
latent dimensions so λ_rec does not depend on the latent width.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.base_models import BaseModel, build_base_model
from models.config import ModelConfig
from models.denoiser import Denoiser
from models.diffusion import FeatureDropProcess, GaussianLatentSchedule, LatentReverseProcess
from models.schema import EncodedBatch, FeatureSchema

Losses = dict[str, torch.Tensor]


class Recommender(nn.Module):
    """The `base` variant; subclasses change the loss and the serving path."""

    def __init__(self, base: BaseModel, schema: FeatureSchema, cfg: ModelConfig):
        super().__init__()
        self.base = base
        self.cfg = cfg

    def serve_latent(self, batch: EncodedBatch) -> torch.Tensor:
        """The latent the head scores at serving time."""
        return self.base.h(batch)

    def forward(self, batch: EncodedBatch) -> torch.Tensor:
        """Serving logits (N,), one pass, using the batch's real missing mask."""
        return self.base.head(self.serve_latent(batch))

    def loss(self, batch: EncodedBatch, generator: torch.Generator | None = None) -> tuple[torch.Tensor, Losses]:
        task = F.binary_cross_entropy_with_logits(self.base(batch), batch.label)
        return task, {"task": task.detach()}

    def _target(self, z0: torch.Tensor) -> torch.Tensor:
        """The reconstruction target h(x0), without its gradient when `stop_grad`."""
        return z0.detach() if self.cfg.stop_grad else z0

    def task_oriented_loss(self, z0: torch.Tensor, z0_hat: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, Losses]:
        """BCE(f(z0), y) + λ_rec ||z0' - sg(z0)||² + λ_aux BCE(f(z0'), y): the loss of every denoising variant."""
        task = F.binary_cross_entropy_with_logits(self.base.head(z0), label)
        rec = (z0_hat.float() - self._target(z0).float()).pow(2).mean()
        aux = F.binary_cross_entropy_with_logits(self.base.head(z0_hat), label)
        total = task + self.cfg.lambda_rec * rec + self.cfg.lambda_aux * aux
        return total, {"task": task.detach(), "rec": rec.detach(), "aux": aux.detach()}

    def _encode_pair(self, batch: EncodedBatch, mask_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h(x0), h(x_t) from a single embedding look-up and a single encoder pass."""
        emb = self.base.embedding
        raw = emb.lookup(batch)
        both = torch.cat([emb.mask_fields(raw, batch.mask), emb.mask_fields(raw, mask_t)], dim=0)
        z = self.base.encode(both)
        return z[: len(batch)], z[len(batch) :]


class DropoutAugmented(Recommender):
    """The base model trained on x0 and on x_t, x_t from the same forward process; no denoiser."""

    def __init__(self, base: BaseModel, schema: FeatureSchema, cfg: ModelConfig):
        super().__init__(base, schema, cfg)
        self.process = make_forward_process(schema, cfg)

    def loss(self, batch: EncodedBatch, generator: torch.Generator | None = None) -> tuple[torch.Tensor, Losses]:
        z0, zt = self._encode_pair(batch, self.process(batch.mask, generator))
        task = F.binary_cross_entropy_with_logits(self.base.head(z0), batch.label)
        aug = F.binary_cross_entropy_with_logits(self.base.head(zt), batch.label)
        # The same weight as AsymDiffRec's auxiliary task loss, so the two see equal task pressure on x_t.
        weight = self.cfg.lambda_aux if self.cfg.lambda_aux > 0 else 1.0
        return task + weight * aug, {"task": task.detach(), "aug": aug.detach()}


class AsymDiffRec(Recommender):
    """Asymmetric diffusion: discrete drops in feature space, a continuous denoiser in latent space."""

    def __init__(self, base: BaseModel, schema: FeatureSchema, cfg: ModelConfig):
        super().__init__(base, schema, cfg)
        self.process = make_forward_process(schema, cfg)
        self.reverse = LatentReverseProcess(cfg.reverse_steps, step_dim=16 if cfg.step_cond else 0)
        cond_dim = schema.n_fields + self.reverse.extra_cond_dim
        self.denoiser = Denoiser(base.latent_dim, cond_dim, cfg.denoiser_hidden, cfg.residual)

    def serve_latent(self, batch: EncodedBatch) -> torch.Tensor:
        return self.reverse(self.denoiser, self.base.h(batch), batch.mask)

    def forward(self, batch: EncodedBatch) -> torch.Tensor:
        if self.cfg.serve == "denoised":
            return self.base.head(self.serve_latent(batch))
        z = self.base.h(batch)  # ensemble: the plain and the denoised path share one encoder pass
        return 0.5 * (self.base.head(z) + self.base.head(self.reverse(self.denoiser, z, batch.mask)))

    def loss(self, batch: EncodedBatch, generator: torch.Generator | None = None) -> tuple[torch.Tensor, Losses]:
        mask_t = self.process(batch.mask, generator)
        z0, zt = self._encode_pair(batch, mask_t)
        z0_hat = self.reverse(self.denoiser, zt, mask_t)
        return self.task_oriented_loss(z0, z0_hat, batch.label)


class FieldAdapter(nn.Module):
    """a(s): one weight per field from the sample's missing mask, in (0, 2), 1 at initialisation.

    AdaF2M2's state-aware adapter re-weights feature embeddings by the sample's state; here the state
    is which fields are missing, so the model can lean on what is there when something is not.
    """

    def __init__(self, n_fields: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_fields, hidden), nn.SiLU(), nn.Linear(hidden, n_fields))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(N, n_fields, d) masked embeddings, (N, n_fields) mask -> re-weighted embeddings."""
        weights = 2.0 * torch.sigmoid(self.net(mask.to(emb.dtype)))
        return emb * weights.unsqueeze(-1)


class MultiMaskAdapter(Recommender):
    """The rival: the base model trained on x0 and on `mask_copies` masked copies of every sample per
    step (each from the same forward process as AsymDiffRec's x_t), through a field adapter a(s)
    conditioned on the mask; no denoiser. Serving: f(h(a(s) ⊙ e(x))) with the real mask."""

    def __init__(self, base: BaseModel, schema: FeatureSchema, cfg: ModelConfig):
        super().__init__(base, schema, cfg)
        self.process = make_forward_process(schema, cfg)
        self.adapter = FieldAdapter(schema.n_fields, cfg.adapter_hidden)

    def serve_latent(self, batch: EncodedBatch) -> torch.Tensor:
        emb = self.base.embedding(batch)
        return self.base.encode(self.adapter(emb, batch.mask))

    def loss(self, batch: EncodedBatch, generator: torch.Generator | None = None) -> tuple[torch.Tensor, Losses]:
        emb = self.base.embedding
        raw = emb.lookup(batch)
        masks = [batch.mask] + [self.process(batch.mask, generator) for _ in range(self.cfg.mask_copies)]
        views = torch.cat([self.adapter(emb.mask_fields(raw, m), m) for m in masks], dim=0)
        logits = self.base.head(self.base.encode(views)).view(len(masks), len(batch))
        task = F.binary_cross_entropy_with_logits(logits[0], batch.label)
        aug = F.binary_cross_entropy_with_logits(logits[1:], batch.label.expand(len(masks) - 1, -1))
        weight = self.cfg.lambda_aux if self.cfg.lambda_aux > 0 else 1.0  # as the dropout baseline weighs x_t
        return task + weight * aug, {"task": task.detach(), "aug": aug.detach()}


class GaussianDiffRec(Recommender):
    """Symmetric baseline: Gaussian noise on z = h(x0), a step-conditioned g predicts z0."""

    step_dim = 16

    def __init__(self, base: BaseModel, schema: FeatureSchema, cfg: ModelConfig):
        super().__init__(base, schema, cfg)
        self.schedule = GaussianLatentSchedule(cfg.gaussian_steps, noise_scale=cfg.gaussian_noise_scale)
        self.denoiser = Denoiser(base.latent_dim, self.step_dim, cfg.denoiser_hidden, cfg.residual)

    def _denoise(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.denoiser(z, self.schedule.embed_timesteps(t, self.step_dim))

    def serve_latent(self, batch: EncodedBatch) -> torch.Tensor:
        z = self.base.h(batch)
        t = torch.full((z.shape[0],), self.cfg.gaussian_serve_step, device=z.device, dtype=torch.long)
        return self._denoise(z, t)

    def loss(self, batch: EncodedBatch, generator: torch.Generator | None = None) -> tuple[torch.Tensor, Losses]:
        z0 = self.base.h(batch)
        t = self.schedule.sample_timesteps(z0.shape[0], generator, z0.device)
        noise = torch.randn(z0.shape, generator=generator, device=z0.device, dtype=z0.dtype)
        z0_hat = self._denoise(self.schedule.add_noise(self._target(z0), noise, t), t)
        return self.task_oriented_loss(z0, z0_hat, batch.label)


MODEL_KINDS: dict[str, type[Recommender]] = {
    "base": Recommender,
    "dropout": DropoutAugmented,
    "gaussian": GaussianDiffRec,
    "asymdiffrec": AsymDiffRec,
    "multimask": MultiMaskAdapter,
}


def drop_groups(schema: FeatureSchema, merge_views: tuple[str, ...] = ()) -> list[int]:
    """The drop group of every field: its feature view, with the views in `merge_views` as one group."""
    unknown = sorted(set(merge_views) - set(schema.views))
    if unknown:
        raise ValueError(f"model.merge_views names unknown view(s) {unknown}; the schema has {schema.views}")
    names = [merge_views[0] if f.view in merge_views else f.view for f in schema.fields]
    order = list(dict.fromkeys(names))
    return [order.index(n) for n in names]


def make_forward_process(schema: FeatureSchema, cfg: ModelConfig) -> FeatureDropProcess:
    return FeatureDropProcess(
        drop_groups(schema, tuple(cfg.merge_views)),
        group_drop_prob=cfg.group_drop_prob,
        t_schedule=cfg.t_schedule,
        missing_count_hist=schema.missing_count_hist,
        smoothing=cfg.fitted_smoothing,
    )


def build_model(schema: FeatureSchema, config: ModelConfig | dict[str, Any] | None = None, seed: int = 0) -> Recommender:
    """Build a variant from a config (dataclass or dict); initial weights depend only on `seed`."""
    cfg = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config or {})
    cfg = cfg.resolved()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        base = build_base_model(schema, cfg)
        return MODEL_KINDS[cfg.kind](base, schema, cfg)
