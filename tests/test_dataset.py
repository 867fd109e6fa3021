"""The training set: contract columns, masks that match the nulls, a clean time split, the report."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.data.contract import seconds_to_utc
from components.data.dataset import SPLITS, split_by_time
from components.data.missingness import missing_rate_over_time, missingness_report, write_missing_over_time


def test_schema_lists_every_model_feature_with_its_view_and_kind(workspace):
    schema = json.loads((workspace.root / "data" / "datasets" / "schema.json").read_text())
    kinds = {f["name"]: (f["view"], f["kind"]) for f in schema["features"]}
    assert kinds["gender"] == ("user_profile", "categorical")
    assert kinds["item_genres"] == ("item_metadata", "multi")
    assert kinds["user_events_30d"] == ("user_activity", "numeric")
    assert kinds["hour_of_day"] == ("request_context", "categorical")
    assert not any(name.endswith("_ts") for name in kinds), "availability times are metadata, not inputs"
    assert schema["views"]["user_activity"]["ttl_hours"] == workspace.params["feature_store"]["ttl_hours"]["user_activity"]


def test_masks_match_the_nulls(workspace):
    data = workspace.dataset
    for spec in workspace.schema.features:
        col = data[spec.name]
        null = col.map(lambda v: v is None or (isinstance(v, float) and np.isnan(v))).to_numpy()
        assert np.array_equal(null, data[f"missing__{spec.name}"].to_numpy().astype(bool)), spec.name
    for view, info in workspace.schema.views.items():
        every = data[[f"missing__{f}" for f in info["features"]]].all(axis=1)
        assert np.array_equal(every.to_numpy(), data[f"missing_view__{view}"].to_numpy().astype(bool)), view
        if info["timestamp_column"]:
            assert np.array_equal(data[info["timestamp_column"]].isna(), data[f"missing_view__{view}"].astype(bool)), view


def test_every_feature_timestamp_is_at_or_before_its_event(workspace):
    data = workspace.dataset
    for column in workspace.schema.timestamp_columns:
        present = data[column].notna()
        assert (data.loc[present, column] <= data.loc[present, "event_timestamp"]).all(), column


def test_availability_times_convert_whatever_memory_the_allocator_reuses():
    """pandas 2.x rounds an uninitialized fraction for each NaN in `to_datetime(floats, unit="s")`; freed
    blocks of huge floats make that garbage certain, so the plain call raises here every time."""
    n = 2_000  # distinct values, so pandas converts the whole array rather than a cache of uniques
    seconds = pd.Series(np.where(np.arange(n) % 3 == 0, np.nan, 1.7e9 + np.arange(n) + 0.25), name="user_profile_ts")

    def after_freeing_huge_floats(convert):
        garbage = [np.full(n, 1e300) for _ in range(20)]
        del garbage
        return convert(seconds)

    if int(pd.__version__.split(".")[0]) < 3:  # the bug this guards against (pandas GH 58419)
        with pytest.raises(FloatingPointError):
            after_freeing_huge_floats(lambda s: pd.to_datetime(s, unit="s", utc=True))
    stamps = after_freeing_huge_floats(seconds_to_utc)
    present = seconds.notna()
    assert str(stamps.dtype) == "datetime64[ns, UTC]" and stamps.name == "user_profile_ts"
    assert stamps[~present].isna().all()
    expected = pd.to_datetime(seconds[present].to_numpy(), unit="s", utc=True).as_unit("ns")
    assert (stamps[present].to_numpy() == expected.to_numpy()).all()


def test_split_is_by_time_with_the_configured_fractions(workspace):
    splits, fractions = workspace.splits, workspace.params["dataset"]["split"]
    total = sum(len(f) for f in splits.values())
    for earlier, later in zip(SPLITS, SPLITS[1:]):
        assert splits[earlier]["event_timestamp"].max() <= splits[later]["event_timestamp"].min()
    for name in SPLITS:
        assert len(splits[name]) == pytest.approx(total * fractions[name], abs=1)


def test_split_rejects_bad_fractions(workspace):
    with pytest.raises(ValueError, match="sum to 1"):
        split_by_time(workspace.splits["test"], {"train": 0.5, "validation": 0.1, "test": 0.1})
    with pytest.raises(KeyError, match="validation"):
        split_by_time(workspace.splits["test"], {"train": 0.9, "test": 0.1})


def test_missingness_report_shape_and_plot(workspace, tmp_path):
    views = list(workspace.schema.views)
    report = missingness_report(workspace.splits, views)
    assert list(report) == list(SPLITS)
    for name, info in report.items():
        assert info["rows"] == len(workspace.splits[name])
        assert set(info["missing_rate"]) == set(views)
        assert all(0.0 <= r <= 1.0 for r in info["missing_rate"].values())
    table = missing_rate_over_time(workspace.splits, views)
    write_missing_over_time(table, tmp_path)
    csv = pd.read_csv(tmp_path / "missing_over_time.csv")
    assert {"date", "split", "events", *views} <= set(csv.columns)
    assert csv["events"].sum() == sum(info["rows"] for info in report.values())
    assert (tmp_path / "missing_over_time.png").read_bytes()[:4] == b"\x89PNG"
