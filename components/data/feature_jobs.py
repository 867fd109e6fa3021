"""Batch feature jobs, computed the way production jobs compute them.

Each table is stamped (`event_timestamp`) with the time its values became *available*,
not the time they describe. That is what makes a point-in-time join see the same gaps
production sees:
- user profiles sync after a delay, so a new user's first events have no profile;
- item metadata is ingested after a delay, so a new item's first events have none;
- activity and item statistics come from a daily job over trailing windows that lands a
  few hours after midnight, and a seeded fraction of its runs fail, so values go stale
  and the feature view's TTL turns them into missing ones;
- cold-start users and items have no aggregates at all.
Every aggregate of a run with cutoff C uses only events strictly before C, and C is before
the run's availability time: no value can describe its own future.
"""
from __future__ import annotations

import argparse
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.files import atomic_write_parquet
from common.params import ParamsSection, load_params, section
from components.data.raw import RawTables

DAY = 86_400
SHORT_WINDOW_DAYS = 7  # part of the feature names (user_events_7d): schema, not a knob
LONG_WINDOW_DAYS = 30
AGE_BUCKETS = [(0, "<18"), (18, "18-24"), (25, "25-34"), (35, "35-44"), (45, "45-49"), (50, "50-55"), (56, "56+")]
FEATURE_TABLES = ("user_profile", "user_activity", "item_metadata", "item_stats")


@dataclass(frozen=True)
class FeatureJobConfig(ParamsSection):
    """The params.yaml `feature_jobs:` section (its values live there only)."""

    SECTION = "feature_jobs"
    profile_sync_delay_hours: float  # mean (exponential) delay before a new user's profile lands
    item_ingestion_delay_hours: float  # mean (exponential) delay before a new item's metadata lands
    batch_lag_hours: float  # the daily aggregate jobs land this long after midnight
    batch_failure_rate: float  # seeded share of daily runs that fail
    top_genres: int
    seed: int

    def validate(self) -> None:
        if not 0.0 <= self.batch_failure_rate < 1.0:
            raise ValueError(f"feature_jobs.batch_failure_rate must be in [0, 1), got {self.batch_failure_rate}")
        if min(self.profile_sync_delay_hours, self.item_ingestion_delay_hours, self.batch_lag_hours) < 0:
            raise ValueError("feature_jobs delays and lags must be >= 0 hours")


def to_utc(seconds: np.ndarray | pd.Series) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(seconds, dtype="int64"), unit="s", utc=True).as_unit("ns")


def _stamp(frame: pd.DataFrame, available_s: np.ndarray, view: str) -> pd.DataFrame:
    frame = frame.copy()
    frame["event_timestamp"] = to_utc(available_s)
    frame[f"{view}_ts"] = np.asarray(available_s, dtype=np.int64)  # unix s: Feast serves it as a plain Int64 feature
    return frame.sort_values(["event_timestamp"] + [c for c in frame.columns if c.endswith("_id")], kind="stable").reset_index(drop=True)


def _uniform_by_id(ids: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """A uniform draw in [0, 1) per entity id (splitmix64 hash): the same id always gets the same draw,
    whatever else is in the log, so re-running a job on a longer log never moves past values."""
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) + np.uint64((seed * 0x9E3779B1 + stream * 0x85EBCA77) & 0xFFFFFFFFFFFFFFFF)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _delays(ids: np.ndarray, mean_hours: float, seed: int, stream: int) -> np.ndarray:
    """Exponential delays (seconds) with the given mean, one per entity id."""
    return (-np.log1p(-_uniform_by_id(ids, seed, stream)) * mean_hours * 3600).astype(np.int64)


def age_bucket(age: pd.Series) -> pd.Series:
    edges = [lo for lo, _ in AGE_BUCKETS[1:]]
    labels = np.array([name for _, name in AGE_BUCKETS])
    return pd.Series(labels[np.searchsorted(edges, age.to_numpy(), side="right")], index=age.index)


def region(zip_code: pd.Series) -> pd.Series:
    """US zip codes start with a digit naming a region; anything else (Canada, blanks) is 'other'."""
    first = zip_code.astype(str).str[:1]
    return first.where(first.str.isdigit() & (zip_code.astype(str).str.len() == 5), "other")


