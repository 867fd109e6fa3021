"""The batch feature jobs of `feature_jobs.py` on Spark, for logs that outgrow one machine.

Same tables, same values: availability times, midnight cut-offs, failed daily runs, 7/30-day
windows, seeded per-entity delays. The two seeded draws (delays, failed runs) call the pandas
module's own functions through pandas UDFs, so both engines share one definition of the seeds.
Windows are computed as per-(entity, day) partial sums spread over the 30 runs each day feeds,
which needs no per-entity state on the driver. Nothing is collected: DataFrames in, DataFrames out.

Every table is unique per (entity key, event_timestamp): Feast's Spark join returns one row per
duplicate source row, so the writer refuses duplicates instead of letting the join multiply events.
"""
from __future__ import annotations

import argparse
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

from common.params import load_params, section
from components.data.feature_jobs import (
    AGE_BUCKETS,
    DAY,
    FEATURE_TABLES,
    LONG_WINDOW_DAYS,
    SHORT_WINDOW_DAYS,
    FeatureJobConfig,
    _delays,
    failed_runs,
)
from components.data.spark_session import LOCAL_MASTER, local_session

ENTITY_KEY = {"user_profile": "user_id", "user_activity": "user_id", "item_metadata": "item_id", "item_stats": "item_id"}


@dataclass(frozen=True)
class SparkRawTables:
    """The raw tables (`raw.RawTables`' schema) as Spark DataFrames."""

    events: DataFrame
    users: DataFrame
    items: DataFrame

    @classmethod
    def read(cls, spark: SparkSession, raw_dir: str) -> "SparkRawTables":
        """The ingest stage's Parquet files (a local folder or any URI Spark reads)."""
        base = str(raw_dir).rstrip("/")
        return cls(*(spark.read.parquet(f"{base}/{name}.parquet") for name in ("events", "users", "items")))


def _delay_seconds(ids: Column, mean_hours: float, seed: int, stream: int) -> Column:
    """The pandas job's exponential per-id delay, evaluated on the executors."""

    @pandas_udf("long")
    def delay(batch: pd.Series) -> pd.Series:
        return pd.Series(_delays(batch.to_numpy(dtype="int64"), mean_hours, seed, stream), index=batch.index)

    return delay(ids)


def _failed(cutoffs: Column, job: str, cfg: FeatureJobConfig) -> Column:
    """The pandas job's seeded failed-run draw for each cut-off (unix s).

    Marked nondeterministic (it is not) so the optimizer keeps it on the small table of runs: left
    deterministic, the filter on it is copied through the join onto every (entity, day, run) row."""

    @pandas_udf("boolean")
    def failed(batch: pd.Series) -> pd.Series:
        return pd.Series(failed_runs(batch.to_numpy(dtype="int64"), job, cfg), index=batch.index)

    return failed.asNondeterministic()(cutoffs)


def _day(seconds: Column) -> Column:
    """Day number (floor of unix s / 86400), as numpy's // does for any sign."""
    return F.floor(seconds / F.lit(DAY)).cast("long")


def age_bucket(age: Column) -> Column:
    """The bucket whose lower edge is the largest one <= age (`feature_jobs.age_bucket`); null lands last, as there."""
    expr = F.when(age < AGE_BUCKETS[1][0], F.lit(AGE_BUCKETS[0][1]))
    for (lo, name), (hi, _) in zip(AGE_BUCKETS[1:], AGE_BUCKETS[2:]):
        expr = expr.when(age < hi, F.lit(name))
    return expr.otherwise(F.lit(AGE_BUCKETS[-1][1]))


def region(zip_code: Column) -> Column:
    """First digit of a five-character zip code, else 'other' (`feature_jobs.region`)."""
    text = F.coalesce(zip_code.cast("string"), F.lit("None"))
    first = F.substring(text, 1, 1)
    return F.when(first.rlike("^[0-9]$") & (F.length(text) == 5), first).otherwise(F.lit("other"))


def _as_text(column: Column) -> Column:
    """pandas' astype(str): a missing value becomes the text 'None'."""
    return F.coalesce(column.cast("string"), F.lit("None"))


def _stamp(frame: DataFrame, available_s: Column, view: str) -> DataFrame:
    """Availability time as the Feast timestamp and as a plain unix-seconds feature (`feature_jobs._stamp`)."""
    return frame.withColumn("event_timestamp", F.timestamp_seconds(available_s)).withColumn(f"{view}_ts", available_s.cast("long"))


def _first_seen(events: DataFrame, key: str) -> DataFrame:
    return events.groupBy(key).agg(F.min("timestamp").cast("long").alias("first_s"))


def user_profile(raw: SparkRawTables, cfg: FeatureJobConfig) -> DataFrame:
    """Profiles land `profile_sync_delay_hours` (exponential) after the user's first event."""
    users = raw.users.join(_first_seen(raw.events, "user_id"), "user_id")
    frame = users.select(
        F.col("user_id").cast("long").alias("user_id"),
        age_bucket(F.col("age")).alias("age_bucket"),
        _as_text(F.col("gender")).alias("gender"),
        _as_text(F.col("occupation")).alias("occupation"),
        region(F.col("zip_code")).alias("region"),
        (F.col("first_s") + _delay_seconds(F.col("user_id"), cfg.profile_sync_delay_hours, cfg.seed, 1)).alias("available_s"),
    )
    return _stamp(frame, F.col("available_s"), "user_profile").drop("available_s")


