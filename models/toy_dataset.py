"""A small synthetic dataset in the feature store's dataset format, for tests and quick reports.

Clicks depend on a hidden user quality and item quality. Each is measured sharply by one
aggregate feature (user_mean_rating_30d, item_mean_rating_30d) and loosely by profile and
metadata fields (age bucket, occupation, genres). When the aggregate view goes stale and is
missing, the loose fields still predict what it would have said - the case AsymDiffRec is for.
Missingness comes by whole feature views, with separate rates for the test split so a test can
make missing features more common at evaluation than in training.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from models.data import Dataset

VIEWS: dict[str, list[tuple[str, str]]] = {
    "user_profile": [("age_bucket", "categorical"), ("gender", "categorical"), ("occupation", "categorical"), ("region", "categorical")],
    "user_activity": [
        ("user_events_7d", "numeric"), ("user_events_30d", "numeric"), ("user_mean_rating_30d", "numeric"),
        ("user_top_genres_30d", "multi"),
    ],
    "item_metadata": [("item_genres", "multi"), ("item_release_year", "numeric")],
    "item_stats": [("item_events_7d", "numeric"), ("item_events_30d", "numeric"), ("item_mean_rating_30d", "numeric")],
    "request_context": [("hour_of_day", "categorical"), ("weekday", "categorical")],
}
TTL_HOURS = {"user_profile": 87600, "user_activity": 72, "item_metadata": 87600, "item_stats": 72, "request_context": 0}
GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "War"]
AGES = ["<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"]
OCCUPATIONS = ["student", "engineer", "artist", "doctor", "writer", "retired", "other", "lawyer"]
DEFAULT_MISSING = {"user_profile": 0.05, "user_activity": 0.1, "item_metadata": 0.02, "item_stats": 0.1, "request_context": 0.0}


def _quantile_bucket(x: np.ndarray, n: int) -> np.ndarray:
    return np.searchsorted(np.quantile(x, np.linspace(0, 1, n + 1)[1:-1]), x)


def features_list() -> list[dict[str, str]]:
    return [{"name": name, "view": view, "kind": kind} for view, fields in VIEWS.items() for name, kind in fields]


def make_synthetic_dataset(
    n_events: int = 6000,
    n_users: int = 300,
    n_items: int = 200,
    seed: int = 0,
    missing: dict[str, float] | None = None,
    test_missing: dict[str, float] | None = None,
    split: tuple[float, float] = (0.7, 0.15),
) -> Dataset:
    """Time-ordered train/validation/test frames with the dataset contract's columns."""
    rng = np.random.default_rng(seed)
    missing = {**DEFAULT_MISSING, **(missing or {})}
    test_missing = {**missing, **(test_missing or {})}

    user_q = rng.normal(0, 1, n_users)
    item_q = rng.normal(0, 1, n_items)
    user_taste = rng.integers(0, len(GENRES), n_users)
    item_main = (_quantile_bucket(item_q + rng.normal(0, 0.6, n_items), len(GENRES)) + 0) % len(GENRES)
    item_extra = rng.integers(0, len(GENRES), n_items)
    age_of = _quantile_bucket(user_q + rng.normal(0, 0.6, n_users), len(AGES))
    occ_of = _quantile_bucket(user_q + rng.normal(0, 0.6, n_users), len(OCCUPATIONS))
    gender_of = rng.choice(["M", "F"], n_users)
    region_of = rng.choice(["north", "south", "east", "west", "centre"], n_users)
    year_of = rng.integers(1960, 2024, n_items).astype(np.float64)

    u = rng.integers(0, n_users, n_events)
    i = rng.integers(0, n_items, n_events)
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    ts = t0 + pd.to_timedelta(np.sort(rng.uniform(0, 30 * 86400, n_events)), unit="s")
    taste_match = (item_main[i] == user_taste[u]) | (item_extra[i] == user_taste[u])
    logit = 1.6 * user_q[u] + 1.2 * item_q[i] + 0.6 * taste_match - 0.3 + rng.logistic(0, 0.6, n_events) * 0.5
    label = (logit > 0).astype(np.int64)

    frame = pd.DataFrame(
        {
            "event_id": np.arange(n_events, dtype=np.int64),
            "user_id": (u + 1).astype(np.int64),
            "item_id": (i + 1).astype(np.int64),
            "event_timestamp": ts,
            "label": label,
            "age_bucket": np.asarray(AGES, dtype=object)[age_of[u]],
            "gender": gender_of[u].astype(object),
            "occupation": np.asarray(OCCUPATIONS, dtype=object)[occ_of[u]],
            "region": region_of[u].astype(object),
            "user_events_7d": rng.poisson(5, n_events).astype(np.float64),
            "user_events_30d": rng.poisson(20, n_events).astype(np.float64),
            "user_mean_rating_30d": 3.5 + 0.6 * user_q[u] + rng.normal(0, 0.15, n_events),
            "user_top_genres_30d": [[GENRES[g], GENRES[(g + 1) % len(GENRES)]] for g in user_taste[u]],
            "item_genres": [sorted({GENRES[a], GENRES[b]}) for a, b in zip(item_main[i], item_extra[i])],
            "item_release_year": year_of[i],
            "item_events_7d": rng.poisson(8, n_events).astype(np.float64),
            "item_events_30d": rng.poisson(30, n_events).astype(np.float64),
            "item_mean_rating_30d": 3.5 + 0.6 * item_q[i] + rng.normal(0, 0.15, n_events),
            "hour_of_day": ts.hour.to_numpy().astype(np.int64),
            "weekday": ts.weekday.to_numpy().astype(np.int64),
        }
    )
    n_train = int(split[0] * n_events)
    n_valid = int(split[1] * n_events)
    is_test = np.arange(n_events) >= n_train + n_valid
    for view, fields in VIEWS.items():
        rate = np.where(is_test, test_missing[view], missing[view])
        gone = rng.random(n_events) < rate
        for name, kind in fields:
            frame[name] = frame[name].astype(object) if kind != "numeric" else frame[name]
            if kind == "numeric":
                frame.loc[gone, name] = np.nan
            else:
                frame.loc[gone, name] = None
            frame[f"missing__{name}"] = gone.astype(np.int8)
        frame[f"missing_view__{view}"] = gone.astype(np.int8)
        frame[f"{view}_ts"] = (ts - pd.Timedelta(hours=1)).where(~gone, pd.NaT)
    for name in ("hour_of_day", "weekday"):
        frame[name] = frame[name].astype(np.int64)
    train = frame.iloc[:n_train].reset_index(drop=True)
    valid = frame.iloc[n_train : n_train + n_valid].reset_index(drop=True)
    test = frame.iloc[n_train + n_valid :].reset_index(drop=True)
    return Dataset(train, valid, test, features_list())


def write_synthetic_dataset(folder: str | Path, **kwargs) -> Path:
    """Write train/validation/test.parquet and schema.json, as the feature store's dataset step does."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = make_synthetic_dataset(**kwargs)
    for name in ("train", "validation", "test"):
        data.split(name).to_parquet(folder / f"{name}.parquet", index=False)
    views = {v: {"ttl_hours": TTL_HOURS[v], "features": [n for n, _ in f]} for v, f in VIEWS.items()}
    meta = {"keys": ["event_id", "user_id", "item_id"], "timestamp": "event_timestamp", "label": "label",
            "features": data.features, "views": views}
    (folder / "schema.json").write_text(json.dumps(meta, indent=2))
    return folder
