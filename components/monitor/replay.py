"""Replay a period of logged events through the real serving path, as production would have served them.

Events after the training window (the test split, in time order) become requests at their own times:
events of one user at one instant are one /rank request. The online store is a store of the replay's
own, fed as production feeds it while time advances, so each request sees what the service would have
seen then:
  - views whose rows land with a daily batch job (the aggregates) are materialized once a day, when the
    job lands (midnight + `feature_jobs.batch_lag_hours`, the time the job stamps on its rows);
  - views whose rows land one by one (`replay.pushed_views`: the profile sync, the catalogue
    ingestion) are written to the online store as each row lands, as a Feast push source would.
This is the schedule the offline point-in-time join assumes (a row counts from its landing time), so a
quiet replay serves the missingness the model was trained on; an online store materialized only daily
would serve a new user's profile up to a day late, a training/serving skew the monitor would report.

Scoring goes through `serving.ranker.Ranker` (the service's online path, item cache included) and every
answer is written with the service's own `serving_record` into a serving log. Labels arrive later, as in
production: an outcomes file keyed by request id and item, which the monitor joins.

An incident can be injected for tests and drills: the feeds of some views are down for a number of days.
A daily view's runs in that window fail (what they would have loaded never lands, and values expire
with their TTL); a pushed view's rows queue and land together when the feed recovers.

    python -m components.monitor.replay --data data/validated --models data/models --features data/features \\
        --registry data/feast --out data/replay --params params.yaml
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
import orjson
import pandas as pd
import torch

from common.files import atomic_write_json, replace_dir, staging_dir_for
from common.params import ParamsSection, load_params, section
from components.data.engine import stop_spark

log = logging.getLogger(__name__)
OUTCOMES_FILE = "outcomes.jsonl"
LOG_DIR = "serving_log"
SUMMARY_FILE = "replay.json"
SERVING_MODEL = "asymdiffrec"  # the folder of data/models that serves the replay: the model the pipeline just trained


@dataclass(frozen=True)
class Incident:
    """The feeds of `views` are down from `start_day` (whole days after the first replayed request) for `days` days."""

    views: tuple[str, ...]
    start_day: int
    days: int

    def covers(self, view: str, at: datetime, first_day: datetime) -> bool:
        day = (at - first_day).total_seconds() / 86400
        return view in self.views and self.start_day <= day < self.start_day + self.days

    def recovery(self, first_day: datetime) -> datetime:
        return first_day + timedelta(days=self.start_day + self.days)


@dataclass(frozen=True)
class ReplayConfig(ParamsSection):
    """The params.yaml `replay:` section."""

    SECTION = "replay"

    split: str = "test"
    max_requests: int = 0  # 0: every request of the split
    pushed_views: tuple[str, ...] = ()  # written as their rows land; the other stored views are materialized daily
    incident: dict | None = field(default=None)  # {"views": [...], "start_day": d, "days": n}

    def validate(self) -> None:
        if self.split not in ("train", "validation", "test"):
            raise ValueError(f"replay.split must be train, validation or test, got {self.split!r}")
        if not isinstance(self.max_requests, int) or isinstance(self.max_requests, bool) or self.max_requests < 0:
            raise ValueError(f"replay.max_requests must be an integer >= 0 (0: all), got {self.max_requests!r}")
        if not isinstance(self.pushed_views, tuple) or not all(isinstance(v, str) for v in self.pushed_views):
            raise ValueError(f"replay.pushed_views must be a list of feature view names, got {self.pushed_views!r}")
        if self.incident is not None:
            if not isinstance(self.incident, dict):
                raise ValueError(f"replay.incident must be null or a mapping with views, start_day and days, got {self.incident!r}")
            unknown = set(self.incident) - {"views", "start_day", "days"}
            views = self.incident.get("views")
            if unknown or not views or not isinstance(views, list):
                raise ValueError(f"replay.incident needs views (a list), start_day and days; got {self.incident!r}")
            for key in ("start_day", "days"):
                value = self.incident.get(key, 0 if key == "start_day" else 1)
                if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "start_day" else 1):
                    raise ValueError(f"replay.incident.{key} must be an integer >= {0 if key == 'start_day' else 1}, got {value!r}")

    def incident_spec(self) -> Incident | None:
        if not self.incident:
            return None
        return Incident(tuple(self.incident["views"]), int(self.incident.get("start_day", 0)), int(self.incident.get("days", 1)))


def requests_of(events: pd.DataFrame) -> list[pd.DataFrame]:
    """The events grouped into requests: one user at one instant, items listed once, in time order."""
    ordered = events.sort_values(["event_timestamp", "user_id", "event_id"], kind="stable")
    ordered = ordered.drop_duplicates(["event_timestamp", "user_id", "item_id"])
    return [group for _, group in ordered.groupby(["event_timestamp", "user_id"], sort=True)]


def daily_runs(first: datetime, last: datetime, landing: timedelta) -> list[datetime]:
    """When the daily jobs land (midnight UTC + `landing`), from the last landing before `first` through `last`."""
    run = first.replace(hour=0, minute=0, second=0, microsecond=0) + landing
    while run > first:
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
    daily_runs: int
    pushes: int
    period: tuple[str, str]
    skipped_runs: dict[str, int]
    held_rows: dict[str, int]  # pushed rows an incident delayed

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


class _Feeds:
    """The online store's feeds during a replay: daily materialization runs and pushed rows, incident applied."""

    def __init__(self, store, features_dir: Path, views: list[str], pushed: tuple[str, ...], runs: list[datetime],
                 first: datetime, last: datetime, incident: Incident | None):
        from components.data.feature_store import feature_time_range

        self.store, self.first, self.incident = store, first, incident
        self.daily = [v for v in views if v not in pushed]
        self.skipped = {v: 0 for v in views}
        self.held = {v: 0 for v in views}
        self.pushes = 0
        # everything landed before the first request (the run before it included) is already in the store
        start, _ = feature_time_range(Path(features_dir))
        store.materialize(start_date=start - timedelta(seconds=1), end_date=first, feature_views=list(views))
        self.since = {v: first for v in self.daily}
        self.runs = deque(r for r in runs if r > first)
        pending: list[tuple[datetime, str, pd.DataFrame]] = []
        for view in pushed:
            rows = pd.read_parquet(Path(features_dir) / f"{view}.parquet")
            rows = rows[(rows["event_timestamp"] > first) & (rows["event_timestamp"] <= last)]
            for when, batch in rows.groupby("event_timestamp", sort=True):
                lands = when.to_pydatetime()
                if incident and incident.covers(view, lands, first):
                    self.held[view] += len(batch)
                    lands = incident.recovery(first)
                pending.append((lands, view, batch))
        self.pending = deque(sorted(pending, key=lambda p: p[0]))

    def advance(self, now: datetime) -> None:
        """Apply every daily run and push due at or before `now`. Runs touch daily views only and pushes pushed
        views only, so the pushes of one view due by `now` are written in one batch, oldest first."""
        while self.runs and self.runs[0] <= now:
            self._materialize(self.runs.popleft())
        due: dict[str, list[pd.DataFrame]] = {}
        while self.pending and self.pending[0][0] <= now:
            _, view, batch = self.pending.popleft()
            due.setdefault(view, []).append(batch)
        for view, batches in due.items():
            self.store.write_to_online_store(view, pd.concat(batches, ignore_index=True) if len(batches) > 1 else batches[0])
            self.pushes += 1

    def _materialize(self, at: datetime) -> None:
        due = []
        for view in self.daily:
            if self.incident and self.incident.covers(view, at, self.first):
                self.skipped[view] += 1
                self.since[view] = at  # what the failed run would have loaded never lands
            else:
                due.append(view)
        for view in due:
            self.store.materialize(start_date=self.since[view], end_date=at, feature_views=[view])
            self.since[view] = at


