"""The feature definitions with Spark sources, for a store whose offline store is Spark.

Feast's Spark offline store joins only `SparkSource`s, and a feature service carries each view's
source in its projections, so the views and the service are rebuilt around Spark sources; names,
entities, schemas, TTLs, tags and the request-context view stay those of `definitions.py`.
"""
from __future__ import annotations

import warnings

from feast import FeatureService, FeatureView
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

from feature_repo.definitions import Definitions, build_definitions, item, user
from feature_repo.settings import FeatureRepoSettings

ENTITIES = {user.name: user, item.name: item}


def spark_source(settings: FeatureRepoSettings, table: str) -> SparkSource:
    """The Parquet table (file or folder, local or any URI Spark reads) the feature jobs wrote."""
    with warnings.catch_warnings():  # Feast's notice that its Spark source API is experimental, on every source
        warnings.simplefilter("ignore", RuntimeWarning)
        return SparkSource(
            name=f"{table}_source", path=settings.source_path(table), file_format="parquet", timestamp_field="event_timestamp"
        )


def _on_spark(view: FeatureView, source: SparkSource) -> FeatureView:
    return FeatureView(
        name=view.name,
        entities=[ENTITIES[name] for name in view.entities],
        ttl=view.ttl,
        schema=list(view.features),  # declared order (view.schema comes back reordered)
        source=source,
        online=view.online,
        offline=view.offline,
        description=view.description,
        tags=view.tags,
        owner=view.owner,
    )


def build_spark_definitions(settings: FeatureRepoSettings) -> Definitions:
    """`build_definitions(settings)` with every batch view reading a `SparkSource`."""
    base = build_definitions(settings)
    views = {v.name: _on_spark(v, spark_source(settings, v.name)) for v in base.batch_views}
    members = {**views, base.request_context.name: base.request_context}
    service = FeatureService(
        name=base.service.name,
        features=[members[p.name] for p in base.service.feature_view_projections],
        description=base.service.description,
        tags=base.service.tags,
        owner=base.service.owner,
    )
    return Definitions(
        views["user_profile"], views["user_activity"], views["item_metadata"], views["item_stats"], base.request_context, service
    )
