"""The batch feature jobs: windows, failures, delays, and no value computed from its own future."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.data.feature_jobs import DAY, FeatureJobConfig, build_feature_tables, failed_runs, run_days
from components.data.raw import RawTables

VIEWS_WITH_KEYS = {"user_profile": "user_id", "user_activity": "user_id", "item_metadata": "item_id", "item_stats": "item_id"}


def test_trailing_windows_count_only_events_before_the_cutoff(movielens, workspace):
    events = movielens.events
    lag = int(workspace.params["feature_jobs"]["batch_lag_hours"] * 3600)
    rows = workspace.tables["item_stats"].sample(300, random_state=0)
    for row in rows.itertuples():
        cutoff = int(row.item_stats_ts) - lag
        assert cutoff % DAY == 0, "daily runs cut off at midnight"
        mine = events[(events.item_id == row.item_id) & (events.timestamp < cutoff)]
        last30 = mine[mine.timestamp >= cutoff - 30 * DAY]
        last7 = mine[mine.timestamp >= cutoff - 7 * DAY]
        assert row.item_events_30d == len(last30)
        assert row.item_events_7d == len(last7)
        assert row.item_mean_rating_30d == pytest.approx(last30.rating.mean())


def jobs(project_params, **overrides) -> FeatureJobConfig:
    return FeatureJobConfig.from_dict(project_params["feature_jobs"], **overrides)


def test_failed_runs_are_seeded_and_near_the_configured_rate(movielens, project_params):
    cutoffs = run_days(movielens.events)
    cfg = jobs(project_params, batch_failure_rate=0.3, seed=5)
    first = failed_runs(cutoffs, "user_activity", cfg)
    assert np.array_equal(first, failed_runs(cutoffs, "user_activity", cfg))
    assert not np.array_equal(first, failed_runs(cutoffs, "item_stats", cfg)), "each job fails on its own days"
    assert 0.15 < first.mean() < 0.45
    assert not failed_runs(cutoffs, "user_activity", jobs(project_params, batch_failure_rate=0.0)).any()


def test_a_failed_run_leaves_no_rows_for_its_day(movielens, project_params):
    cfg = jobs(project_params, batch_failure_rate=0.3, seed=5)
    cutoffs = run_days(movielens.events)
    failed = set(cutoffs[failed_runs(cutoffs, "user_activity", cfg)])
    landed = build_feature_tables(movielens, cfg)["user_activity"]["user_activity_ts"] - int(cfg.batch_lag_hours * 3600)
    assert failed and not failed & set(landed.unique())


def test_profiles_and_metadata_land_after_the_first_event(movielens, workspace):
    first_user = movielens.events.groupby("user_id").timestamp.min()
    profile = workspace.tables["user_profile"].set_index("user_id")
    assert (profile["user_profile_ts"] >= first_user.loc[profile.index]).all()
    assert (profile["user_profile_ts"] > first_user.loc[profile.index]).mean() > 0.9, "a sync delay, not instant"


def test_no_feature_value_comes_from_events_at_or_after_the_event(movielens, workspace, project_params):
    """Rebuild every feature table from only the events strictly before a sampled event's time:
    the values the training row holds must be there, unchanged. A job reading the future would differ."""
    cfg = FeatureJobConfig.from_dict(project_params["feature_jobs"])
    data = workspace.dataset
    sample = data.iloc[np.linspace(len(data) * 0.05, len(data) - 1, 12).astype(int)]
    checked = 0
    for row in sample.itertuples(index=False):
        cut = int(row.event_timestamp.timestamp())
        past = RawTables(movielens.events[movielens.events.timestamp < cut], movielens.users, movielens.items)
        tables = build_feature_tables(past, cfg)
        for view, key in VIEWS_WITH_KEYS.items():
            ts = getattr(row, f"{view}_ts")
            if pd.isna(ts):
                continue
            assert ts <= row.event_timestamp, f"{view} value from the future"
            table = tables[view]
            match = table[(table[key] == getattr(row, key)) & (table[f"{view}_ts"] == int(ts.timestamp()))]
            assert len(match) == 1, f"{view} row for event {row.event_id} not reproducible from past events"
            for feature in workspace.schema.views[view]["features"]:
                got, want = getattr(row, feature), match.iloc[0][feature]
                if isinstance(want, (list, np.ndarray)):
                    assert list(got) == list(want), (view, feature)
                elif pd.isna(want):
                    assert pd.isna(got), (view, feature)
                else:
                    assert got == pytest.approx(want), (view, feature)
            checked += 1
    assert checked >= 20


def test_raw_tables_reject_events_of_unknown_items(movielens):
    broken = RawTables(movielens.events, movielens.users, movielens.items[movielens.items.item_id != 1])
    with pytest.raises(ValueError, match=r"item_id.*absent from 'items'.*\[1\]"):
        broken.check()


def test_synthetic_source_follows_the_schema_and_its_knobs(project_params):
    from components.data.synthetic_log import SyntheticConfig, generate

    defaults = project_params["ingest"]["synthetic"]
    cfg = SyntheticConfig.from_dict(defaults, n_events=30_000, n_users=600, n_items=400, days=20, seed=3)
    raw = generate(cfg)
    assert len(raw.events) == 30_000 and len(raw.users) == 600 and len(raw.items) == 400
    assert raw.events["timestamp"].is_monotonic_increasing
    assert raw.events["rating"].between(1, 5).all()
    span = raw.events["timestamp"].max() - raw.events["timestamp"].min()
    assert span <= 20 * DAY
    popularity = raw.events["item_id"].value_counts()
    assert popularity.iloc[: len(popularity) // 100 + 1].sum() > 0.05 * len(raw.events), "Zipf: a head of items dominates"
    assert generate(cfg).events.equals(raw.events), "deterministic by seed"
    with pytest.raises(ValueError, match="n_events"):
        SyntheticConfig.from_dict(defaults, n_events=0)
    with pytest.raises(ValueError, match="ingest.synthetic has unknown key"):
        SyntheticConfig.from_dict(defaults, n_event=10)
    with pytest.raises(ValueError, match=r"ingest.synthetic lacks key\(s\) \['days'\]"):
        SyntheticConfig.from_dict({k: v for k, v in defaults.items() if k != "days"})