def replay(
    events: pd.DataFrame,
    checkpoint_dir: Path,
    model_tag: str,
    features_dir: Path,
    registry_dir: Path,
    out_dir: Path,
    config: ReplayConfig,
    *,
    batch_lag_hours: float,
    progress: bool = True,
    engine: str = "duckdb",
) -> ReplaySummary:
    """Serve `events` as requests at their own times; writes `<out_dir>/serving_log/`, `<out_dir>/outcomes.jsonl`
    and `<out_dir>/replay.json` (replacing what was there only once complete). The online store is an
    SQLite store of the replay's own, built from the applied registry in `registry_dir`: a replay never
    writes into a live store. `batch_lag_hours`: when the daily jobs land after midnight (feature_jobs).
    `engine`: the one that made the registry; its daily runs read the feature tables through the same
    offline store (the local config of that engine: DuckDB, or Spark on local cores)."""
    from components.data.engine import check_engine, local_config
    from components.data.feature_store import REPO_DIR, prepare_online_store
    from serving.config import ServingConfig
    from serving.ranker import Ranker
    from serving.serving_log import ServingLog, serving_record

    threads = torch.get_num_threads()
    incident = config.incident_spec()
    requests = requests_of(events)
    if config.max_requests:
        requests = requests[: config.max_requests]
    if not requests:
        raise ValueError(f"replay: no events in the {config.split} split to replay")
    out_dir, features_dir = Path(out_dir).resolve(), Path(features_dir).resolve()  # the Feast config resolves paths from its repo
    staging = staging_dir_for(out_dir)
    try:
        store_dir = staging / "store"
        store_dir.mkdir()
        applied = Path(registry_dir).resolve() / "registry.db"
        if not applied.exists():
            raise FileNotFoundError(f"no applied registry at {applied}; run the apply step first (dvc repro feast_apply)")
        shutil.copyfile(applied, store_dir / "registry.db")
        fs_yaml = local_config(engine)
        check_engine(engine, fs_yaml)
        store = prepare_online_store(REPO_DIR, fs_yaml, work_dir=store_dir)
        views = [v.name for v in store.list_feature_views()]
        for name, named in (("replay.pushed_views", config.pushed_views), ("replay.incident.views", incident.views if incident else ())):
            unknown = sorted(set(named) - set(views))
            if unknown:
                raise ValueError(f"{name} names unknown view(s) {unknown}; the stored views are {views}")
        first = requests[0]["event_timestamp"].iloc[0].to_pydatetime().astimezone(timezone.utc)
        last = requests[-1]["event_timestamp"].iloc[0].to_pydatetime().astimezone(timezone.utc)
        runs = daily_runs(first, last, timedelta(hours=float(batch_lag_hours)))
        feeds = _Feeds(store, Path(features_dir), views, config.pushed_views, runs, first, last, incident)

        # as a service worker runs (its torch threads), checking the store on every read: the feeds change it between requests
        serving = ServingConfig.load()
        torch.set_num_threads(serving.torch_threads)
        ranker = Ranker(Path(checkpoint_dir), store, model_tag, replace(serving, store_check_seconds=0))
        serving_log = ServingLog(staging / LOG_DIR, "replay", 2**40, 1)
        outcomes = []
        degraded = samples = 0
        iterator = requests
        if progress:
            from tqdm import tqdm

            iterator = tqdm(requests, desc=f"replay {config.split}", unit="request", mininterval=2)
        for group in iterator:
            when = group["event_timestamp"].iloc[0].to_pydatetime().astimezone(timezone.utc)
            feeds.advance(when)
            user = int(group["user_id"].iloc[0])
            items = [int(i) for i in group["item_id"]]
            scores, served = ranker.score(user, items, when)  # what /rank answers, before ordering
            request_id = f"replay-{int(group['event_id'].iloc[0])}"
            serving_log.write(serving_record(
                request_id=request_id, endpoint="rank", request_time=when, model=model_tag, user_ids=np.full(len(items), user),
                item_ids=items, scores=scores, samples=served,
                single_fields=ranker.online.single_field_names, stored_views=ranker.online.stored_views,
            ))
            samples += len(items)
            degraded += int(served.degraded)
            if "label" in group:
                for item, label in zip(items, group["label"].astype(int)):
                    outcomes.append({"request_id": request_id, "item_id": item, "label": int(label)})
        serving_log.flush()
        (staging / OUTCOMES_FILE).write_bytes(b"".join(orjson.dumps(o, option=orjson.OPT_APPEND_NEWLINE) for o in outcomes))
        summary = ReplaySummary(
            len(requests), samples, degraded, len(runs), feeds.pushes, (first.isoformat(), last.isoformat()),
            {v: n for v, n in feeds.skipped.items() if n}, {v: n for v, n in feeds.held.items() if n},
        )
        atomic_write_json(summary.to_dict(), staging / SUMMARY_FILE)
        shutil.rmtree(store_dir)  # the replay's own store: a means, not an output
        replace_dir(staging, out_dir)
    finally:
        torch.set_num_threads(threads)
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return summary


