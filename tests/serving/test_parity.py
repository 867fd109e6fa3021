"""Training and serving agree: features fetched online, the way the service fetches them, equal the
point-in-time training features of the same events."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from components.data.feature_store import feature_time_range, materialize, prepare_online_store
from serving.online_features import serving_schema


@pytest.fixture(scope="module")
def parity_config(workspace) -> str:
    """Its own online store and registry, so replaying time does not disturb other tests."""
    config = yaml.safe_load((workspace.repo_dir / "feature_store.yaml").read_text())
    config["online_store"]["path"] = "../data/feast/parity/online_store.db"
    config["online_registry"] = "../data/feast/parity/registry.db"
    (workspace.repo_dir / "feature_store.parity.yaml").write_text(yaml.safe_dump(config))
    return "feature_store.parity.yaml"


def test_online_features_and_scores_equal_the_offline_ones(workspace, parity_config, checkpoint):
    """Replay test events: the store as it stood at each event, served by the service's path, gives
    the training row's encoded features, missing masks and availability times, and its score."""
    from models import load_checkpoint, predict
    from dataclasses import replace

    from serving.config import ServingConfig
    from serving.ranker import Ranker

    store = prepare_online_store(workspace.repo_dir, fs_yaml=parity_config)
    schema = serving_schema(store)
    # check the store on every read: materialize() below changes it between requests
    ranker = Ranker(checkpoint, store, model_tag="test:1", config=replace(ServingConfig.load(), store_check_seconds=0))
    offline = load_checkpoint(checkpoint)
    test = workspace.splits["test"]
    events = test.iloc[np.linspace(0, len(test) - 1, 8).astype(int)].sort_values("event_timestamp")
    start, _ = feature_time_range(workspace.root / "data" / "features")
    since = start - timedelta(seconds=1)
    views_seen_present: set[str] = set()
    views_seen_missing: set[str] = set()
    for event in events.itertuples(index=False):
        now = event.event_timestamp.to_pydatetime()
        materialize(store, since, now)  # the online store as it stood at the event
        since = now
        served_score, served = ranker.score(int(event.user_id), [int(event.item_id)], now)
        assert not served.degraded, served.errors
        row = pd.DataFrame([event._asdict()])
        expected = offline.schema.encode(row, with_label=False)
        for name in ("single", "multi", "mask"):
            assert torch.equal(getattr(served.batch, name), getattr(expected, name)), (event.event_id, name)
        for k, view in enumerate(served.views):
            assert bool(served.view_missing[0, k]) == bool(getattr(event, schema.view_mask(view))), (event.event_id, view)
            ts_column = schema.views[view].get("timestamp_column")
            if ts_column and not served.view_missing[0, k]:  # the value's availability time, to the second
                assert served.age_s[0, k] == (event.event_timestamp - getattr(event, ts_column)).total_seconds(), (event.event_id, view)
        offline_score = predict(offline.model, offline.schema, row)
        assert served_score[0] == pytest.approx(offline_score[0], abs=1e-6)
        for view in schema.views:
            (views_seen_missing if getattr(event, schema.view_mask(view)) else views_seen_present).add(view)
    assert {"user_activity", "item_stats"} <= views_seen_present
    assert views_seen_missing, "the sample should hold some missing views, or the TTL check goes untested"


def test_unreachable_online_store_degrades_to_missing_views(workspace, checkpoint, monkeypatch):
    from components.data.feature_store import open_store
    from models import load_checkpoint
    from serving.config import ServingConfig
    from serving.online_features import OnlineFeatures

    monkeypatch.setenv("REDIS_CONNECTION_STRING", "127.0.0.1:1,socket_connect_timeout=0.2")  # nothing listens on port 1
    store = open_store(workspace.repo_dir, fs_yaml="feature_store.redis.yaml")
    schema = serving_schema(open_store(workspace.repo_dir))
    model_schema = load_checkpoint(checkpoint).schema
    online = OnlineFeatures(store, model_schema, ServingConfig.load())
    when = pd.Timestamp("1998-03-01 20:30", tz="UTC").to_pydatetime()
    served = online.build(1, [1, 2, 3], when)
    assert served.degraded and "unavailable" in served.errors[0]
    again = online.build(1, [4, 5], when)  # the circuit is open: answered without waiting on the dead store again
    assert again.degraded and "probing" in again.errors[0], again.errors
    assert len(served.batch) == 3
    assert served.missing == {v: (0.0 if v == "request_context" else 1.0) for v in schema.views}
    context = model_schema.encode(pd.DataFrame({f.name: [None] for f in model_schema.fields} | {"hour_of_day": [20], "weekday": [6]}))
    hour, weekday = (model_schema.names.index(n) for n in ("hour_of_day", "weekday"))
    singles = model_schema.single_fields
    for field in (hour, weekday):
        column = singles.index(field)
        assert (served.batch.single[:, column] == context.single[0, column]).all() and not served.batch.mask[:, field].any()
