"""Training and serving agree: features fetched online, the way the service fetches them, equal the
point-in-time training features of the same events."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import yaml

from components.data.feature_store import feature_time_range, materialize, prepare_online_store
from serving.online_features import online_samples, serving_schema


@pytest.fixture(scope="module")
def parity_config(workspace) -> str:
    """Its own online store and registry, so replaying time does not disturb other tests."""
    config = yaml.safe_load((workspace.repo_dir / "feature_store.yaml").read_text())
    config["online_store"]["path"] = "../data/feast/parity/online_store.db"
    config["online_registry"] = "../data/feast/parity/registry.db"
    (workspace.repo_dir / "feature_store.parity.yaml").write_text(yaml.safe_dump(config))
    return "feature_store.parity.yaml"


def _same(a, b) -> bool:
    if isinstance(a, (list, np.ndarray)) or isinstance(b, (list, np.ndarray)):
        return a is not None and b is not None and list(a) == list(b)
    if pd.isna(a) or pd.isna(b):
        return pd.isna(a) and pd.isna(b)
    return a == b


def test_online_features_and_scores_equal_the_offline_ones(workspace, parity_config, checkpoint):
    from models import load_checkpoint, predict
    from serving.ranker import Ranker

    store = prepare_online_store(workspace.repo_dir, fs_yaml=parity_config)
    schema = serving_schema(store)
    ranker = Ranker(checkpoint, store, model_tag="test:1")
    offline = load_checkpoint(checkpoint)
    test = workspace.splits["test"]
    events = test.iloc[np.linspace(0, len(test) - 1, 8).astype(int)].sort_values("event_timestamp")
    columns = [f.name for f in schema.features] + schema.timestamp_columns
    columns += [schema.feature_mask(f.name) for f in schema.features] + [schema.view_mask(v) for v in schema.views]
    start, _ = feature_time_range(workspace.root / "data" / "features")
    since = start - timedelta(seconds=1)
    views_seen_present: set[str] = set()
    views_seen_missing: set[str] = set()
    for event in events.itertuples(index=False):
        now = event.event_timestamp.to_pydatetime()
        materialize(store, since, now)  # the online store as it stood at the event
        since = now
        served = online_samples(store, schema, int(event.user_id), [int(event.item_id)], now)
        assert not served.degraded, served.errors
        row = served.frame.iloc[0]
        for column in columns:
            assert _same(row[column], getattr(event, column)), (event.event_id, column, row[column], getattr(event, column))
        served_score, _ = ranker.score(int(event.user_id), [int(event.item_id)], now)
        offline_score = predict(offline.model, offline.schema, pd.DataFrame([event._asdict()]))
        assert served_score[0] == pytest.approx(offline_score[0], abs=1e-6)
        for view in schema.views:
            (views_seen_missing if getattr(event, schema.view_mask(view)) else views_seen_present).add(view)
    assert {"user_activity", "item_stats"} <= views_seen_present
    assert views_seen_missing, "the sample should hold some missing views, or the TTL check goes untested"


def test_unreachable_online_store_degrades_to_missing_views(workspace, monkeypatch):
    from components.data.feature_store import open_store

    monkeypatch.setenv("REDIS_CONNECTION_STRING", "127.0.0.1:1,socket_connect_timeout=0.2")  # nothing listens on port 1
    store = open_store(workspace.repo_dir, fs_yaml="feature_store.redis.yaml")
    schema = serving_schema(open_store(workspace.repo_dir))
    when = pd.Timestamp("1998-03-01 20:30", tz="UTC").to_pydatetime()
    served = online_samples(store, schema, user_id=1, item_ids=[1, 2, 3], request_time=when)
    assert served.degraded and "unavailable" in served.errors[0]
    assert len(served.frame) == 3
    assert served.missing == {v: (0.0 if v == "request_context" else 1.0) for v in schema.views}
    assert (served.frame["hour_of_day"] == 20).all() and (served.frame["weekday"] == 6).all()