def user_profile(raw: RawTables, cfg: FeatureJobConfig) -> pd.DataFrame:
    """Profiles land `profile_sync_delay_hours` (exponential) after the user's first event."""
    first = raw.events.groupby("user_id")["timestamp"].min()
    users = raw.users.set_index("user_id").loc[first.index].reset_index()
    frame = pd.DataFrame(
        {
            "user_id": users["user_id"].astype("int64"),
            "age_bucket": age_bucket(users["age"]),
            "gender": users["gender"].astype(str),
            "occupation": users["occupation"].astype(str),
            "region": region(users["zip_code"]),
        }
    )
    return _stamp(frame, first.to_numpy() + _delays(first.index.to_numpy(), cfg.profile_sync_delay_hours, cfg.seed, 1), "user_profile")


def item_metadata(raw: RawTables, cfg: FeatureJobConfig) -> pd.DataFrame:
    """Catalogue rows land `item_ingestion_delay_hours` (exponential) after the item's first event."""
    first = raw.events.groupby("item_id")["timestamp"].min()
    items = raw.items.set_index("item_id").loc[first.index].reset_index()
    frame = pd.DataFrame(
        {
            "item_id": items["item_id"].astype("int64"),
            "item_genres": [list(g) for g in items["genres"]],
            "item_release_year": pd.array(items["release_year"], dtype="Int64"),
        }
    )
    return _stamp(frame, first.to_numpy() + _delays(first.index.to_numpy(), cfg.item_ingestion_delay_hours, cfg.seed, 2), "item_metadata")


def run_days(events: pd.DataFrame) -> np.ndarray:
    """Midnights (unix s) of the daily job runs covering the log: the day after the first event to the day after the last."""
    first_day = int(events["timestamp"].min()) // DAY + 1
    last_day = int(events["timestamp"].max()) // DAY + 1
    return np.arange(first_day, last_day + 1, dtype=np.int64) * DAY


def failed_runs(cutoffs: np.ndarray, job: str, cfg: FeatureJobConfig) -> np.ndarray:
    """Which daily runs failed: seeded by job and date, so a re-run of the pipeline fails the same days."""
    draws = np.array([np.random.default_rng([cfg.seed, zlib.crc32(job.encode()), int(c)]).random() for c in cutoffs])
    return draws < cfg.batch_failure_rate


def _window_sums(entity_index: np.ndarray, day_index: np.ndarray, values: np.ndarray, n_entities: int, n_days: int) -> np.ndarray:
    """cum[e, d] = sum of values of entity e on days < d (shape n_entities x n_days+1)."""
    grid = np.bincount(entity_index * n_days + day_index, weights=values, minlength=n_entities * n_days).reshape(n_entities, n_days)
    cum = np.zeros((n_entities, n_days + 1), dtype=np.float64)
    np.cumsum(grid, axis=1, out=cum[:, 1:])
    return cum


