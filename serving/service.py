"""The BentoML service: rank candidates with online Feast features, denoising what is missing.

    bentoml serve            # from the repository root (bentofile.yaml names this service)

The production model comes from the BentoML model store ($BENTOML_HOME, else the project's data/bentoml:
the promote step's pointer, or ASYMDIFFREC_MODEL_TAG), inside a built Bento the model it was packaged
with (serving/config.py); the Feast config from FEAST_FS_YAML (default feature_store.yaml; Redis:
feature_store.redis.yaml). Health: /livez, /readyz; Prometheus metrics: /metrics (serving/telemetry.py);
every answer goes to the serving log (serving/serving_log.py).
"""
from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import bentoml
import numpy as np
import torch
from bentoml.exceptions import BadInput
from pydantic import BaseModel, ConfigDict, Field, field_validator

from components.data.feature_store import ONLINE_REGISTRY, open_store
from serving.config import ServingConfig, use_model_store
from serving.online_features import OnlineBatch
from serving.ranker import Ranker
from serving.serving_log import ServingLog, serving_record
from serving.telemetry import Telemetry

log = logging.getLogger("asymdiffrec.serving")
CONFIG = ServingConfig.load()
use_model_store()  # from a checkout: the store the pipeline promotes into, not BentoML's ~/bentoml

Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1, description="a signed 64-bit id")]
# What the online path can hold as a time (pandas' nanosecond range, with a margin).
EARLIEST, LATEST = datetime(1678, 1, 1, tzinfo=timezone.utc), datetime(2262, 1, 1, tzinfo=timezone.utc)
REQUEST_ID_HEADER = "x-request-id"


class RequestContext(BaseModel):
    """What the caller knows about the request; the hour and weekday are derived from its time."""

    model_config = ConfigDict(extra="forbid")
    request_time: datetime | None = Field(None, description="ISO 8601 time of the request; default: now (UTC)")

    @field_validator("request_time")
    @classmethod
    def _in_range(cls, when: datetime | None) -> datetime | None:
        if when is None:
            return None
        when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        if not EARLIEST <= when < LATEST:
            raise ValueError(f"{when.isoformat()} is outside {EARLIEST.date()}..{LATEST.date()}; send an ISO 8601 time in that range")
        return when


class RankInput(BaseModel):
    """The /rank body. Unknown keys are refused: a typo such as `contxt` would otherwise change every score."""

    model_config = ConfigDict(extra="forbid")
    user_id: Int64
    item_ids: Annotated[list[Int64], Field(min_length=1, max_length=CONFIG.max_candidates)]
    context: RequestContext | None = None


class Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: Int64
    item_id: Int64


class ScoreInput(BaseModel):
    """The /score body: (user, item) pairs scored at one request time."""

    model_config = ConfigDict(extra="forbid")
    pairs: Annotated[list[Pair], Field(min_length=1, max_length=CONFIG.max_score_pairs)]
    context: RequestContext | None = None


class RankedItem(BaseModel):
    item_id: int
    score: float


class RankResponse(BaseModel):
    items: list[RankedItem]
    missing: dict[str, float] = Field(description="per feature view: share of the candidates that had it missing")
    model: str
    degraded: bool
    request_id: str = Field(description="the serving log's id of this answer (the X-Request-ID header when sent)")


class ScoreResponse(BaseModel):
    scores: list[float] = Field(description="click probabilities, in the order of the pairs")
    missing: dict[str, float] = Field(description="per feature view: share of the pairs that had it missing")
    model: str
    degraded: bool
    request_id: str


