"""Shared layers: the feature embedding (with a learned missing embedding per field), MLP, cross net."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from models.schema import EncodedBatch, FeatureSchema


class FeatureEmbedding(nn.Module):
    """Embeds every field to a d-vector; masked fields get their own learned missing embedding.

    `lookup` returns the raw embeddings of the observed values; `mask_fields` then substitutes the
    missing embedding wherever a mask says so. Splitting the two lets a model embed a batch once and
    derive any number of masked versions (x0 and x_t) without looking the ids up again.
    """

    def __init__(self, schema: FeatureSchema, dim: int):
        super().__init__()
        self.dim = dim
        self.n_fields = schema.n_fields
        cards = [f.cardinality for f in schema.fields]
        offsets = torch.tensor([0] + cards[:-1]).cumsum(0)
        self.table = nn.Embedding(sum(cards), dim)
        self.missing = nn.Parameter(torch.empty(schema.n_fields, dim))
        nn.init.normal_(self.table.weight, std=0.01)
        nn.init.normal_(self.missing, std=0.01)
        single, multi = schema.single_fields, schema.multi_fields
        self.register_buffer("single_offsets", offsets[single].clone(), persistent=False)
        self.register_buffer("multi_offsets", offsets[multi].clone(), persistent=False)
        # Embeddings are computed single-then-multi; `order` puts them back in schema field order
        # (index_select: its backward adds into place, unlike fancy indexing's index_put; none when in order).
        order = torch.argsort(torch.tensor(single + multi, dtype=torch.long))
        self.register_buffer("order", order, persistent=False)
        self.in_order = bool(torch.equal(order, torch.arange(len(order))))

    def lookup(self, batch: EncodedBatch) -> torch.Tensor:
        """(N, n_fields, d) embeddings of the ids, ignoring the mask."""
        parts = []
        if batch.single.shape[1]:
            parts.append(self.table(batch.single + self.single_offsets))
        if batch.multi.shape[1]:
            tokens = batch.multi
            present = (tokens > 0).unsqueeze(-1).to(self.table.weight.dtype)
            vecs = self.table(tokens + self.multi_offsets.view(1, -1, 1)) * present
            parts.append(vecs.sum(2) / present.sum(2).clamp_min(1.0))  # mean-pooled bag
        emb = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return emb if self.in_order else emb.index_select(1, self.order)

    def mask_fields(self, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Substitute the missing embedding where mask is True."""
        return torch.where(mask.unsqueeze(-1), self.missing.to(emb.dtype).unsqueeze(0), emb)

    def forward(self, batch: EncodedBatch, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mask_fields(self.lookup(batch), batch.mask if mask is None else mask)


class MLP(nn.Sequential):
    """Linear -> ReLU (-> Dropout) blocks; the output is the last hidden layer."""

    def __init__(self, in_dim: int, hidden: Sequence[int], dropout: float = 0.0, norm: bool = False):
        layers: list[nn.Module] = []
        for width in hidden:
            layers.append(nn.Linear(in_dim, width))
            if norm:
                layers.append(nn.LayerNorm(width))
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
            in_dim = width
        super().__init__(*layers)
        self.out_dim = in_dim


class CrossNetV2(nn.Module):
    """DCN-V2 cross layers: x_{l+1} = x0 * (W x_l + b) + x_l (full-rank W)."""

    def __init__(self, dim: int, n_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x