def trailing_aggregates(
    events: pd.DataFrame, key: str, job: str, cfg: FeatureJobConfig, genres: pd.Series | None = None
) -> pd.DataFrame:
    """Daily job output: per entity and successful run, counts over 7/30 days, mean rating over 30 days,
    and (when `genres` maps item_id -> list) the entity's top genres over 30 days."""
    keys, entity_index = np.unique(events[key].to_numpy(), return_inverse=True)
    cutoffs = run_days(events)
    day0 = cutoffs[0] // DAY - 1
    day_index = (events["timestamp"].to_numpy() // DAY - day0).astype(np.int64)
    n_days = int(day_index.max()) + 1
    n = len(keys)
    ones = np.ones(len(events))
    cum_count = _window_sums(entity_index, day_index, ones, n, n_days)
    cum_rating = _window_sums(entity_index, day_index, events["rating"].to_numpy(dtype=np.float64), n, n_days)

    ok = ~failed_runs(cutoffs, job, cfg)
    # Column c of cum holds days < c; the run at cutoff day D (index D - day0) sums days [D-w, D).
    cut_idx = (cutoffs // DAY - day0).astype(np.int64)[ok]
    available = cutoffs[ok] + int(cfg.batch_lag_hours * 3600)

    def window(cum: np.ndarray, days: int) -> np.ndarray:
        return cum[:, cut_idx] - cum[:, np.maximum(cut_idx - days, 0)]

    count_long = window(cum_count, LONG_WINDOW_DAYS)
    entity_pos, run_pos = np.nonzero(count_long > 0)
    count_short = window(cum_count, SHORT_WINDOW_DAYS)[entity_pos, run_pos]
    rating_long = window(cum_rating, LONG_WINDOW_DAYS)[entity_pos, run_pos]
    n_long = count_long[entity_pos, run_pos]
    prefix = "user" if key == "user_id" else "item"
    frame = pd.DataFrame(
        {
            key: keys[entity_pos].astype("int64"),
            f"{prefix}_events_{SHORT_WINDOW_DAYS}d": count_short.astype("int64"),
            f"{prefix}_events_{LONG_WINDOW_DAYS}d": n_long.astype("int64"),
            f"{prefix}_mean_rating_{LONG_WINDOW_DAYS}d": rating_long / n_long,
        }
    )
    if genres is not None:
        frame[f"{prefix}_top_genres_{LONG_WINDOW_DAYS}d"] = _top_genres(
            events, genres, entity_index, day_index, n, n_days, cut_idx, entity_pos, run_pos, cfg.top_genres
        )
    return _stamp(frame, available[run_pos], job)


def _top_genres(
    events: pd.DataFrame,
    genres: pd.Series,
    entity_index: np.ndarray,
    day_index: np.ndarray,
    n: int,
    n_days: int,
    cut_idx: np.ndarray,
    entity_pos: np.ndarray,
    run_pos: np.ndarray,
    k: int,
) -> list[list[str]]:
    """The k most frequent genres of each (entity, run) row over the long window, most frequent first."""
    vocab = sorted({g for gs in genres for g in gs})
    col = {g: j for j, g in enumerate(vocab)}
    item_genre = genres.map(lambda gs: [col[g] for g in gs])
    per_event = item_genre.reindex(events["item_id"].to_numpy())
    ev = np.repeat(np.arange(len(events)), per_event.map(len).to_numpy())
    gen = np.fromiter((g for gs in per_event for g in gs), dtype=np.int64, count=len(ev))
    counts = np.zeros((len(entity_pos), len(vocab)), dtype=np.float32)
    for j in range(len(vocab)):  # one genre at a time keeps memory at entities x days
        sel = ev[gen == j]
        cum = _window_sums(entity_index[sel], day_index[sel], np.ones(len(sel)), n, n_days)
        counts[:, j] = (cum[:, cut_idx] - cum[:, np.maximum(cut_idx - LONG_WINDOW_DAYS, 0)])[entity_pos, run_pos]
    order = np.argsort(-counts, axis=1, kind="stable")[:, :k]  # ties: alphabetical genre order
    return [[vocab[j] for j in row if counts[r, j] > 0] for r, row in enumerate(order)]


def build_feature_tables(raw: RawTables, cfg: FeatureJobConfig) -> dict[str, pd.DataFrame]:
    genres = raw.items.set_index("item_id")["genres"].map(list)
    return {
        "user_profile": user_profile(raw, cfg),
        "user_activity": trailing_aggregates(raw.events, "user_id", "user_activity", cfg, genres=genres),
        "item_metadata": item_metadata(raw, cfg),
        "item_stats": trailing_aggregates(raw.events, "item_id", "item_stats", cfg),
    }


def write_feature_tables(tables: dict[str, pd.DataFrame], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        atomic_write_parquet(frame, out_dir / f"{name}.parquet")


def feature_jobs_step(raw_dir: Path, out_dir: Path, config: dict) -> dict[str, int]:
    """Run the feature jobs over the raw tables in `raw_dir`; returns the row count of each table."""
    tables = build_feature_tables(RawTables.read(raw_dir), FeatureJobConfig.from_dict(config))
    write_feature_tables(tables, out_dir)
    return {name: len(frame) for name, frame in tables.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the batch feature jobs over the raw tables.")
    parser.add_argument("--params", default=None)
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--out", type=Path, default=Path("data/features"))
    args = parser.parse_args(argv)
    from components.data import engine  # the engine choice (pandas here, or Spark) and its check against the Feast config
    from components.data.feature_store import pipeline_feast_config

    params = load_params(args.params)
    chosen = str(section(params, "engine"))
    try:
        rows = engine.feature_jobs_step(chosen, args.raw, args.out, section(params, "feature_jobs"), pipeline_feast_config(params))
    except (FileNotFoundError, KeyError, ValueError) as e:
        raise SystemExit(f"feature jobs: {e}") from None
    finally:
        engine.stop_spark()
    print(f"feature jobs ({chosen}): " + ", ".join(f"{k} {n:,} rows" for k, n in rows.items()) + f" -> {args.out}")


if __name__ == "__main__":
    main()
