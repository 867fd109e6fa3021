"""A small dataset folder that follows the dataset contract, for tests of the validation gate."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

VIEWS = {
    "user_profile": ["age_bucket", "gender", "occupation", "region"],
    "user_activity": ["user_events_7d", "user_events_30d", "user_mean_rating_30d", "user_top_genres_30d"],
    "item_metadata": ["item_genres", "item_release_year"],
    "item_stats": ["item_events_7d", "item_events_30d", "item_mean_rating_30d"],
    "request_context": ["hour_of_day", "weekday"],
}
KINDS = {
    "age_bucket": ("categorical", "string"),
    "gender": ("categorical", "string"),
    "occupation": ("categorical", "string"),
    "region": ("categorical", "string"),
    "user_events_7d": ("numeric", "float64"),
    "user_events_30d": ("numeric", "float64"),
    "user_mean_rating_30d": ("numeric", "float64"),
    "user_top_genres_30d": ("multi_categorical", "list<string>"),
    "item_genres": ("multi_categorical", "list<string>"),
    "item_release_year": ("numeric", "float64"),
    "item_events_7d": ("numeric", "float64"),
    "item_events_30d": ("numeric", "float64"),
    "item_mean_rating_30d": ("numeric", "float64"),
    "hour_of_day": ("categorical", "int64"),
    "weekday": ("categorical", "int64"),
}
GENRES = ["Action", "Comedy", "Drama", "Horror", "Sci-Fi"]


def schema_dict() -> dict:
    return {
        "keys": ["event_id", "user_id", "item_id"],
        "timestamp": "event_timestamp",
        "label": "label",
        "features": [
            {"name": f, "view": v, "kind": KINDS[f][0], "dtype": KINDS[f][1]} for v, fs in VIEWS.items() for f in fs
        ],
        "views": {
            v: {
                "ttl_hours": None if v == "request_context" else 87600,
                "features": fs,
                "timestamp_column": None if v == "request_context" else f"{v}_ts",
            }
            for v, fs in VIEWS.items()
        },
    }


def make_split(n: int, first_event_id: int, seed: int) -> pd.DataFrame:
    """`n` events with every view missing on a seeded fraction of rows (never request_context)."""
    rng = np.random.default_rng(seed)
    event_ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 90 * 86_400, n), unit="s")
    frame = pd.DataFrame(
        {
            "event_id": np.arange(first_event_id, first_event_id + n, dtype="int64"),
            "user_id": rng.integers(1, 50, n).astype("int64"),
            "item_id": rng.integers(1, 80, n).astype("int64"),
            "event_timestamp": pd.DatetimeIndex(event_ts).as_unit("ns"),
            "label": rng.integers(0, 2, n).astype("int64"),
            "age_bucket": rng.choice(["18-24", "25-34", "35-44"], n).astype(object),
            "gender": rng.choice(["M", "F"], n).astype(object),
            "occupation": rng.choice(["writer", "engineer", "student"], n).astype(object),
            "region": rng.choice(["0", "5", "other"], n).astype(object),
            "user_events_7d": rng.integers(0, 20, n).astype("float64"),
            "user_events_30d": rng.integers(20, 80, n).astype("float64"),
            "user_mean_rating_30d": rng.uniform(1, 5, n),
            "user_top_genres_30d": [list(rng.choice(GENRES, 2, replace=False)) for _ in range(n)],
            "item_genres": [list(rng.choice(GENRES, 1 + i % 3, replace=False)) for i in range(n)],
            "item_release_year": rng.integers(1950, 2020, n).astype("float64"),
            "item_events_7d": rng.integers(0, 30, n).astype("float64"),
            "item_events_30d": rng.integers(30, 90, n).astype("float64"),
            "item_mean_rating_30d": rng.uniform(1, 5, n),
            "hour_of_day": pd.DatetimeIndex(event_ts).hour.to_numpy().astype("int64"),
            "weekday": pd.DatetimeIndex(event_ts).weekday.to_numpy().astype("int64"),
        }
    )
    for view, features in VIEWS.items():
        if view == "request_context":
            missing = np.zeros(n, dtype=bool)
        else:
            missing = np.arange(n) % 5 == (len(view) % 5)  # 20% of rows, a different slice per view
            frame[f"{view}_ts"] = frame["event_timestamp"] - pd.to_timedelta(rng.integers(0, 7 * 86_400, n), unit="s")
            frame.loc[missing, f"{view}_ts"] = pd.NaT
            for f in features:
                frame[f] = frame[f].astype(object) if frame[f].dtype == object else frame[f]
                frame.loc[missing, f] = None if frame[f].dtype == object else np.nan
        frame[f"missing_view__{view}"] = missing.astype("int8")
        for f in features:
            frame[f"missing__{f}"] = missing.astype("int8")
    return frame


def make_splits(sizes: tuple[int, int, int] = (60, 20, 20), seed: int = 7) -> dict[str, pd.DataFrame]:
    out, first = {}, 1
    for i, (name, n) in enumerate(zip(("train", "validation", "test"), sizes)):
        out[name] = make_split(n, first, seed + i)
        first += n
    return out


def write_dataset(folder: Path, splits: dict[str, pd.DataFrame] | None = None, schema: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (splits or make_splits()).items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    (folder / "schema.json").write_text(json.dumps(schema or schema_dict(), indent=2))
    return folder


def read_splits(folder: Path) -> dict[str, pd.DataFrame]:
    return {s: pd.read_parquet(folder / f"{s}.parquet") for s in ("train", "validation", "test")}
