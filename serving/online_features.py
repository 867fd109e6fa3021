"""Online features for a ranking request, with the training set's missing semantics.

Feast applies TTL only offline: an online read returns an expired value as present. Here each
view's TTL is applied to the returned availability time (`<view>_ts`), exactly as the
point-in-time join applies it, and the sample frame is built by the same function that builds the
training set (`components.data.dataset.to_training_frame`). If the online store cannot be reached, every
stored view is missing, the request context is still computed (same function as the on-demand
view), and the result is marked degraded.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from feast import FeatureStore

from components.data.contract import DatasetSchema, schema_from_store, to_training_frame
from feature_repo.definitions import FEATURE_SERVICE, REQUEST_TIME_FIELD, request_context_frame

log = logging.getLogger(__name__)


@dataclass
class OnlineSamples:
    frame: pd.DataFrame  # dataset-contract columns (features, <view>_ts, masks), one row per candidate
    missing: dict[str, float]  # per view: share of the candidates missing it
    degraded: bool = False
    errors: list[str] = field(default_factory=list)


def serving_schema(store: FeatureStore) -> DatasetSchema:
    """The dataset contract as the store's registry holds it: the views, fields and TTLs the offline
    join used."""
    return schema_from_store(store)


def _entity_frame(user_ids: list[int], item_ids: list[int], request_time: datetime) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": np.arange(len(item_ids), dtype=np.int64),
            "user_id": np.asarray(user_ids, dtype=np.int64),
            "item_id": np.asarray(item_ids, dtype=np.int64),
            "event_timestamp": pd.Timestamp(request_time),
            REQUEST_TIME_FIELD: int(request_time.timestamp()),
        }
    )


def apply_ttl(online: pd.DataFrame, schema: DatasetSchema, request_unix_s: int) -> pd.DataFrame:
    """Blank every view whose value is older than its TTL (or newer than the request) at request time."""
    online = online.copy()
    for view, info in schema.views.items():
        ts_column, ttl_hours = info.get("timestamp_column"), info.get("ttl_hours")
        if not ts_column:
            continue
        ts = pd.to_numeric(online[ts_column], errors="coerce")
        fresh = ts.notna() & (ts <= request_unix_s)
        if ttl_hours:
            fresh &= ts >= request_unix_s - ttl_hours * 3600
        for column in [*info["features"], ts_column]:
            online[column] = online[column].astype(object).where(fresh, None)
    return online


def online_samples(
    store: FeatureStore,
    schema: DatasetSchema,
    user_id: int | list[int],
    item_ids: list[int],
    request_time: datetime | None = None,
) -> OnlineSamples:
    """One sample per (user, item): one user for every candidate, or one user per item."""
    request_time = (request_time or datetime.now(timezone.utc)).astimezone(timezone.utc)
    user_ids = list(user_id) if isinstance(user_id, (list, tuple, np.ndarray)) else [user_id] * len(item_ids)
    if len(user_ids) != len(item_ids):
        raise ValueError(f"user_id: {len(user_ids)} user ids for {len(item_ids)} item ids; give one per item or a single one")
    entities = _entity_frame(user_ids, item_ids, request_time)
    errors: list[str] = []
    try:
        rows = entities[["user_id", "item_id", REQUEST_TIME_FIELD]].to_dict("records")
        online = store.get_online_features(features=store.get_feature_service(FEATURE_SERVICE), entity_rows=rows).to_df()
        joined = pd.concat([entities[["event_id", "event_timestamp"]], online.reset_index(drop=True)], axis=1)
        joined = apply_ttl(joined, schema, int(request_time.timestamp()))
    except Exception as err:  # the online store is down or unreachable: serve with those views missing
        errors.append(f"online store unavailable: {type(err).__name__}: {err}")
        log.warning("degraded: %s", errors[-1])
        joined = pd.concat([entities, request_context_frame(entities)], axis=1)
        for view, info in schema.views.items():
            for column in [*info["features"], *( [info["timestamp_column"]] if info.get("timestamp_column") else [])]:
                if column not in joined.columns:
                    joined[column] = None
    frame = to_training_frame(joined, schema)
    missing = {view: float(frame[schema.view_mask(view)].mean()) for view in schema.views}
    return OnlineSamples(frame, missing, degraded=bool(errors), errors=errors)
