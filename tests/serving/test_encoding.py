"""The online path is a second implementation of how a sample is built, so it must equal the training
builder (`to_training_frame` + `FeatureSchema.encode`) on every row of the test split: each stored row
goes through Feast's own value protos, the online decoder, the TTL check and the column assembly."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from components.data.feature_store import open_store
from serving.config import ServingConfig


def _python(value, dtype: str):
    """A training-frame value as the feature job wrote it to the store (typed, None for null)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (list, np.ndarray)):
        return [str(v) for v in value]
    if dtype.startswith("Int"):
        return int(value)
    return float(value) if dtype.startswith("Float") else value


def _store_rows(store, frame: pd.DataFrame, group) -> list[list[tuple]]:
    """What `online_read` returns for each row's entity, per view of the group: the row's values with
    their availability time, or no row where the training set has none."""
    from feast.type_map import python_values_to_proto_values

    per_view = []
    for view, ts_column in zip(group.views, group.ts_columns):
        fields = store.get_feature_view(view).features
        protos = {}
        for f in fields:
            if f.name == ts_column:
                values = [None if pd.isna(t) else int(t.timestamp()) for t in frame[ts_column]]
            else:
                values = [_python(v, str(f.dtype)) for v in frame[f.name]]
            protos[f.name] = python_values_to_proto_values(values, f.dtype.to_value_type())
        present = frame[ts_column].notna().to_numpy()
        per_view.append([(None, {name: p[r] for name, p in protos.items()}) if present[r] else (None, None) for r in range(len(frame))])
    return per_view


def test_the_online_path_encodes_every_test_row_as_the_training_builder_does(workspace, checkpoint):
    from models import load_checkpoint
    from serving.online_features import OnlineFeatures, request_unix_s

    store = open_store(workspace.repo_dir)
    model = load_checkpoint(checkpoint)
    online = OnlineFeatures(store, model.schema, replace(ServingConfig.load(), item_cache_size=0))
    test = workspace.splits["test"].reset_index(drop=True)
    assert len(test) > 1000
    users = online.decode(online.users, _store_rows(store, test, online.users))
    items = online.decode(online.items, _store_rows(store, test, online.items))
    unix_s = np.asarray([request_unix_s(t.to_pydatetime()) for t in test["event_timestamp"]], np.int64)
    served = online.assemble(users, items, unix_s)

    expected = model.schema.encode(test, with_label=False)
    for name in ("single", "multi", "mask"):
        got, want = getattr(served.batch, name), getattr(expected, name)
        differ = (got != want).reshape(len(test), -1).any(1)
        assert not differ.any(), f"{name} differs on {int(differ.sum())} rows, e.g. event {test.event_id[np.flatnonzero(differ.numpy())[0]]}"
    contract = online.contract
    for k, view in enumerate(served.views):
        assert (served.view_missing[:, k] == test[contract.view_mask(view)].astype(bool).to_numpy()).all(), view
        ts_column = contract.views[view].get("timestamp_column")
        if ts_column:
            age = (test["event_timestamp"] - test[ts_column]).dt.total_seconds().to_numpy()
            present = ~served.view_missing[:, k]
            np.testing.assert_array_equal(served.age_s[present, k], age[present])
            assert np.isnan(served.age_s[~present, k]).all()
    # and the model scores the two batches alike
    from models import predict_batch

    assert predict_batch(model.model, served.batch) == pytest.approx(predict_batch(model.model, expected), abs=1e-6)


def test_ttl_is_applied_at_request_time_to_a_row_read_earlier(workspace, checkpoint):
    """A cached row's value expires when the stored one would: exactly ttl after its availability time."""
    from models import load_checkpoint
    from serving.online_features import OnlineFeatures

    store = open_store(workspace.repo_dir)
    online = OnlineFeatures(store, load_checkpoint(checkpoint).schema, replace(ServingConfig.load(), item_cache_size=0))
    test = workspace.splits["test"]
    row = test[test[online.contract.view_mask("item_stats")] == 0].head(1)
    items = online.decode(online.items, _store_rows(store, row, online.items))
    users = online.decode(online.users, _store_rows(store, row, online.users))
    available = int(row["item_stats_ts"].iloc[0].timestamp())
    ttl = int(online.contract.views["item_stats"]["ttl_hours"] * 3600)
    k = online.views.index("item_stats")
    for when, missing in ((available - 1, True), (available, False), (available + ttl, False), (available + ttl + 1, True)):
        served = online.assemble(users, items, np.asarray([when], np.int64))
        assert bool(served.view_missing[0, k]) is missing, (when - available, ttl)
        assert served.batch.mask[0, [f.view == "item_stats" for f in online.encoder.schema.fields]].all().item() is missing
