"""Feast definitions for AsymDiffRec: entities, sources, feature views, the request context
on-demand view and the model's feature service, top to bottom.

`build_definitions(settings)` makes them from settings (the pipeline applies them with the TTLs
of params.yaml); `repo.py` holds the same objects at module level for `feast apply` run in this
folder. Once applied, the registry is the source of truth: later steps and the service read views,
TTLs and field kinds from it, never from these definitions again.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource
from feast.on_demand_feature_view import OnDemandFeatureView, on_demand_feature_view
from feast.types import Array, Float64, Int64, String, ValueType

from feature_repo.settings import FeatureRepoSettings

FEATURE_SERVICE = "asymdiffrec_v1"
# Each model input carries its kind as a tag; fields without one (the *_ts availability times) are metadata.
CATEGORICAL = {"kind": "categorical"}
NUMERIC = {"kind": "numeric"}
MULTI = {"kind": "multi"}
# Feast checks an on-demand view's declared fields against the inferred ones, tags included, so the
# request context's kinds live here instead of in tags.
REQUEST_CONTEXT_KINDS = {"hour_of_day": "categorical", "weekday": "categorical"}
REQUEST_TIME_FIELD = "request_unix_s"

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64, description="A listener / viewer")
item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.INT64, description="A track / title that can be recommended")

# Request context: only known when the request arrives, never missing.
request_source = RequestSource(name="request", schema=[Field(name=REQUEST_TIME_FIELD, dtype=Int64)])


def request_context_frame(inputs: pd.DataFrame) -> pd.DataFrame:
    """Hour of day and weekday (UTC) of the request. Plain pandas, so a service whose online store is
    down computes the context with this very function."""
    when = pd.to_datetime(inputs["request_unix_s"].astype("int64"), unit="s", utc=True)  # REQUEST_TIME_FIELD
    return pd.DataFrame({"hour_of_day": when.dt.hour.astype("int64"), "weekday": when.dt.weekday.astype("int64")})


request_context = on_demand_feature_view(
    name="request_context",
    sources=[request_source],
    schema=[Field(name="hour_of_day", dtype=Int64), Field(name="weekday", dtype=Int64)],
    mode="pandas",
    description="Hour of day and weekday (UTC) of the request; the same code runs for training and serving.",
)(request_context_frame)


@dataclass(frozen=True)
class Definitions:
    user_profile: FeatureView
    user_activity: FeatureView
    item_metadata: FeatureView
    item_stats: FeatureView
    request_context: OnDemandFeatureView
    service: FeatureService

    @property
    def batch_views(self) -> list[FeatureView]:
        return [self.user_profile, self.user_activity, self.item_metadata, self.item_stats]

    def objects(self) -> list:
        return [user, item, request_source, *self.batch_views, self.request_context, self.service]


def _source(settings: FeatureRepoSettings, table: str) -> FileSource:
    return FileSource(name=f"{table}_source", path=settings.source_path(table), timestamp_field="event_timestamp")


def build_definitions(settings: FeatureRepoSettings) -> Definitions:
    user_profile = FeatureView(
        name="user_profile",
        entities=[user],
        ttl=settings.ttl("user_profile"),
        schema=[
            Field(name="age_bucket", dtype=String, tags=CATEGORICAL),
            Field(name="gender", dtype=String, tags=CATEGORICAL),
            Field(name="occupation", dtype=String, tags=CATEGORICAL),
            Field(name="region", dtype=String, tags=CATEGORICAL, description="First digit of the zip code, or 'other'"),
            Field(name="user_profile_ts", dtype=Int64, description="When the profile synced (unix s)"),
        ],
        source=_source(settings, "user_profile"),
        description="Profile attributes, synced from the account system after a delay.",
    )
    user_activity = FeatureView(
        name="user_activity",
        entities=[user],
        ttl=settings.ttl("user_activity"),
        schema=[
            Field(name="user_events_7d", dtype=Int64, tags=NUMERIC),
            Field(name="user_events_30d", dtype=Int64, tags=NUMERIC),
            Field(name="user_mean_rating_30d", dtype=Float64, tags=NUMERIC),
            Field(name="user_top_genres_30d", dtype=Array(String), tags=MULTI),
            Field(name="user_activity_ts", dtype=Int64, description="When the daily run landed (unix s)"),
        ],
        source=_source(settings, "user_activity"),
        description="Trailing-window activity from a daily batch job with a lag; failed runs leave values stale.",
    )
    item_metadata = FeatureView(
        name="item_metadata",
        entities=[item],
        ttl=settings.ttl("item_metadata"),
        schema=[
            Field(name="item_genres", dtype=Array(String), tags=MULTI),
            Field(name="item_release_year", dtype=Int64, tags=NUMERIC),
            Field(name="item_metadata_ts", dtype=Int64, description="When the catalogue row was ingested (unix s)"),
        ],
        source=_source(settings, "item_metadata"),
        description="Catalogue metadata, ingested after a delay.",
    )
    item_stats = FeatureView(
        name="item_stats",
        entities=[item],
        ttl=settings.ttl("item_stats"),
        schema=[
            Field(name="item_events_7d", dtype=Int64, tags=NUMERIC),
            Field(name="item_events_30d", dtype=Int64, tags=NUMERIC),
            Field(name="item_mean_rating_30d", dtype=Float64, tags=NUMERIC),
            Field(name="item_stats_ts", dtype=Int64, description="When the daily run landed (unix s)"),
        ],
        source=_source(settings, "item_stats"),
        description="Trailing-window popularity and rating from a daily batch job with a lag.",
    )
    service = FeatureService(
        name=FEATURE_SERVICE,
        features=[user_profile, user_activity, item_metadata, item_stats, request_context],
        description="Every feature AsymDiffRec reads, for training (point-in-time join) and serving.",
    )
    definitions = Definitions(user_profile, user_activity, item_metadata, item_stats, request_context, service)
    unknown = sorted(set(settings.ttl_hours) - {v.name for v in definitions.batch_views})
    if unknown:
        raise ValueError(f"feature_store.ttl_hours names unknown view(s) {unknown}; views: {[v.name for v in definitions.batch_views]}")
    return definitions
