"""Scoring: probabilities for a frame or an encoded batch, and the evaluation bundle of metrics."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from models.asymdiffrec import Recommender
from models.metrics import ROBUSTNESS_RATES, all_metrics, by_missing_count, robustness_curve
from models.schema import EncodedBatch, FeatureSchema


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def predict_batch(model: Recommender, batch: EncodedBatch, batch_size: int = 8192, mask: torch.Tensor | None = None) -> np.ndarray:
    """Click probabilities (N,) in float64; `mask` replaces the batch's missing mask when given."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    if mask is not None:
        batch = batch.with_mask(mask)
    out = []
    for start in range(0, len(batch), batch_size):
        part = batch.index(slice(start, start + batch_size)).to(device)
        out.append(torch.sigmoid(model(part).float()).cpu())
    model.train(was_training)
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def predict(model: Recommender, schema: FeatureSchema, frame: pd.DataFrame, batch_size: int = 8192) -> np.ndarray:
    """Click probabilities for the rows of a frame; only the schema's feature columns are read."""
    return predict_batch(model, schema.encode(frame, with_label=False), batch_size)


def evaluate(
    model: Recommender,
    batch: EncodedBatch,
    *,
    rates: tuple[float, ...] = ROBUSTNESS_RATES,
    seed: int = 0,
    batch_size: int = 8192,
) -> dict[str, Any]:
    """Natural metrics, metrics by missing count, and the robustness curve on a labelled batch."""
    if batch.label is None:
        raise ValueError("evaluation needs labels; encode a frame that has the label column")
    y = batch.label.numpy()
    users = batch.user.numpy() if batch.user is not None else None
    p = predict_batch(model, batch, batch_size)
    result: dict[str, Any] = {
        "natural": all_metrics(y, p, users),
        "by_missing_count": by_missing_count(y, p, batch.mask.sum(1).numpy(), users),
    }
    if rates:
        result["robustness"] = robustness_curve(lambda m: predict_batch(model, batch, batch_size, m), batch.mask, y, users, rates, seed)
    return result
