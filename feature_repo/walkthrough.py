"""A walk through the feature store, step by step: what Feast holds, and the one rule it leaves to us.

    python -m feature_repo.walkthrough            # a temporary folder, removed at the end
    python -m feature_repo.walkthrough --keep DIR # keep the store to look around in DIR

1. the batch feature jobs write MovieLens-100K's feature tables, each row stamped with the time its
   value became available; `feast apply` registers the views with the TTLs of params.yaml;
2. the point-in-time join gives one user's activity features as they stood at an event;
3. materialize loads the online store up to that moment, and the online read gives the same row;
4. a day later (past the view's 24-hour TTL, no newer run landed) the point-in-time join says the
   value is missing, but Feast's online read still returns it: online reads ignore TTL. The service
   applies each view's TTL to the returned availability time itself, and then agrees with training.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

VIEW = "user_activity"
FEATURES = ["user_events_7d", "user_events_30d", "user_mean_rating_30d"]


def say(step: str, text: str = "") -> None:
    print(f"\n== {step}\n{text}".rstrip())


def pick_value(table: pd.DataFrame, ttl_hours: float) -> pd.Series:
    """A user_activity row that no newer row replaces within its TTL, so it goes stale for real."""
    ordered = table.sort_values(["user_id", "event_timestamp"])
    replaced_at = ordered.groupby("user_id")["event_timestamp"].shift(-1)
    lasts = ordered[replaced_at.isna() | (replaced_at > ordered["event_timestamp"] + timedelta(hours=ttl_hours + 2))]
    return lasts.iloc[len(lasts) // 2]


def point_in_time_row(store, user_id: int, item_id: int, when: datetime) -> pd.Series:
    from components.data.dataset import point_in_time_join
    from feature_repo.definitions import REQUEST_TIME_FIELD

    entity = pd.DataFrame(
        {"event_id": [0], "user_id": [user_id], "item_id": [item_id], "event_timestamp": [pd.Timestamp(when)],
         REQUEST_TIME_FIELD: [int(when.timestamp())]}
    )
    return point_in_time_join(store, entity).iloc[0]


def online_row(store, user_id: int, item_id: int, when: datetime) -> pd.Series:
    """The feature service read online, as the service reads it (no TTL applied by Feast)."""
    from feature_repo.definitions import FEATURE_SERVICE, REQUEST_TIME_FIELD

    row = {"user_id": user_id, "item_id": item_id, REQUEST_TIME_FIELD: int(when.timestamp())}
    return store.get_online_features(features=store.get_feature_service(FEATURE_SERVICE), entity_rows=[row]).to_df().iloc[0]


def show(row: pd.Series) -> str:
    ts = row.get(f"{VIEW}_ts")
    stamp = "none" if pd.isna(ts) else datetime.fromtimestamp(int(ts), timezone.utc).isoformat()
    values = ", ".join(f"{f}={row[f]}" for f in FEATURES)
    return f"  {values}\n  available since: {stamp}"


def walk(workdir: Path) -> dict[str, bool]:
    """Run the walkthrough in `workdir`; returns what each step showed (the test reads it)."""
    from common.params import load_params
    from components.data.contract import schema_from_store
    from components.data.feature_jobs import FeatureJobConfig, build_feature_tables, write_feature_tables
    from components.data.feature_store import apply_step, feature_time_range, materialize, open_store, prepare_online_store
    from components.data.movielens import load_movielens
    from serving.online_features import apply_ttl

    params = load_params()
    features_dir = workdir / "features"
    raw = load_movielens()
    tables = build_feature_tables(raw, FeatureJobConfig.from_dict(params["feature_jobs"]))
    write_feature_tables(tables, features_dir)
    ttl_hours = params["feature_store"]["ttl_hours"]
    apply_step(str(features_dir), workdir, ttl_hours, "feature_store.yaml")
    store = open_store(fs_yaml="feature_store.yaml", work_dir=workdir)
    schema = schema_from_store(store)
    say("1. feast apply", "\n".join(f"  {v}: TTL {info['ttl_hours']} h, {len(info['features'])} features"
                                    for v, info in schema.views.items()))

    value = pick_value(tables[VIEW], schema.views[VIEW]["ttl_hours"])
    user_id, item_id = int(value["user_id"]), int(raw.items["item_id"].iloc[0])
    fresh_at = value["event_timestamp"].to_pydatetime() + timedelta(hours=1)
    offline = point_in_time_row(store, user_id, item_id, fresh_at)
    say(f"2. point-in-time join: user {user_id} at {fresh_at.isoformat()}", show(offline))

    online_store = prepare_online_store(fs_yaml="feature_store.yaml", work_dir=workdir)
    start, _ = feature_time_range(features_dir)
    materialize(online_store, start - timedelta(seconds=1), fresh_at)
    online = online_row(online_store, user_id, item_id, fresh_at)
    same = all(online[f] == offline[f] for f in [*FEATURES, f"{VIEW}_ts"])
    say(f"3. materialize up to then; online read of user {user_id}", show(online) + f"\n  same as the join: {same}")

    stale_at = value["event_timestamp"].to_pydatetime() + timedelta(hours=schema.views[VIEW]["ttl_hours"] + 1)
    materialize(online_store, fresh_at, stale_at)
    offline_late = point_in_time_row(store, user_id, item_id, stale_at)
    online_late = online_row(online_store, user_id, item_id, stale_at)
    served = apply_ttl(online_late.to_frame().T, schema, int(stale_at.timestamp())).iloc[0]
    offline_missing = bool(pd.isna(offline_late[FEATURES]).all())
    online_present = bool(pd.notna(online_late[FEATURES]).all())
    served_missing = bool(pd.isna(served[FEATURES]).all())
    say(
        f"4. {schema.views[VIEW]['ttl_hours']:.0f} h later ({stale_at.isoformat()}), no newer run landed",
        f"  point-in-time join: missing = {offline_missing} (Feast applies the TTL offline)\n"
        f"  Feast online read:  present = {online_present} (online reads ignore TTL)\n"
        f"  after the service applies the TTL: missing = {served_missing} (training and serving agree)",
    )
    return {"same_row_online": same, "offline_missing_after_ttl": offline_missing,
            "online_present_after_ttl": online_present, "served_missing_after_ttl": served_missing}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="build the store in this folder and keep it")
    args = parser.parse_args(argv)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="feast-walkthrough-"))
    try:
        walk(workdir)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
