"""Feast with its real stores: TTL turns stale values into missing ones, the join keeps every event,
the request context comes from the on-demand view, and materialization fills the online store."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from components.data.feature_store import materialize_all, prepare_online_store
from feature_repo.definitions import REQUEST_TIME_FIELD


def _entity_rows(user_id: int, item_id: int, when: list[pd.Timestamp]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": np.arange(len(when)),
            "user_id": user_id,
            "item_id": item_id,
            "event_timestamp": pd.to_datetime(when, utc=True),
            REQUEST_TIME_FIELD: [int(t.timestamp()) for t in when],
        }
    )


def _isolated_activity_row(workspace) -> pd.Series:
    """A user_activity row whose next row for the same user lands more than TTL + 2h later."""
    ttl = timedelta(hours=workspace.params["feature_store"]["ttl_hours"]["user_activity"])
    table = workspace.tables["user_activity"].sort_values(["user_id", "event_timestamp"])
    gap = table.groupby("user_id")["event_timestamp"].shift(-1) - table["event_timestamp"]
    candidates = table[(gap > ttl + timedelta(hours=2)) | gap.isna()]
    return candidates.iloc[len(candidates) // 2]


def test_stale_value_past_ttl_is_missing_and_fresh_value_is_as_is(workspace):
    row = _isolated_activity_row(workspace)
    ttl = timedelta(hours=workspace.params["feature_store"]["ttl_hours"]["user_activity"])
    landed = row["event_timestamp"]
    when = [landed + timedelta(minutes=1), landed + ttl - timedelta(minutes=1), landed + ttl + timedelta(hours=1)]
    store = workspace.store()
    got = (
        store.get_historical_features(
            entity_df=_entity_rows(int(row["user_id"]), 1, when),
            features=["user_activity:user_events_30d", "user_activity:user_mean_rating_30d", "user_activity:user_top_genres_30d"],
        )
        .to_df()
        .sort_values("event_id")
    )
    assert len(got) == 3, "the DuckDB offline store keeps rows past TTL"
    fresh, still_fresh, stale = got.to_dict("records")
    for rec in (fresh, still_fresh):
        assert rec["user_events_30d"] == row["user_events_30d"]
        assert rec["user_mean_rating_30d"] == pytest.approx(row["user_mean_rating_30d"])
        assert list(rec["user_top_genres_30d"]) == list(row["user_top_genres_30d"])
    assert pd.isna(stale["user_events_30d"]) and pd.isna(stale["user_mean_rating_30d"])


def test_join_returns_every_event_once(workspace, movielens):
    data = workspace.dataset
    assert len(data) == len(movielens.events)
    assert data["event_id"].is_unique
    assert set(data["event_id"]) == set(range(len(movielens.events)))


def test_aggregate_views_are_sometimes_missing_never_always(workspace):
    data = workspace.dataset
    for view in ("user_activity", "item_stats", "user_profile", "item_metadata"):
        rate = data[f"missing_view__{view}"].mean()
        assert 0.0 < rate < 1.0, f"{view} missing rate {rate}"
    assert data["missing_view__request_context"].sum() == 0


def test_request_context_is_computed_from_the_event_time(workspace):
    data = workspace.dataset
    assert (data["hour_of_day"] == data["event_timestamp"].dt.hour).all()
    assert (data["weekday"] == data["event_timestamp"].dt.weekday).all()


def test_materialize_fills_the_online_store_with_the_latest_values(workspace, tmp_path):
    store = prepare_online_store(workspace.repo_dir)
    materialize_all(store, workspace.root / "data" / "features")
    latest = workspace.tables["item_stats"].sort_values("event_timestamp").groupby("item_id").tail(1).set_index("item_id")
    items = [int(i) for i in latest.index[:20]]
    online = store.get_online_features(
        features=["item_stats:item_events_30d", "item_stats:item_stats_ts"], entity_rows=[{"item_id": i} for i in items]
    ).to_dict()
    assert online["item_events_30d"] == [int(latest.loc[i, "item_events_30d"]) for i in items]
    assert online["item_stats_ts"] == [int(latest.loc[i, "item_stats_ts"]) for i in items]
    unknown = store.get_online_features(features=["item_stats:item_events_30d"], entity_rows=[{"item_id": 10**9}]).to_dict()
    assert unknown["item_events_30d"] == [None], "an unknown item is missing, not an error"


def test_redis_online_store_by_configuration(workspace, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_CONNECTION_STRING", redis_url)
    store = prepare_online_store(workspace.repo_dir, fs_yaml="feature_store.redis.yaml")
    assert store.config.online_store.type == "redis"
    materialize_all(store, workspace.root / "data" / "features")
    latest = workspace.tables["user_profile"].set_index("user_id")
    users = [int(u) for u in latest.index[:10]]
    online = store.get_online_features(features=["user_profile:occupation"], entity_rows=[{"user_id": u} for u in users]).to_dict()
    assert online["occupation"] == [latest.loc[u, "occupation"] for u in users]


def test_feast_join_equals_a_hand_written_duckdb_asof_join(workspace, tmp_path):
    """An independent oracle for the point-in-time join and its TTL boundary."""
    from benchmarks.bench_dataset import asof_join
    from components.data.dataset import labelled_events

    events = tmp_path / "events.parquet"
    labelled_events(workspace.raw.events, workspace.params["dataset"]["label_min_rating"]).to_parquet(events, index=False)
    oracle = asof_join(workspace.root / "data" / "features", events, workspace.settings.ttl_hours).set_index("event_id").sort_index()
    ours = workspace.dataset.set_index("event_id").sort_index()
    assert len(oracle) == len(ours)
    for spec in workspace.schema.features:
        a, b = ours[spec.name], oracle[spec.name]
        if spec.kind == "multi":
            def as_list(v):
                return list(v) if isinstance(v, (list, np.ndarray)) and len(v) else None

            assert [as_list(x) for x in a] == [as_list(y) for y in b], spec.name
        else:
            assert ((a == b) | (a.isna() & b.isna())).all(), spec.name