def item_metadata(raw: SparkRawTables, cfg: FeatureJobConfig) -> DataFrame:
    """Catalogue rows land `item_ingestion_delay_hours` (exponential) after the item's first event."""
    items = raw.items.join(_first_seen(raw.events, "item_id"), "item_id")
    frame = items.select(
        F.col("item_id").cast("long").alias("item_id"),
        F.col("genres").cast("array<string>").alias("item_genres"),
        F.col("release_year").cast("long").alias("item_release_year"),
        (F.col("first_s") + _delay_seconds(F.col("item_id"), cfg.item_ingestion_delay_hours, cfg.seed, 2)).alias("available_s"),
    )
    return _stamp(frame, F.col("available_s"), "item_metadata").drop("available_s")


def successful_runs(events: DataFrame, job: str, cfg: FeatureJobConfig) -> DataFrame:
    """`cutoff_day` of each daily run that did not fail: the day after the first event to the day
    after the last (`feature_jobs.run_days` and `failed_runs`)."""
    bounds = events.agg((_day(F.min("timestamp")) + 1).alias("first"), (_day(F.max("timestamp")) + 1).alias("last"))
    runs = bounds.select(F.explode(F.sequence("first", "last")).alias("cutoff_day"))
    return runs.withColumn("failed", _failed(F.col("cutoff_day") * DAY, job, cfg)).filter(~F.col("failed")).drop("failed")


def _spread_over_runs(daily: DataFrame, runs: DataFrame) -> DataFrame:
    """Each (entity, day) row once for every successful run whose long window holds that day:
    the run at cut-off day D covers days D-30 .. D-1, so day d feeds runs d+1 .. d+30."""
    spread = daily.withColumn("cutoff_day", F.explode(F.sequence(F.col("day") + 1, F.col("day") + LONG_WINDOW_DAYS)))
    return spread.join(F.broadcast(runs), "cutoff_day")


def _top_genres(events: DataFrame, items: DataFrame, key: str, runs: DataFrame, k: int) -> DataFrame:
    """(key, cutoff_day, top genres): the k most frequent genres over the long window, most frequent
    first, ties in alphabetical order, only genres seen (`feature_jobs._top_genres`)."""
    genres = items.select("item_id", F.explode("genres").alias("genre"))
    daily = events.join(genres, "item_id").groupBy(key, "day", "genre").agg(F.count(F.lit(1)).alias("n"))
    counts = _spread_over_runs(daily, runs).groupBy(key, "cutoff_day", "genre").agg(F.sum("n").alias("n"))
    ranked = F.array_sort(F.collect_list(F.struct((-F.col("n")).alias("neg_n"), F.col("genre").alias("genre"))))
    top = F.transform(F.slice(ranked, 1, k), lambda entry: entry["genre"])
    return counts.groupBy(key, "cutoff_day").agg(top.alias("top_genres"))


def trailing_aggregates(
    raw: SparkRawTables, key: str, job: str, cfg: FeatureJobConfig, with_genres: bool = False
) -> DataFrame:
    """Daily job output (`feature_jobs.trailing_aggregates`): per entity and successful run, counts over
    7/30 days and the mean rating over 30 days; with `with_genres`, the top genres over 30 days.
    Entities without an event in the long window get no row."""
    prefix = "user" if key == "user_id" else "item"
    ids = [F.col(c).cast("long").alias(c) for c in dict.fromkeys([key, "item_id"])]  # item_id: for the genres
    events = raw.events.select(*ids, _day(F.col("timestamp")).alias("day"), F.col("rating").cast("double").alias("rating"))
    runs = successful_runs(raw.events, job, cfg)
    daily = events.groupBy(key, "day").agg(F.count(F.lit(1)).alias("n"), F.sum("rating").alias("rating_sum"))
    short = F.col("cutoff_day") - F.col("day") <= SHORT_WINDOW_DAYS
    stats = _spread_over_runs(daily, runs).groupBy(key, "cutoff_day").agg(
        F.sum(F.when(short, F.col("n")).otherwise(F.lit(0))).cast("long").alias(f"{prefix}_events_{SHORT_WINDOW_DAYS}d"),
        F.sum("n").cast("long").alias(f"{prefix}_events_{LONG_WINDOW_DAYS}d"),
        F.sum("rating_sum").alias("rating_sum"),
    )
    frame = stats.withColumn(
        f"{prefix}_mean_rating_{LONG_WINDOW_DAYS}d", F.col("rating_sum") / F.col(f"{prefix}_events_{LONG_WINDOW_DAYS}d")
    ).drop("rating_sum")
    if with_genres:
        top = _top_genres(events, raw.items.select(F.col("item_id").cast("long").alias("item_id"), "genres"), key, runs, cfg.top_genres)
        column = f"{prefix}_top_genres_{LONG_WINDOW_DAYS}d"
        frame = frame.join(top, [key, "cutoff_day"], "left").withColumn(
            column, F.coalesce(F.col("top_genres"), F.array().cast("array<string>"))  # an entity whose items have no genre
        ).drop("top_genres")
    available = F.col("cutoff_day") * DAY + int(cfg.batch_lag_hours * 3600)
    return _stamp(frame, available, job).drop("cutoff_day")


