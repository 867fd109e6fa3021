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
    """h = encode(embedding(x)), f = head(z). Subclasses set `latent_dim` and `out`."""

    latent_dim: int

    def __init__(self, schema: FeatureSchema, cfg: ModelConfig):
        super().__init__()
        self.embedding = FeatureEmbedding(schema, cfg.embed_dim)
        self.n_fields = schema.n_fields

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
    """Concatenated embeddings -> MLP; z is the last hidden layer."""

    def __init__(self, schema: FeatureSchema, cfg: ModelConfig):
        super().__init__(schema, cfg)
        self.deep = MLP(schema.n_fields * cfg.embed_dim, cfg.hidden, cfg.dropout)
        self.latent_dim = self.deep.out_dim
        self.out = nn.Linear(self.latent_dim, 1)

    def encode(self, emb: torch.Tensor) -> torch.Tensor:
        return self.deep(emb.flatten(1))


@register("dcnv2")
class DCNv2(BaseModel):
    """DCN-V2 (parallel): a cross network and a deep network side by side; z is their concatenation."""

    def __init__(self, schema: FeatureSchema, cfg: ModelConfig):
        super().__init__(schema, cfg)
        in_dim = schema.n_fields * cfg.embed_dim
        self.cross = CrossNetV2(in_dim, cfg.cross_layers)
        self.deep = MLP(in_dim, cfg.hidden, cfg.dropout)
        self.latent_dim = in_dim + self.deep.out_dim
        self.out = nn.Linear(self.latent_dim, 1)

    def encode(self, emb: torch.Tensor) -> torch.Tensor:
        x0 = emb.flatten(1)
        return torch.cat([self.cross(x0), self.deep(x0)], dim=1)


@register("deepfm")
class DeepFM(BaseModel):
    """DeepFM: the FM pairwise-interaction vector and the deep network output, concatenated as z."""

    def __init__(self, schema: FeatureSchema, cfg: ModelConfig):
        super().__init__(schema, cfg)
        self.deep = MLP(schema.n_fields * cfg.embed_dim, cfg.hidden, cfg.dropout)
        self.latent_dim = cfg.embed_dim + self.deep.out_dim
        self.out = nn.Linear(self.latent_dim, 1)

    def encode(self, emb: torch.Tensor) -> torch.Tensor:
        fm = 0.5 * (emb.sum(1).pow(2) - emb.pow(2).sum(1))  # sum over pairs of e_i * e_j
        return torch.cat([fm, self.deep(emb.flatten(1))], dim=1)


def build_base_model(schema: FeatureSchema, cfg: ModelConfig) -> BaseModel:
    if cfg.base not in BASE_MODELS:
        raise ValueError(f"model.base '{cfg.base}' is unknown; use one of {sorted(BASE_MODELS)}")
    return BASE_MODELS[cfg.base](schema, cfg)