def _request_time(context: RequestContext | None) -> datetime:
    when = context.request_time if context and context.request_time else datetime.now(timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _check_unique(field: str, ids: list[int]) -> None:
    if len(set(ids)) != len(ids):
        seen, dupes = set(), set()
        for i in ids:
            (dupes if i in seen else seen).add(i)
        raise BadInput(f"{field}: duplicate id(s) {sorted(dupes)[:10]}; list each candidate once")


def _request_id(ctx: bentoml.Context) -> str:
    given = ctx.request.headers.get(REQUEST_ID_HEADER, "") if ctx.request is not None else ""
    if len(given) > 128:
        raise BadInput(f"{REQUEST_ID_HEADER}: at most 128 characters, got {len(given)}")
    return given or uuid.uuid4().hex


@bentoml.service(
    name="asymdiffrec",
    workers=CONFIG.worker_count,
    traffic={"timeout": 30},
    metrics={"enabled": True},
    logging={"access": {"enabled": CONFIG.access_log}},
)
class AsymDiffRecService:
    model_ref = bentoml.models.BentoModel(CONFIG.model_tag())

    def __init__(self) -> None:
        torch.set_num_threads(CONFIG.torch_threads)
        stored = bentoml.models.get(self.model_ref.tag)
        store = open_store(fs_yaml=os.environ.get("FEAST_FS_YAML"), registry=ONLINE_REGISTRY)
        self.ranker = Ranker(Path(stored.path), store, str(stored.tag), CONFIG)
        online = self.ranker.online
        self.telemetry = Telemetry(str(stored.tag), online.views, online.stored_views)
        folder = CONFIG.log_path()
        worker = f"w{bentoml.server_context.worker_index or os.getpid()}"
        self.serving_log = ServingLog(folder, worker, int(CONFIG.log_max_mb * 2**20), CONFIG.log_files) if folder else None
        self.model_ready = self.ranker.probe()  # a model that answers NaN never takes traffic
        self.telemetry.sync(online.reader, online.cache, self.serving_log)
        if self.model_ready:
            log.info("serving %s (%d worker(s), item cache %d)", stored.tag, CONFIG.worker_count, CONFIG.item_cache_size)
        else:
            log.error("NOT READY: %s scored a probe request to a non-finite value; /readyz answers 503", stored.tag)

    def __is_ready__(self) -> bool:
        """Ready when the model answers; with `ready_requires_store`, also only while the store answers."""
        if not self.model_ready:
            return False
        return self.ranker.online.reader.ping() if CONFIG.ready_requires_store else True

    def _observe(self, endpoint: str, request_id: str, when: datetime, user_ids, item_ids, scores: np.ndarray,
                 samples: OnlineBatch) -> None:
        """Metrics and the serving log for one answered request."""
        if samples.degraded:
            log.warning("degraded answer (%s): %s", endpoint, samples.errors[0])
        self.telemetry.record(endpoint, samples.view_missing, samples.age_s, samples.degraded)
        self.telemetry.sync(self.ranker.online.reader, self.ranker.online.cache, self.serving_log)
        if self.serving_log is None:
            return
        self.serving_log.write(serving_record(
            request_id=request_id, endpoint=endpoint, request_time=when, model=self.ranker.model_tag,
            user_ids=user_ids, item_ids=item_ids, scores=scores, samples=samples,
            single_fields=self.ranker.online.single_field_names, stored_views=self.ranker.online.stored_views,
        ))

    @bentoml.api(route="/rank", input_spec=RankInput)
    def rank(self, user_id: int, item_ids: list[int], context: RequestContext | None = None, *, ctx: bentoml.Context) -> RankResponse:
        """Order the candidate items for the user, best first."""
        _check_unique("item_ids", item_ids)
        request_id = _request_id(ctx)
        when = _request_time(context)
        result = self.ranker.rank(user_id, item_ids, when)
        self._observe("rank", request_id, when, np.full(len(item_ids), user_id, np.int64), item_ids, result.scores, result.samples)
        return RankResponse(items=result.items, missing=result.missing, model=result.model, degraded=result.degraded, request_id=request_id)

    @bentoml.api(route="/score", input_spec=ScoreInput)
    def score(self, pairs: list[Pair], context: RequestContext | None = None, *, ctx: bentoml.Context) -> ScoreResponse:
        """Click probabilities for (user, item) pairs at the request time (default: now)."""
        request_id = _request_id(ctx)
        when = _request_time(context)
        users = [p.user_id for p in pairs]
        items = [p.item_id for p in pairs]
        scores, samples = self.ranker.score(users, items, when)
        self._observe("score", request_id, when, users, items, scores, samples)
        missing = {v: round(r, 6) for v, r in samples.missing.items()}
        return ScoreResponse(scores=scores.tolist(), missing=missing, model=self.ranker.model_tag, degraded=samples.degraded, request_id=request_id)
