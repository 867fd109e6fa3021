"""The Spark feature jobs write the very tables the pandas jobs write, in Parquet Spark and Feast read back."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from components.data.feature_jobs import DAY, FEATURE_TABLES, failed_runs, run_days
from tests.spark.conftest import canonical

KEYS = {"user_profile": "user_id", "user_activity": "user_id", "item_metadata": "item_id", "item_stats": "item_id"}


def _read(path) -> pd.DataFrame:
    return pd.read_parquet(path, dtype_backend="numpy_nullable")


def test_spark_tables_equal_pandas_tables(engine_run):
    for name in FEATURE_TABLES:
        key = KEYS[name]
        ours = canonical(_read(engine_run.spark_dir / f"{name}.parquet"), key)
        want = canonical(_read(engine_run.pandas_dir / f"{name}.parquet"), key)
        assert len(want) > 100, f"{name}: too small to compare anything"
        assert list(ours.columns) == list(want.columns), name
        pd.testing.assert_frame_equal(ours, want, check_dtype=False, check_exact=True, obj=name)


def test_the_comparison_covers_failures_delays_and_odd_rows(engine_run):
    """The equality above is only worth something if the log exercises each rule."""
    tables, cfg, events = engine_run.pandas_tables, engine_run.cfg, engine_run.raw.events
    cutoffs = run_days(events)
    failed = set(cutoffs[failed_runs(cutoffs, "user_activity", cfg)])
    landed = set(tables["user_activity"]["user_activity_ts"] - int(cfg.batch_lag_hours * 3600))
    assert failed and not failed & landed and landed <= set(cutoffs)
    assert (tables["user_activity"]["user_events_7d"] < tables["user_activity"]["user_events_30d"]).any()
    assert set(tables["user_profile"]["region"]) >= {"other"}
    assert "<18" in set(tables["user_profile"]["age_bucket"])
    assert tables["item_metadata"]["item_release_year"].isna().any()
    assert (tables["item_metadata"]["item_genres"].map(len) == 0).any()
    first = events.groupby("user_id")["timestamp"].min()
    profile = tables["user_profile"].set_index("user_id")
    assert (profile["user_profile_ts"] > first.loc[profile.index]).mean() > 0.9, "per-user delays"
    assert (tables["item_stats"]["item_stats_ts"] % DAY == int(cfg.batch_lag_hours * 3600) % DAY).all()


def test_tables_are_unique_per_key_and_time_with_microsecond_utc_timestamps(engine_run):
    for name in FEATURE_TABLES:
        table = _read(engine_run.spark_dir / f"{name}.parquet")
        assert not table.duplicated([KEYS[name], "event_timestamp"]).any(), name
        for part in sorted((engine_run.spark_dir / f"{name}.parquet").glob("*.parquet")):
            stamp = pq.read_schema(part).field("event_timestamp").type
            assert str(stamp) == "timestamp[us, tz=UTC]", (name, part.name, stamp)


def test_writer_refuses_duplicate_keys_and_keeps_the_previous_table(spark, engine_run, tmp_path):
    from components.data.spark_jobs import SparkRawTables, user_profile, write_feature_tables

    out = tmp_path / "features"
    out.mkdir()
    raw = SparkRawTables.read(spark, str(engine_run.root / "raw"))
    write_feature_tables({"user_profile": user_profile(raw, engine_run.cfg)}, str(out))
    before = _read(out / "user_profile.parquet")
    doubled = SparkRawTables(raw.events, raw.users.unionByName(raw.users.limit(3)), raw.items)
    with pytest.raises(ValueError, match=r"feature table 'user_profile' has several rows for one \(user_id, event_timestamp\)"):
        write_feature_tables({"user_profile": user_profile(doubled, engine_run.cfg)}, str(out))
    after = _read(out / "user_profile.parquet")
    pd.testing.assert_frame_equal(canonical(after, "user_id"), canonical(before, "user_id"))
    assert sorted(p.name for p in out.iterdir()) == ["user_profile.parquet"], "no staging folder left behind"


def test_rewriting_a_table_replaces_it(spark, tmp_path):
    from components.data.spark_jobs import write_table

    path = str(tmp_path / "t.parquet")
    write_table(spark.range(5).withColumnRenamed("id", "a"), path)
    write_table(spark.range(3).withColumnRenamed("id", "b"), path)
    got = pd.read_parquet(path)
    assert list(got.columns) == ["b"] and sorted(got["b"]) == [0, 1, 2]
    assert np.array_equal(sorted(p.name for p in tmp_path.iterdir()), ["t.parquet"])
