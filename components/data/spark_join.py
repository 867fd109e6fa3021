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
from pyspark.sql import DataFrame, SparkSession
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
    (timestamp, user_id, item_id) order. Events equal in all three keys keep the order of the raw
    table, as the pandas path's stable sort does: pass `events` as read from its Parquet file(s).

    The numbering stays in the JVM: after the sort, partitions hold consecutive ranges, so an event's
    number is its partition's offset (a cumulative count, a few numbers on the driver) plus its
    position inside the partition. The sorted frame is persisted so the count and the numbering
    read the same sort; unpersist the result when done."""
    ordered = (
        events.withColumn("_raw_row", F.monotonically_increasing_id())
        .orderBy("timestamp", "user_id", "item_id", "_raw_row")
        .withColumn("_part", F.spark_partition_id())
        .withColumn("_pos", F.monotonically_increasing_id())  # (partition << 33) + position, in sorted order
        .persist()
    )
    counts = sorted((row["_part"], row["count"]) for row in ordered.groupBy("_part").count().collect())
    offsets, total = [], 0
    for part, count in counts:
        offsets += [F.lit(part), F.lit(total)]
        total += count
    offset = F.element_at(F.create_map(*offsets), F.col("_part")) if offsets else F.lit(0)
    position = F.col("_pos") - F.shiftleft(F.col("_part").cast("long"), 33)
    return ordered.select(
        (offset + position).cast("long").alias("event_id"),
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


def joined_frame(store: FeatureStore, entity_df: DataFrame) -> DataFrame:
    """The join through the feature service, on-demand views included, as a lazy Spark DataFrame (unchecked)."""
    check_session(entity_df.sparkSession)
    job = store.get_historical_features(entity_df=entity_df, features=store.get_feature_service(FEATURE_SERVICE))
    return with_on_demand_views(job.to_spark_df(), job.on_demand_feature_views)


def check_every_event(joined: DataFrame, n_events: int) -> None:
    """Every event back exactly once (one aggregate over `joined`), or an error naming the likely cause."""
    counts = joined.agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("event_id").alias("events")).first()
    if counts["rows"] != n_events or counts["events"] != n_events:
        raise RuntimeError(
            f"point-in-time join on Spark returned {counts['rows']:,} rows ({counts['events']:,} distinct events) for "
            f"{n_events:,} events; a feature table has several rows for one (key, event_timestamp) (Feast's Spark join "
            f"returns each), or the entity frame repeats an event_id"
        )


def point_in_time_join(store: FeatureStore, entity_df: DataFrame, expected_rows: int | None = None) -> DataFrame:
    """Join through the feature service; every event must come back, exactly once.

    `expected_rows`: the entity frame's row count when the caller knows it (saves a pass over it).
    The check runs the join once; whatever the caller then does with the result runs it again, so a
    caller that writes the result should use `join_to_parquet`, which checks what it wrote."""
    joined = joined_frame(store, entity_df)
    check_every_event(joined, entity_df.count() if expected_rows is None else expected_rows)
    return joined


def join_to_parquet(store: FeatureStore, entity_df: DataFrame, target: str, expected_rows: int | None = None) -> int:
    """Join and write the result as Parquet at `target` (executors write; nothing reaches the driver),
    then check every event came back exactly once on the written files. Returns the rows."""
    n_events = entity_df.count() if expected_rows is None else expected_rows
    joined_frame(store, entity_df).write.mode("overwrite").parquet(target)
    check_every_event(entity_df.sparkSession.read.parquet(target), n_events)
    return n_events


def joined_to_parquet(spark: SparkSession, store: FeatureStore, raw_dir, label_min_rating: float, scratch) -> "pd.DataFrame":
    """The dataset step's join on Spark: the raw events (`raw_dir/events.parquet`, a path or URI Spark
    reads) numbered and labelled, joined through the feature service, written by the executors as
    Parquet under `scratch`, and read back as one pandas frame for the contract's typing and split."""
    import pandas as pd

    events = spark.read.parquet(f"{str(raw_dir).rstrip('/')}/events.parquet")
    target = f"{str(scratch).rstrip('/')}/joined.parquet"
    try:
        join_to_parquet(store, labelled_events(events, label_min_rating), target)
    finally:
        spark.catalog.clearCache()  # the sort labelled_events persisted
    return pd.read_parquet(target)