def build_feature_tables(raw: SparkRawTables, cfg: FeatureJobConfig) -> dict[str, DataFrame]:
    """The four feature tables, lazily: nothing runs until they are written or read."""
    return {
        "user_profile": user_profile(raw, cfg),
        "user_activity": trailing_aggregates(raw, "user_id", "user_activity", cfg, with_genres=True),
        "item_metadata": item_metadata(raw, cfg),
        "item_stats": trailing_aggregates(raw, "item_id", "item_stats", cfg),
    }


def duplicate_keys(frame: DataFrame, key: str, limit: int = 5) -> list[tuple]:
    """Up to `limit` (key, event_timestamp) pairs that occur more than once (a small aggregate, not the table)."""
    dups = frame.groupBy(key, "event_timestamp").count().filter(F.col("count") > 1).limit(limit)
    return [(row[key], row["event_timestamp"]) for row in dups.collect()]


@contextmanager
def _conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def _hadoop_fs(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath, jvm


def write_table(frame: DataFrame, path: str, unique_key: str | None = None) -> None:
    """Write one table as a Parquet folder (microsecond timestamps, which Spark and DuckDB read alike):
    into a staging folder beside `path` first, swapped in only once complete and checked. With
    `unique_key`, a table with two rows for one (key, event_timestamp) is refused and the previous one
    kept; the check reads the staged files back, so the jobs run once. The swap is a rename on the
    Hadoop filesystem of `path` (atomic on local disks and HDFS; a copy on object stores)."""
    spark = frame.sparkSession
    base = path.rstrip("/")
    fs, target, jvm = _hadoop_fs(spark, base)
    staged = f"{base}.staging-{uuid.uuid4().hex[:8]}"
    staged_path = jvm.org.apache.hadoop.fs.Path(staged)
    try:
        with _conf(spark, "spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS"):
            frame.write.mode("error").parquet(staged)
        if unique_key is not None:
            dups = duplicate_keys(spark.read.parquet(staged), unique_key)
            if dups:
                name = base.rsplit("/", 1)[-1].removesuffix(".parquet")
                raise ValueError(
                    f"feature table '{name}' has several rows for one ({unique_key}, event_timestamp), e.g. {dups}; "
                    f"Feast's Spark join would return each of them. Make {unique_key} unique in the raw table it comes from"
                )
        old = jvm.org.apache.hadoop.fs.Path(f"{base}.old-{uuid.uuid4().hex[:8]}")
        had_old = fs.exists(target)
        if had_old and not fs.rename(target, old):
            raise OSError(f"could not move the previous {path} aside to {old}; remove it and re-run")
        if not fs.rename(staged_path, target):
            if had_old:
                fs.rename(old, target)
            raise OSError(f"could not rename {staged} to {path}; the previous table is back in place")
        if had_old:
            fs.delete(old, True)
    finally:
        if fs.exists(staged_path):
            fs.delete(staged_path, True)


def write_feature_tables(tables: dict[str, DataFrame], out_dir: str) -> None:
    """Write each table to `<out_dir>/<name>.parquet`, refusing one that is not unique per (entity key, event_timestamp)."""
    for name, frame in tables.items():
        write_table(frame, f"{str(out_dir).rstrip('/')}/{name}.parquet", unique_key=ENTITY_KEY[name])


def feature_jobs_step(spark: SparkSession, raw_dir: str, out_dir: str, config: dict) -> list[str]:
    """Run the feature jobs over the raw tables in `raw_dir`; returns the tables written."""
    tables = build_feature_tables(SparkRawTables.read(spark, raw_dir), FeatureJobConfig.from_dict(config))
    write_feature_tables(tables, out_dir)
    return list(FEATURE_TABLES)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the batch feature jobs on Spark over the raw tables.")
    parser.add_argument("--params", default=None)
    parser.add_argument("--raw", default="data/raw", help="folder or URI of the raw Parquet tables")
    parser.add_argument("--out", default="data/features", help="folder or URI for the feature tables")
    parser.add_argument("--master", default=os.environ.get("SPARK_MASTER", LOCAL_MASTER))
    args = parser.parse_args(argv)
    spark = local_session(args.master, app_name="asymdiffrec-feature-jobs")
    try:
        written = feature_jobs_step(spark, args.raw, args.out, section(load_params(args.params), "feature_jobs"))
    finally:
        spark.stop()
    print(f"feature jobs (spark, {args.master}): {', '.join(written)} -> {args.out}")


if __name__ == "__main__":
    main()
