"""Rank candidates for a user: online features -> AsymDiffRec's serving pass -> ordered scores.

Plain Python (no BentoML), so the service only wraps it and tests can call it directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from feast import FeatureStore

from models import load_checkpoint
from serving.config import ServingConfig
from serving.online_features import OnlineBatch, OnlineFeatures


@dataclass
class RankResult:
    items: list[dict]  # [{"item_id": ..., "score": ...}], best first
    missing: dict[str, float]  # per feature view: share of the candidates that had it missing
    model: str
    degraded: bool
    scores: np.ndarray  # in candidate order, for the serving log
    samples: OnlineBatch


class Ranker:
    """Loads the checkpoint and the serving schema once; scores (user, item) pairs at a request time."""

    def __init__(self, checkpoint_dir: Path, store: FeatureStore, model_tag: str, config: ServingConfig | None = None):
        """`config`: the `serving:` knobs (default: params.yaml's, as the service reads them)."""
        checkpoint = load_checkpoint(checkpoint_dir)
        self.model = checkpoint.model.eval()
        self.features = checkpoint.schema
        self.online = OnlineFeatures(store, checkpoint.schema, config or ServingConfig.load())
        self.schema = self.online.contract
        self.model_tag = model_tag

    def score(self, user_ids: int | Sequence[int], item_ids: Sequence[int], request_time: datetime | None = None) -> tuple[np.ndarray, OnlineBatch]:
        """Probabilities for each (user, item); the sample's real missing mask is the noisy input."""
        when = (request_time or datetime.now(timezone.utc)).astimezone(timezone.utc)
        samples = self.online.build(user_ids, item_ids, when)
        with torch.inference_mode():
            scores = torch.sigmoid(self.model(samples.batch).float()).double().numpy()
        return scores, samples

    def probe(self) -> bool:
        """Score an unknown user and item now, through the whole path: True when the model answers a
        probability (the readiness check; a store outage still answers, degraded)."""
        scores, _ = self.score(-1, [-1], datetime.now(timezone.utc))
        return bool(np.isfinite(scores).all())

    def rank(self, user_id: int, item_ids: Sequence[int], request_time: datetime | None = None) -> RankResult:
        scores, samples = self.score(user_id, item_ids, request_time)
        order = np.argsort(-scores, kind="stable")
        items = [{"item_id": int(item_ids[i]), "score": float(scores[i])} for i in order]
        missing = {v: round(r, 6) for v, r in samples.missing.items()}
        return RankResult(items, missing, self.model_tag, samples.degraded, scores, samples)
