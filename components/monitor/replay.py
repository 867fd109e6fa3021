"""Replay a period of logged events through the real serving path, as production would have served them.

Events after the training window (the test split, in time order) become requests at their own times:
events of one user at one instant are one /rank request. The online store is a store of the replay's
own, materialized once a day at `materialize_hour_utc` as time advances (the production cadence), so
each request sees what the service would have seen then; scoring goes through `serving.ranker.Ranker`
(the service's online path, item cache included) and every answer is written with the service's own
`serving_record` into a serving log. Labels arrive later, as in production: an outcomes file keyed by
request id, which the monitor joins.

An incident can be injected for tests and drills: the daily runs of some views fail for a number of
days (those views are not materialized in that window, so their rows never land and values expire).
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from common.files import replace_dir, staging_dir_for
from common.params import ParamsSection
from components.data.feature_store import feature_time_range, prepare_online_store

log = logging.getLogger(__name__)
OUTCOMES_FILE = "outcomes.jsonl"


@dataclass(frozen=True)
class Incident:
    """The daily runs of `views` fail from `start_day` (days after the first replayed event) for `days` days."""

    views: tuple[str, ...]
    start_day: int
    days: int

    def covers(self, view: str, run_at: datetime, first_day: datetime) -> bool:
        day = (run_at - first_day).days
        return view in self.views and self.start_day <= day < self.start_day + self.days


@dataclass(frozen=True)
class ReplayConfig(ParamsSection):
    """The params.yaml `replay:` section."""

    SECTION = "replay"

    split: str
    materialize_hour_utc: int
    max_requests: int  # 0: every request of the split
    incident: dict | None = field(default=None)  # {"views": [...], "start_day": d, "days": n}

    def validate(self) -> None:
        if self.split not in ("train", "validation", "test"):
            raise ValueError(f"replay.split must be train, validation or test, got {self.split!r}")
        if not isinstance(self.materialize_hour_utc, int) or not 0 <= self.materialize_hour_utc <= 23:
            raise ValueError(f"replay.materialize_hour_utc must be an hour 0..23, got {self.materialize_hour_utc!r}")
        if not isinstance(self.max_requests, int) or self.max_requests < 0:
            raise ValueError(f"replay.max_requests must be an integer >= 0 (0: all), got {self.max_requests!r}")
        if self.incident is not None:
            unknown = set(self.incident) - {"views", "start_day", "days"}
            if unknown or not self.incident.get("views"):
                raise ValueError(f"replay.incident needs views, start_day and days, got {self.incident!r}")

    def incident_spec(self) -> Incident | None:
        if not self.incident:
            return None
        return Incident(tuple(self.incident["views"]), int(self.incident.get("start_day", 0)), int(self.incident.get("days", 1)))


def requests_of(events: pd.DataFrame) -> list[pd.DataFrame]:
    """The events grouped into requests: one user at one instant, items listed once, in time order."""
    ordered = events.sort_values(["event_timestamp", "user_id", "event_id"], kind="stable")
    ordered = ordered.drop_duplicates(["event_timestamp", "user_id", "item_id"])
    return [group for _, group in ordered.groupby(["event_timestamp", "user_id"], sort=True)]


def daily_runs(first: datetime, last: datetime, hour: int) -> list[datetime]:
    """The materialization runs at `hour` UTC each day, from the last one before `first` through `last`."""
    run = first.replace(hour=hour, minute=0, second=0, microsecond=0)
    if run > first:
        run -= timedelta(days=1)
    runs = []
    while run <= last:
        runs.append(run)
        run += timedelta(days=1)
    return runs


@dataclass
class ReplaySummary:
    requests: int
    samples: int
    degraded: int
    runs: int
    skipped_runs: dict[str, int]


def replay(
    events: pd.DataFrame,
    checkpoint_dir: Path,
    model_tag: str,
    features_dir: Path,
    registry_dir: Path,
    out_dir: Path,
    config: ReplayConfig,
    *,
    progress: bool = True,
) -> ReplaySummary:
    """Serve `events` as requests at their own times; writes `<out_dir>/serving_log/` and `<out_dir>/outcomes.jsonl`
    (replacing what was there only once complete). The online store is an SQLite store of the replay's own,
    built from the applied registry in `registry_dir`: a replay never writes into a live store."""
    from components.data.feature_store import DEFAULT_FS_YAML, REPO_DIR
    from dataclasses import replace

    from serving.config import ServingConfig
    from serving.ranker import Ranker
    from serving.serving_log import ServingLog, serving_record

    incident = config.incident_spec()
    requests = requests_of(events)
    if config.max_requests:
        requests = requests[: config.max_requests]
    if not requests:
        raise ValueError(f"replay: no events in the {config.split} split to replay")
    out_dir = Path(out_dir)
    staging = staging_dir_for(out_dir)
    store_dir = staging / "store"
    store_dir.mkdir()
    applied = Path(registry_dir) / "registry.db"
    if not applied.exists():
        raise FileNotFoundError(f"no applied registry at {applied}; run the apply step first (dvc repro feast_apply)")
    shutil.copyfile(applied, store_dir / "registry.db")
    store = prepare_online_store(REPO_DIR, DEFAULT_FS_YAML, work_dir=store_dir)
    views = [v.name for v in store.list_feature_views()]
    if incident:
        unknown = sorted(set(incident.views) - set(views))
        if unknown:
            raise ValueError(f"replay.incident.views names unknown view(s) {unknown}; views: {views}")
    start, _ = feature_time_range(Path(features_dir))
    first = requests[0]["event_timestamp"].iloc[0].to_pydatetime()
    last = requests[-1]["event_timestamp"].iloc[0].to_pydatetime()
    runs = daily_runs(first, last, config.materialize_hour_utc)
    since = {v: start - timedelta(seconds=1) for v in views}
    skipped = {v: 0 for v in views}

    def run_materialization(at: datetime) -> None:
        due = []
        for view in views:
            if incident and incident.covers(view, at, first):
                skipped[view] += 1
                since[view] = at  # what the failed run would have loaded never lands
            else:
                due.append(view)
        for view in due:
            store.materialize(start_date=since[view], end_date=at, feature_views=[view])
            since[view] = at

    # check the store on every read: the daily runs change it between requests
    ranker = Ranker(Path(checkpoint_dir), store, model_tag, replace(ServingConfig.load(), store_check_seconds=0))
    serving_log = ServingLog(staging / "serving_log", "replay", 2**40, 1)
    outcomes = []
    degraded = samples = 0
    pending = list(runs)
    iterator = requests
    if progress:
        from tqdm import tqdm

        iterator = tqdm(requests, desc=f"replay {config.split}", unit="request")
    for group in iterator:
        when = group["event_timestamp"].iloc[0].to_pydatetime().astimezone(timezone.utc)
        while pending and pending[0] <= when:
            run_materialization(pending.pop(0))
        user = int(group["user_id"].iloc[0])
        items = [int(i) for i in group["item_id"]]
        result = ranker.rank(user, items, when)
        request_id = f"replay-{int(group['event_id'].iloc[0])}"
        serving_log.write(serving_record(
            request_id=request_id, endpoint="rank", request_time=when, model=model_tag, user_ids=np.full(len(items), user),
            item_ids=items, scores=result.scores, samples=result.samples, single_fields=ranker.online.single_field_names, stored_views=ranker.online.stored_views,
        ))
        samples += len(items)
        degraded += int(result.degraded)
        if "label" in group:
            for item, label in zip(items, group["label"].astype(int)):
                outcomes.append({"request_id": request_id, "item_id": item, "label": int(label)})
    serving_log.flush()
    (staging / OUTCOMES_FILE).write_bytes(b"".join(orjson.dumps(o, option=orjson.OPT_APPEND_NEWLINE) for o in outcomes))
    shutil.rmtree(store_dir)  # the replay's own store: a means, not an output
    replace_dir(staging, out_dir)
    return ReplaySummary(len(requests), samples, degraded, len(runs), {v: n for v, n in skipped.items() if n})
