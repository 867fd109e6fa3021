"""The point-in-time join through the feature service on Spark: every event back once, rows past TTL
as nulls, and the same values as the DuckDB offline store over the same tables."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.data import dataset
from components.data.feature_store import open_store
from feature_repo.definitions import build_definitions
from feature_repo.settings import REPO_DIR, FeatureRepoSettings

LABEL_MIN_RATING = 4


@dataclass
class Stores:
    repo_dir: Path
    settings: FeatureRepoSettings
    duckdb: object
    spark: object


def _repo(root: Path) -> Path:
    repo = root / "feature_repo"
    repo.mkdir(parents=True)
    for config in REPO_DIR.glob("feature_store*.yaml"):
        shutil.copy(config, repo / config.name)
    return repo


@pytest.fixture(scope="module")
def stores(engine_run, project_params) -> Stores:
    from feature_repo.spark_definitions import build_spark_definitions

    repo = _repo(engine_run.root / "join")
    ttl = project_params["feature_store"]["ttl_hours"]
    duck = open_store(repo)
    duck.apply(build_definitions(FeatureRepoSettings(ttl, str(engine_run.pandas_dir))).objects())
    settings = FeatureRepoSettings(ttl, str(engine_run.spark_dir))
    spark_store = open_store(repo, fs_yaml="feature_store.spark.yaml", work_dir=engine_run.root / "join" / "feast-spark")
    assert spark_store.config.offline_store.type == "spark"
    spark_store.apply(build_spark_definitions(settings).objects())
    return Stores(repo, settings, duck, spark_store)


def _value(v):
    """One comparable form for a cell from either engine: None for missing, tuples for lists."""
    if isinstance(v, (list, np.ndarray)):
        return tuple(v)
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.tz_localize("UTC") if v.tzinfo is None else v.tz_convert("UTC")
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)  # a Spark long column with nulls arrives as float
    return v.item() if isinstance(v, np.generic) else v


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[tuple]:
    frame = frame.sort_values("event_id").reset_index(drop=True)
    return [tuple(_value(v) for v in row) for row in frame[columns].itertuples(index=False)]


def test_spark_labelled_events_match_the_pandas_ones(spark, engine_run):
    """Same events, same numbering; events tied on (time, user, item) may swap ids, never labels."""
    from components.data.spark_join import labelled_events

    ours = labelled_events(spark.read.parquet(str(engine_run.root / "raw" / "events.parquet")), LABEL_MIN_RATING).toPandas()
    want = dataset.labelled_events(engine_run.raw.events, LABEL_MIN_RATING)
    assert list(ours.columns) == list(want.columns)
    ours, want = ours.sort_values("event_id").reset_index(drop=True), want.sort_values("event_id").reset_index(drop=True)
    assert list(ours["event_id"]) == list(range(len(want)))
    keys = ["event_timestamp", "user_id", "item_id", "request_unix_s"]
    assert _rows(ours, ["event_id", *keys]) == _rows(want, ["event_id", *keys])
    same_event = ["request_unix_s", "user_id", "item_id"]  # Spark hands timestamps back naive: compare unix seconds
    tied = want.duplicated(same_event, keep=False)
    assert tied.any() and not tied.all(), "the log should hold a few ties, to show they are handled"
    assert (ours.loc[~tied, "label"] == want.loc[~tied, "label"]).all()
    by_tie = lambda f: f[tied].groupby(same_event)["label"].sum().sort_index()  # noqa: E731
    pd.testing.assert_series_equal(by_tie(ours), by_tie(want))


def test_spark_join_keeps_every_event_and_equals_the_duckdb_join(spark, engine_run, stores):
    from components.data.spark_join import point_in_time_join

    every = dataset.labelled_events(engine_run.raw.events, LABEL_MIN_RATING)
    entity = every.iloc[::3].reset_index(drop=True)  # a third of the events, spread over the whole log, keeps it quick
    want = dataset.point_in_time_join(stores.duckdb, entity)
    joined = point_in_time_join(stores.spark, spark.createDataFrame(entity), expected_rows=len(entity))  # small: pandas in is fine
    ours = joined.toPandas()
    assert len(ours) == len(entity) and ours["event_id"].is_unique
    assert sorted(ours.columns) == sorted(want.columns)
    features = [c for c in want.columns if c not in entity.columns]
    for view in ("user_activity", "item_stats", "user_profile", "item_metadata"):
        missing = want[f"{view}_ts"].isna().mean()
        assert 0.0 < missing < 1.0, f"{view}: the comparison needs both present and missing values ({missing})"
    columns = ["event_id", "event_timestamp", "label", *features]
    ours_rows, want_rows = _rows(ours, columns), _rows(want, columns)
    for column in columns:
        i = columns.index(column)
        differ = [(a[0], a[i], b[i]) for a, b in zip(ours_rows, want_rows) if a[i] != b[i]]
        assert not differ, f"{column}: {len(differ)} events differ, e.g. (event_id, spark, duckdb) {differ[:3]}"


def test_rows_past_ttl_come_back_as_nulls(spark, engine_run, stores, project_params):
    from components.data.spark_join import point_in_time_join
    from feature_repo.definitions import REQUEST_TIME_FIELD

    ttl = timedelta(hours=project_params["feature_store"]["ttl_hours"]["user_activity"])
    table = engine_run.pandas_tables["user_activity"].sort_values(["user_id", "event_timestamp"])
    gap = table.groupby("user_id")["event_timestamp"].shift(-1) - table["event_timestamp"]
    row = table[(gap > ttl + timedelta(hours=2)) | gap.isna()].iloc[0]
    landed = row["event_timestamp"]
    when = [landed + timedelta(minutes=1), landed + ttl - timedelta(minutes=1), landed + ttl + timedelta(hours=1)]
    entity = pd.DataFrame(
        {
            "event_id": np.arange(3),
            "user_id": int(row["user_id"]),
            "item_id": int(engine_run.raw.events["item_id"].iloc[0]),
            "event_timestamp": pd.to_datetime(when, utc=True),
            REQUEST_TIME_FIELD: [int(t.timestamp()) for t in when],
        }
    )
    got = point_in_time_join(stores.spark, spark.createDataFrame(entity), expected_rows=3).toPandas().sort_values("event_id")
    fresh, still_fresh, stale = got.to_dict("records")
    for rec in (fresh, still_fresh):
        assert rec["user_events_30d"] == row["user_events_30d"]
        assert rec["user_mean_rating_30d"] == row["user_mean_rating_30d"]
        assert list(rec["user_top_genres_30d"]) == list(row["user_top_genres_30d"])
        assert rec["user_activity_ts"] == row["user_activity_ts"]
    assert pd.isna(stale["user_events_30d"]) and pd.isna(stale["user_activity_ts"]) and stale["user_top_genres_30d"] is None
    assert list(got["hour_of_day"]) == [t.hour for t in when], "the on-demand view ran on Spark"


def test_duplicate_source_rows_are_caught_not_multiplied(spark, engine_run, stores, tmp_path):
    """Feast's Spark join returns every source row of a (key, timestamp): the join's count check stops it."""
    from components.data.spark_join import point_in_time_join
    from feature_repo.spark_definitions import build_spark_definitions

    features = tmp_path / "features"
    shutil.copytree(engine_run.spark_dir, features)
    shutil.rmtree(features / "item_metadata.parquet")
    source = spark.read.parquet(str(engine_run.spark_dir / "item_metadata.parquet"))
    source.unionByName(source.limit(5)).write.parquet(str(features / "item_metadata.parquet"))
    store = open_store(stores.repo_dir, fs_yaml="feature_store.spark.yaml", work_dir=tmp_path / "registry")
    store.apply(build_spark_definitions(FeatureRepoSettings(stores.settings.ttl_hours, str(features))).objects())
    entity = dataset.labelled_events(engine_run.raw.events, LABEL_MIN_RATING).head(2000)
    with pytest.raises(RuntimeError, match=r"point-in-time join on Spark returned .* for 2,000 events"):
        point_in_time_join(store, spark.createDataFrame(entity), expected_rows=len(entity))
