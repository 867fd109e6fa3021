"""Replayed traffic through the serving path, and the monitor reading it: a freshness incident is flagged
and its views named, against the same period replayed without it."""
from __future__ import annotations

import pandas as pd
import pytest

from components.monitor.monitor import MonitorConfig, load_served, monitor, psi, trained_columns
from components.monitor.replay import OUTCOMES_FILE, ReplayConfig, daily_runs, replay, requests_of
from serving.serving_log import read_serving_log

CONFIG = MonitorConfig(max_missing_rate_shift=0.2, max_missing_count_psi=0.25, max_feature_psi=0.25, min_samples=500)


def test_psi_is_zero_for_equal_histograms_and_grows_with_the_shift():
    assert psi([10, 20, 70], [1, 2, 7]) == pytest.approx(0.0, abs=1e-12)
    assert psi([50, 50], [45, 55]) < 0.05 < psi([50, 50], [20, 80]) < psi([50, 50], [5, 95])


def test_requests_and_daily_runs():
    events = pd.DataFrame({
        "event_id": [1, 2, 3, 4], "user_id": [7, 7, 8, 7], "item_id": [1, 2, 1, 2],
        "event_timestamp": pd.to_datetime(["1998-03-01 10:00", "1998-03-01 10:00", "1998-03-01 10:00", "1998-03-02 09:00"], utc=True),
    })
    assert [g["item_id"].tolist() for g in requests_of(events)] == [[1, 2], [1], [2]]
    runs = daily_runs(events["event_timestamp"].min().to_pydatetime(), events["event_timestamp"].max().to_pydatetime(), 7)
    assert [r.isoformat() for r in runs] == ["1998-03-01T07:00:00+00:00", "1998-03-02T07:00:00+00:00"]


def _replay_and_monitor(workspace, checkpoint, out, incident=None) -> dict:
    from models import load_checkpoint

    config = ReplayConfig(split="test", materialize_hour_utc=7, max_requests=1500, incident=incident)
    summary = replay(workspace.splits["test"], checkpoint, "test:1", workspace.root / "data" / "features",
                     workspace.root / "data" / "feast", out, config, progress=False)
    assert summary.requests == 1500 and summary.degraded == 0
    served = load_served(list(read_serving_log(out / "serving_log")))
    assert served.frame["request_id"].nunique() == 1500 and len(served.frame) == summary.samples
    outcomes = pd.read_json(out / OUTCOMES_FILE, lines=True)
    schema = load_checkpoint(checkpoint).schema
    trained = trained_columns(workspace.splits["train"], schema, served.views, served.stored_views, served.fields)
    return monitor(served, trained, schema, CONFIG, outcomes) | {"skipped_runs": summary.skipped_runs}


def test_a_failed_daily_job_raises_exactly_its_views_missing_rates(workspace, checkpoint, tmp_path):
    """The same requests replayed twice, once with the daily runs of two views failing: those views go
    missing more often and the worst is flagged; every other view is served exactly as before. (Whether a
    quiet period raises no alarm at all needs a longer window than these 1.4 days: see the monitor's report.)"""
    quiet = _replay_and_monitor(workspace, checkpoint, tmp_path / "quiet")
    failing = ("user_activity", "item_stats")
    incident = _replay_and_monitor(workspace, checkpoint, tmp_path / "incident",
                                   {"views": list(failing), "start_day": 0, "days": 2})
    assert set(incident["skipped_runs"]) == set(failing)
    for view in failing:
        assert incident["missing_rate"][view]["served"] > quiet["missing_rate"][view]["served"] + 0.05, view
    for view in ("user_profile", "item_metadata", "request_context"):
        assert incident["missing_rate"][view] == quiet["missing_rate"][view], view
    flagged = {r.split(":")[0].removeprefix("view ") for r in incident["reasons"] if r.startswith("view ")}
    assert "item_stats" in flagged and "item_stats" not in {r.split(":")[0].removeprefix("view ") for r in quiet["reasons"]}
    assert incident["retrain"] is True
    # labels joined by request id: served quality is measured on every replayed sample
    assert quiet["served_quality"]["joined"] == quiet["served_samples"]
    assert 0.5 < quiet["served_quality"]["overall"]["auc"] < 0.95
