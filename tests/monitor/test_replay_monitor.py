"""Replayed traffic through the serving path, and the monitor reading it: a freshness incident is flagged
and its views named, against the same period replayed without it."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from components.monitor.monitor import MonitorConfig, load_served, monitor, psi, trained_columns
from components.monitor.replay import OUTCOMES_FILE, ReplayConfig, daily_runs, replay, requests_of
from serving.serving_log import read_serving_log

CONFIG = MonitorConfig(reference_days=0, missing_rate_margin=0.05, max_missing_count_psi=0.25, max_feature_psi=0.25, min_samples=500)


def test_psi_is_zero_for_equal_histograms_and_grows_with_the_shift():
    assert psi([10, 20, 70], [1, 2, 7]) == pytest.approx(0.0, abs=1e-12)
    assert psi([50, 50], [45, 55]) < 0.05 < psi([50, 50], [20, 80]) < psi([50, 50], [5, 95])


def test_requests_and_daily_runs():
    events = pd.DataFrame({
        "event_id": [1, 2, 3, 4], "user_id": [7, 7, 8, 7], "item_id": [1, 2, 1, 2],
        "event_timestamp": pd.to_datetime(["1998-03-01 10:00", "1998-03-01 10:00", "1998-03-01 10:00", "1998-03-02 09:00"], utc=True),
    })
    assert [g["item_id"].tolist() for g in requests_of(events)] == [[1, 2], [1], [2]]
    runs = daily_runs(events["event_timestamp"].min().to_pydatetime(), events["event_timestamp"].max().to_pydatetime(), timedelta(hours=6))
    assert [r.isoformat() for r in runs] == ["1998-03-01T06:00:00+00:00", "1998-03-02T06:00:00+00:00"]


def test_configs_reject_bad_values_naming_the_key():
    with pytest.raises(ValueError, match="replay.incident.days"):
        ReplayConfig(incident={"views": ["item_stats"], "start_day": 0, "days": 0}).validate()
    with pytest.raises(ValueError, match="replay.split"):
        ReplayConfig(split="future").validate()
    with pytest.raises(ValueError, match="unknown key"):
        MonitorConfig.from_dict({**CONFIG.__dict__, "max_shift": 0.1})
    with pytest.raises(ValueError, match="monitor.reference_days"):
        MonitorConfig.from_dict({**CONFIG.__dict__, "reference_days": -1})


def test_a_quiet_replay_serves_exactly_what_the_offline_join_gave_the_same_events(workspace, checkpoint, tmp_path):
    """Online/offline parity over a whole replay: with daily views materialized when their job lands and
    pushed views written as their rows land, every served sample's view masks and feature ages equal the
    point-in-time join's for the same event, so the monitor sees no difference at all; and the labels join
    back by request id."""
    from models import load_checkpoint

    test = workspace.splits["test"]
    config = ReplayConfig(split="test", max_requests=1500, pushed_views=("user_profile", "item_metadata"))
    summary = replay(test, checkpoint, "test:1", workspace.root / "data" / "features", workspace.root / "data" / "feast",
                     tmp_path / "replay", config, batch_lag_hours=workspace.params["feature_jobs"]["batch_lag_hours"], progress=False)
    assert summary.requests == 1500 and summary.degraded == 0 and summary.daily_runs >= 2
    served = load_served(list(read_serving_log(tmp_path / "replay" / "serving_log")))
    assert served.frame["request_id"].nunique() == 1500 and len(served.frame) == summary.samples

    offline = test.sort_values(["event_timestamp", "user_id", "event_id"]).drop_duplicates(["event_timestamp", "user_id", "item_id"])
    offline = offline.set_index(["event_timestamp", "user_id", "item_id"])
    keys = list(zip(served.frame["request_time"], served.frame["user_id"], served.frame["item_id"]))
    joined = offline.loc[keys]
    for view in served.views:
        assert (served.frame[f"missing__{view}"].to_numpy() == joined[f"missing_view__{view}"].to_numpy()).all(), view
    for view in served.stored_views:
        offline_age = (joined.index.get_level_values(0) - joined[f"{view}_ts"]).dt.total_seconds().to_numpy()
        served_age = served.frame[f"age__{view}"].to_numpy()
        both = ~pd.isna(offline_age) & ~pd.isna(served_age)
        assert (pd.isna(offline_age) == pd.isna(served_age)).all() and abs(served_age[both] - offline_age[both]).max() <= 1, view

    schema = load_checkpoint(checkpoint).schema
    same = trained_columns(joined.reset_index(), schema, served.views, served.stored_views, served.fields)
    report = monitor(served, same, schema, CONFIG, pd.read_json(tmp_path / "replay" / OUTCOMES_FILE, lines=True))
    assert report["missing_count"]["psi"] == pytest.approx(0, abs=1e-9)
    assert all(v == pytest.approx(0, abs=1e-9) for v in report["feature_psi"].values())
    assert report["served_quality"]["joined"] == report["served_samples"]
    assert 0.5 < report["served_quality"]["overall"]["auc"] < 0.95


def test_the_clis_name_what_is_missing_and_exit_2(tmp_path, capsys):
    from components.monitor import monitor as monitor_cli
    from components.monitor import replay as replay_cli

    assert monitor_cli.main(["--log", str(tmp_path / "nolog"), "--metrics", str(tmp_path / "m.json")]) == 2
    assert "no serving log at" in capsys.readouterr().err
    assert replay_cli.main(["--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "no test split at" in capsys.readouterr().err and not (tmp_path / "out").exists()
