"""The fresh dataset (the missingness tax's reference): the same events, labels and split as the natural
dataset, with every freshness gap closed and nothing else changed."""
from __future__ import annotations

import pandas as pd

from components.data.fresh import build_fresh_dataset


def test_the_fresh_dataset_closes_the_freshness_gaps_and_nothing_else(workspace, tmp_path):
    params = workspace.params
    fresh, schema = build_fresh_dataset(workspace.raw, params["feature_jobs"], params["feature_store"]["ttl_hours"],
                                        params["dataset"], tmp_path)
    assert list(schema.views) == list(workspace.schema.views)
    for split, natural in workspace.splits.items():
        same = fresh[split]
        assert same["event_id"].tolist() == natural["event_id"].tolist() and same["label"].tolist() == natural["label"].tolist()
        # profiles and catalogue rows land with the first event: never missing
        assert same["missing_view__user_profile"].sum() == 0 and same["missing_view__item_metadata"].sum() == 0
        for view in schema.views:
            column = f"missing_view__{view}"
            assert same[column].mean() <= natural[column].mean(), (split, view)
            # more missing only where the natural value was stale: a previous day's run of an entity whose
            # window has since emptied (the fresh run at midnight writes no row; the natural one lands hours later)
            lapsed = same[column].astype(bool) & ~natural[column].astype(bool)
            ts = schema.views[view].get("timestamp_column")
            if lapsed.any():
                midnight = natural.loc[lapsed, "event_timestamp"].dt.floor("D")
                assert (natural.loc[lapsed, ts] < midnight).all(), (split, view)
                assert lapsed.mean() < 0.01, (split, view, lapsed.mean())
        for view in ("user_activity", "item_stats"):  # a daily aggregate served in both is never from an older run
            ts = schema.views[view]["timestamp_column"]
            both = same[ts].notna() & natural[ts].notna()
            assert (same.loc[both, ts].dt.floor("D") >= natural.loc[both, ts].dt.floor("D")).all(), (split, view)
        for view in ("user_profile", "item_metadata"):  # the same profile and catalogue values, only sooner
            for feature in schema.views[view]["features"]:
                both = natural[f"missing__{feature}"] == 0
                assert same.loc[both, feature].astype(str).tolist() == natural.loc[both, feature].astype(str).tolist(), feature
    # the gaps were what made the natural set miss: the aggregate views are present far more often
    natural_test, fresh_test = workspace.splits["test"], fresh["test"]
    assert fresh_test["missing_view__item_stats"].mean() < natural_test["missing_view__item_stats"].mean() - 0.02
    assert pd.api.types.is_datetime64_any_dtype(fresh_test["event_timestamp"])
