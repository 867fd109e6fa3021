"""Base CTR models, each split into an encoder h (embeddings + network -> latent z) and a head f.

Any model that follows this split can be wrapped by AsymDiffRec: register it with
`@register("name")` and implement `encode(emb) -> z` and `head(z) -> logit`.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from models.config import ModelConfig
from models.layers import MLP, CrossNetV2, FeatureEmbedding
from models.schema import EncodedBatch, FeatureSchema

BASE_MODELS: dict[str, type["BaseModel"]] = {}


def register(name: str) -> Callable[[type["BaseModel"]], type["BaseModel"]]:
    def add(cls: type[BaseModel]) -> type[BaseModel]:
        BASE_MODELS[name] = cls
        return cls

    return add


class BaseModel(nn.Module):
    """h = encode(embedding(x)), f = head(z). Subclasses set `latent_dim` and `out`.

    Every model here has a deep tower (`self.deep`, an MLP). `latent_layer` says where h ends in it:
    -1 after the last hidden layer, 0 before the first (the concatenated field embeddings), k after
    hidden layer k; the rest of the tower belongs to the head f. The network and its weights are the
    same whatever the split; only where h ends and f begins moves.
    """

    latent_dim: int

    def __init__(self, schema: FeatureSchema, cfg: ModelConfig):
        super().__init__()
        self.embedding = FeatureEmbedding(schema, cfg.embed_dim)
        self.embed_drop = nn.Dropout(cfg.embed_dropout) if cfg.embed_dropout > 0 else nn.Identity()
        self.n_fields = schema.n_fields

    def _build_deep(self, in_dim: int, cfg: ModelConfig) -> int:
        """Build the deep tower and its split; return the width of the tower's part of z."""
        self.deep = MLP(in_dim, cfg.hidden, cfg.dropout)
        k = len(cfg.hidden) if cfg.latent_layer < 0 else cfg.latent_layer
        self.split = k * (len(self.deep) // len(cfg.hidden))  # modules of the tower that belong to h
        return in_dim if k == 0 else cfg.hidden[k - 1]

    def deep_lower(self, x: torch.Tensor) -> torch.Tensor:
        for layer in list(self.deep)[: self.split]:
            x = layer(x)
        return x

    def deep_upper(self, z: torch.Tensor) -> torch.Tensor:
        for layer in list(self.deep)[self.split :]:
            z = layer(z)
        return z

    def encode(self, emb: torch.Tensor) -> torch.Tensor:
        """(N, n_fields, d) masked field embeddings -> (N, latent_dim)."""
        raise NotImplementedError

    def head(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) -> (N,) logits."""
        return self.out(z).squeeze(-1)

    def h(self, batch: EncodedBatch, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(self.embedding(batch, mask))

    def forward(self, batch: EncodedBatch) -> torch.Tensor:
        return self.head(self.h(batch))


@register("dnn")
class DNN(BaseModel):
    """Concatenated embeddings -> MLP; z is taken inside the MLP (`latent_layer`)."""

    def __init__(self, schema: FeatureSchema, cfg: ModelConfig):
        super().__init__(schema, cfg)
        self.latent_dim = self._build_deep(schema.n_fields * cfg.embed_dim, cfg)
        self.out = nn.Linear(self.deep.out_dim, 1)

    def encode(self, emb: torch.Tensor) -> torch.Tensor:
        return self.deep_lower(self.embed_drop(emb.flatten(1)))

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.deep_upper(z)).squeeze(-1)


@register("dcnv2")
class DCNv2(BaseModel):
    """DCN-V2 (parallel): a cross network and a deep network side by side; z is the cross output
    concatenated with the deep tower's activations at `latent_layer`."""

    def __init__(self, schema: FeatureSchema, cfg: ModelConfig):
        super().__init__(schema, cfg)
        in_dim = schema.n_fields * cfg.embed_dim
        self.cross = CrossNetV2(in_dim, cfg.cross_layers)
        self.cross_dim = in_dim
        self.latent_dim = in_dim + self._build_deep(in_dim, cfg)
        self.out = nn.Linear(in_dim + self.deep.out_dim, 1)

    def encode(self, emb: torch.Tensor) -> torch.Tensor:
        x0 = self.embed_drop(emb.flatten(1))
        return torch.cat([self.cross(x0), self.deep_lower(x0)], dim=1)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        cross, deep = z[:, : self.cross_dim], z[:, self.cross_dim :]
        return self.out(torch.cat([cross, self.deep_upper(deep)], dim=1)).squeeze(-1)


@register("deepfm")
class DeepFM(BaseModel):
    """DeepFM: z is the FM pairwise-interaction vector concatenated with the deep tower's
    activations at `latent_layer`."""

    def __init__(self, schema: FeatureSchema, cfg: ModelConfig):
        super().__init__(schema, cfg)
        self.fm_dim = cfg.embed_dim
        self.latent_dim = cfg.embed_dim + self._build_deep(schema.n_fields * cfg.embed_dim, cfg)
        self.out = nn.Linear(cfg.embed_dim + self.deep.out_dim, 1)

    def encode(self, emb: torch.Tensor) -> torch.Tensor:
        fm = 0.5 * (emb.sum(1).pow(2) - emb.pow(2).sum(1))  # sum over pairs of e_i * e_j
        return torch.cat([fm, self.deep_lower(self.embed_drop(emb.flatten(1)))], dim=1)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        fm, deep = z[:, : self.fm_dim], z[:, self.fm_dim :]
        return self.out(torch.cat([fm, self.deep_upper(deep)], dim=1)).squeeze(-1)


def build_base_model(schema: FeatureSchema, cfg: ModelConfig) -> BaseModel:
    if cfg.base not in BASE_MODELS:
        raise ValueError(f"model.base '{cfg.base}' is unknown; use one of {sorted(BASE_MODELS)}")
    return BASE_MODELS[cfg.base](schema, cfg)
