"""The BentoML service: rank candidates with online Feast features, denoising what is missing.

    bentoml serve            # from the repository root (bentofile.yaml names this service)

The production model comes from the BentoML model store ($BENTOML_HOME, else the project's data/bentoml:
the promote step's pointer, or ASYMDIFFREC_MODEL_TAG), inside a built Bento the model it was packaged
with (serving/config.py); the Feast config from FEAST_FS_YAML (default feature_store.yaml; Redis:
feature_store.redis.yaml). Health: /livez, /readyz; Prometheus metrics: /metrics.
"""
from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import bentoml
import torch
from bentoml.exceptions import BadInput
from pydantic import BaseModel, ConfigDict, Field

from components.data.feature_store import ONLINE_REGISTRY, open_store
from serving.config import ServingConfig, use_model_store
from serving.ranker import Ranker

log = logging.getLogger("asymdiffrec.serving")
CONFIG = ServingConfig.load()
use_model_store()  # from a checkout: the store the pipeline promotes into, not BentoML's ~/bentoml


class RequestContext(BaseModel):
    """What the caller knows about the request; the hour and weekday are derived from its time."""

    model_config = ConfigDict(extra="forbid")
    request_time: datetime | None = Field(None, description="ISO 8601 time of the request; default: now (UTC)")


class Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int
    item_id: int


class RankedItem(BaseModel):
    item_id: int
    score: float


class RankResponse(BaseModel):
    items: list[RankedItem]
    missing: dict[str, float] = Field(description="per feature view: share of the candidates that had it missing")
    model: str
    degraded: bool


def _request_time(context: RequestContext | None) -> datetime:
    when = context.request_time if context and context.request_time else datetime.now(timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _check_unique(field: str, ids: list[int]) -> None:
    seen, dupes = set(), set()
    for i in ids:
        (dupes if i in seen else seen).add(i)
    if dupes:
        raise BadInput(f"{field}: duplicate id(s) {sorted(dupes)[:10]}; list each candidate once")


@bentoml.service(name="asymdiffrec", workers=CONFIG.workers, traffic={"timeout": 30}, metrics={"enabled": True})
class AsymDiffRecService:
    model_ref = bentoml.models.BentoModel(CONFIG.model_tag())

    def __init__(self) -> None:
        torch.set_num_threads(CONFIG.torch_threads)
        stored = bentoml.models.get(self.model_ref.tag)
        store = open_store(fs_yaml=os.environ.get("FEAST_FS_YAML"), registry=ONLINE_REGISTRY)
        self.ranker = Ranker(Path(stored.path), store, str(stored.tag))
        self.ready = self.ranker.probe()  # a model that answers NaN never takes traffic
        if self.ready:
            log.info("serving %s", stored.tag)
        else:
            log.error("NOT READY: %s scored a probe request to a non-finite value; /readyz answers 503", stored.tag)

    def __is_ready__(self) -> bool:
        return self.ready

    @bentoml.api(route="/rank")
    def rank(
        self,
        user_id: int,
        item_ids: Annotated[list[int], Field(min_length=1, max_length=CONFIG.max_candidates)],
        context: RequestContext | None = None,
    ) -> RankResponse:
        """Order the candidate items for the user, best first."""
        _check_unique("item_ids", item_ids)
        result = self.ranker.rank(user_id, item_ids, _request_time(context))
        if result.degraded:
            log.warning("degraded answer for user %s: online features unavailable", user_id)
        return RankResponse(items=result.items, missing=result.missing, model=result.model, degraded=result.degraded)

    @bentoml.api(route="/score", batchable=True, max_batch_size=CONFIG.batch_max_size, max_latency_ms=CONFIG.batch_max_latency_ms)
    def score(self, pairs: list[Pair]) -> list[float]:
        """Click probabilities for (user, item) pairs at the current time; requests are batched together."""
        if not pairs:
            return []
        scores, _ = self.ranker.score([p.user_id for p in pairs], [p.item_id for p in pairs])
        return [float(s) for s in scores]