def replay_step(data_dir: Path, models_dir: Path, features_dir: Path, registry_dir: Path, out_dir: Path,
                config: ReplayConfig, batch_lag_hours: float, *, progress: bool = True, engine: str = "duckdb") -> ReplaySummary:
    """The pipeline step: replay `config.split` of the validated dataset with the model just trained."""
    split_path = Path(data_dir) / f"{config.split}.parquet"
    if not split_path.exists():
        raise FileNotFoundError(f"no {config.split} split at {split_path}; run the dataset and validate steps first (dvc repro validate)")
    checkpoint = Path(models_dir) / SERVING_MODEL
    if not checkpoint.exists():
        raise FileNotFoundError(f"no trained model at {checkpoint}; run the train step first (dvc repro train)")
    events = pd.read_parquet(split_path)
    return replay(events, checkpoint, f"{SERVING_MODEL}:replay", Path(features_dir), Path(registry_dir), Path(out_dir), config,
                  batch_lag_hours=batch_lag_hours, progress=progress, engine=engine)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Replay the events after the training window through the serving path.")
    parser.add_argument("--data", type=Path, default=Path("data/validated"), help="the validated dataset (its splits)")
    parser.add_argument("--models", type=Path, default=Path("data/models"), help="the train step's output")
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--registry", type=Path, default=Path("data/feast"), help="the folder of the applied registry.db")
    parser.add_argument("--out", type=Path, default=Path("data/replay"))
    parser.add_argument("--params", default="params.yaml", help="reads its replay: section and feature_jobs.batch_lag_hours")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    params = load_params(args.params)
    try:
        config = ReplayConfig.from_dict(section(params, "replay"))
        summary = replay_step(args.data, args.models, args.features, args.registry, args.out, config,
                              float(section(params, "feature_jobs", "batch_lag_hours")), engine=str(section(params, "engine")))
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"replay: {e}", file=sys.stderr)
        return 2
    finally:
        stop_spark()
    print(f"replayed {summary.requests} requests ({summary.samples} samples, {summary.degraded} degraded) "
          f"from {summary.period[0]} to {summary.period[1]}: {summary.daily_runs} daily runs, {summary.pushes} pushes -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
