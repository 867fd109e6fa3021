"""The point-in-time join on Spark: labelled events in, joined rows out, both Spark DataFrames.

What differs from the DuckDB path in `dataset.py`, and is handled here:
- the entity frame stays in Spark (a pandas frame would be shipped through the driver);
- Feast's Spark join leaves the on-demand views to pandas after collecting; here each one runs
  through its own `transform_arrow` (the code Feast runs) on the executors, batch by batch;
- Feast's Spark join returns one row per duplicate source row of a (key, timestamp), so the row
  count is checked, as `dataset.point_in_time_join` does;
- timestamps are instants in Spark; the session must be in UTC for them to reach pandas unshifted.
"""
from __future__ import annotations

from typing import Iterator

import pyarrow as pa
from feast import FeatureStore
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.value_type import ValueType
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from components.data.contract import FEATURE_SERVICE
from components.data.spark_session import check_session
from feature_repo.definitions import REQUEST_TIME_FIELD

SPARK_TYPES = {
    ValueType.INT32: T.IntegerType(),
    ValueType.INT64: T.LongType(),
    ValueType.FLOAT: T.FloatType(),
    ValueType.DOUBLE: T.DoubleType(),
    ValueType.STRING: T.StringType(),
    ValueType.BOOL: T.BooleanType(),
    ValueType.UNIX_TIMESTAMP: T.TimestampType(),
    ValueType.INT64_LIST: T.ArrayType(T.LongType()),
    ValueType.DOUBLE_LIST: T.ArrayType(T.DoubleType()),
    ValueType.STRING_LIST: T.ArrayType(T.StringType()),
}


def labelled_events(events: DataFrame, label_min_rating: float) -> DataFrame:
    """`dataset.labelled_events` in Spark: one row per event, `event_id` numbering events in
    (timestamp, user_id, item_id) order. The numbering is distributed (zipWithIndex), not a
    single-partition window; events equal in all three keys are told apart by rating, then at random."""
    ordered = events.orderBy("timestamp", "user_id", "item_id", "rating")
    numbered = ordered.rdd.zipWithIndex().map(lambda pair: (*pair[0], pair[1])).toDF([*ordered.columns, "event_id"])
    return numbered.select(
        F.col("event_id").cast("long"),
        F.col("user_id").cast("long"),
        F.col("item_id").cast("long"),
        F.timestamp_seconds(F.col("timestamp").cast("long")).alias("event_timestamp"),
        (F.col("rating") >= F.lit(float(label_min_rating))).cast("long").alias("label"),
        F.col("timestamp").cast("long").alias(REQUEST_TIME_FIELD),
    )


def _spark_type(value_type: ValueType, where: str) -> T.DataType:
    if value_type not in SPARK_TYPES:
        raise TypeError(f"{where}: no Spark type for Feast type {value_type.name}; add it to spark_join.SPARK_TYPES")
    return SPARK_TYPES[value_type]


def with_on_demand_views(frame: DataFrame, views: list[OnDemandFeatureView]) -> DataFrame:
    """Append each on-demand view's features, computed by the view's own transformation per Arrow batch."""
    if not views:
        return frame
    added = [
        T.StructField(f.name, _spark_type(f.dtype.to_value_type(), f"{view.name}.{f.name}"), True)
        for view in views
        for f in view.features
    ]
    schema = T.StructType([*frame.schema.fields, *added])
    arrow_schema = pa.schema([pa.field(f.name, _arrow_type(f.dataType)) for f in added])

    def transform(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            table = pa.Table.from_batches([batch])
            columns = list(batch.columns)
            for view in views:
                out = view.transform_arrow(table, False)
                columns += [out[f.name].combine_chunks() for f in view.features]
            extra = [col.cast(arrow_schema.field(i).type) for i, col in enumerate(columns[batch.num_columns :])]
            yield pa.RecordBatch.from_arrays(columns[: batch.num_columns] + extra, schema=pa.schema([*batch.schema, *arrow_schema]))

    return frame.mapInArrow(transform, schema)


def _arrow_type(data_type: T.DataType) -> pa.DataType:
    from pyspark.sql.pandas.types import to_arrow_type

    return to_arrow_type(data_type)


def point_in_time_join(store: FeatureStore, entity_df: DataFrame, expected_rows: int | None = None) -> DataFrame:
    """Join through the feature service; every event must come back, exactly once.

    `expected_rows`: the entity frame's row count when the caller knows it (saves a pass over it).
    The check costs one aggregate over the result; the result itself stays in Spark."""
    check_session(entity_df.sparkSession)
    job = store.get_historical_features(entity_df=entity_df, features=store.get_feature_service(FEATURE_SERVICE))
    joined = with_on_demand_views(job.to_spark_df(), job.on_demand_feature_views)
    n_events = entity_df.count() if expected_rows is None else expected_rows
    counts = joined.agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("event_id").alias("events")).first()
    if counts["rows"] != n_events or counts["events"] != n_events:
        raise RuntimeError(
            f"point-in-time join on Spark returned {counts['rows']:,} rows ({counts['events']:,} distinct events) for "
            f"{n_events:,} events; a feature table has several rows for one (key, event_timestamp) (Feast's Spark join "
            f"returns each), or the entity frame repeats an event_id"
        )
    return joined
