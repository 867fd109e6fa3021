"""Small dataset folders that follow the dataset contract, for tests of the validation gate.

The contract is the real one: `schema_from_service` over the feature service of
`feature_repo/definitions.py` with the TTLs of params.yaml, exactly what `feast apply` puts in the
registry. Only the values are made up, by one generator per feature."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from common.params import load_params
from components.data.contract import SCHEMA_FILE, SPLITS, DatasetSchema, schema_from_service, view_ttl_hours
from feature_repo.definitions import Definitions, build_definitions
from feature_repo.settings import FeatureRepoSettings

GENRES = ["Action", "Comedy", "Drama", "Horror", "Sci-Fi"]
Generator = Callable[[np.random.Generator, int, pd.DatetimeIndex], object]
# feature -> values for n events at the given times (before the missing rows are blanked)
GENERATORS: dict[str, Generator] = {
    "age_bucket": lambda rng, n, ts: rng.choice(["18-24", "25-34", "35-44"], n).astype(object),
    "gender": lambda rng, n, ts: rng.choice(["M", "F"], n).astype(object),
    "occupation": lambda rng, n, ts: rng.choice(["writer", "engineer", "student"], n).astype(object),
    "region": lambda rng, n, ts: rng.choice(["0", "5", "other"], n).astype(object),
    "user_events_7d": lambda rng, n, ts: rng.integers(0, 20, n).astype("float64"),
    "user_events_30d": lambda rng, n, ts: rng.integers(20, 80, n).astype("float64"),
    "user_mean_rating_30d": lambda rng, n, ts: rng.uniform(1, 5, n),
    "user_top_genres_30d": lambda rng, n, ts: [list(rng.choice(GENRES, 2, replace=False)) for _ in range(n)],
    "item_genres": lambda rng, n, ts: [list(rng.choice(GENRES, 1 + i % 3, replace=False)) for i in range(n)],
    "item_release_year": lambda rng, n, ts: rng.integers(1950, 2020, n).astype("float64"),
    "item_events_7d": lambda rng, n, ts: rng.integers(0, 30, n).astype("float64"),
    "item_events_30d": lambda rng, n, ts: rng.integers(30, 90, n).astype("float64"),
    "item_mean_rating_30d": lambda rng, n, ts: rng.uniform(1, 5, n),
    "hour_of_day": lambda rng, n, ts: ts.hour.to_numpy().astype("int64"),
    "weekday": lambda rng, n, ts: ts.weekday.to_numpy().astype("int64"),
}


@lru_cache(maxsize=1)
def definitions() -> Definitions:
    """The project's Feast objects with the TTLs of params.yaml (the features folder is never read)."""
    return build_definitions(FeatureRepoSettings.from_params(load_params(), features_dir="data/features"))


def contract() -> DatasetSchema:
    """The dataset contract the gate expects: the feature service, as the registry would hold it."""
    defs = definitions()
    return schema_from_service(defs.service, view_ttl_hours(defs.batch_views))


def schema_dict() -> dict:
    """schema.json of a contract-following dataset (a fresh copy, free to corrupt)."""
    return json.loads(json.dumps(contract().to_json()))


def make_split(n: int, first_event_id: int, seed: int) -> pd.DataFrame:
    """`n` events with every view missing on a seeded fraction of rows (never request-time views)."""
    schema = contract()
    rng = np.random.default_rng(seed)
    event_ts = pd.DatetimeIndex(pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 90 * 86_400, n), unit="s"))
    columns: dict[str, object] = {
        "event_id": np.arange(first_event_id, first_event_id + n, dtype="int64"),
        "user_id": rng.integers(1, 50, n).astype("int64"),
        "item_id": rng.integers(1, 80, n).astype("int64"),
        "event_timestamp": event_ts.as_unit("ns"),
        "label": rng.integers(0, 2, n).astype("int64"),
    }
    for f in schema.features:
        if f.name not in GENERATORS:
            raise KeyError(f"tests/_frames.py has no generator for feature {f.name!r} of the feature service; add one to GENERATORS")
        columns[f.name] = GENERATORS[f.name](rng, n, event_ts)
    frame = pd.DataFrame(columns)
    for view, ts_column in schema.ts_columns.items():
        missing = np.arange(n) % 5 == (len(view) % 5)  # 20% of rows, a different slice per view
        frame[ts_column] = frame["event_timestamp"] - pd.to_timedelta(rng.integers(0, 7 * 86_400, n), unit="s")
        frame.loc[missing, ts_column] = pd.NaT
        for f in schema.views[view]["features"]:
            if frame[f].dtype != object:
                frame[f] = frame[f].astype("float64")
            frame.loc[missing, f] = None if frame[f].dtype == object else np.nan
    for f in schema.features:
        frame[schema.feature_mask(f.name)] = frame[f.name].isna().astype("int8")
    for view, info in schema.views.items():
        frame[schema.view_mask(view)] = frame[[schema.feature_mask(f) for f in info["features"]]].all(axis=1).astype("int8")
    return frame


def make_splits(sizes: tuple[int, int, int] = (60, 20, 20), seed: int = 7) -> dict[str, pd.DataFrame]:
    out, first = {}, 1
    for i, (name, n) in enumerate(zip(SPLITS, sizes)):
        out[name] = make_split(n, first, seed + i)
        first += n
    return out


def write_dataset(
    folder: Path, splits: dict[str, pd.DataFrame] | None = None, schema: dict | None = None, extra: dict[str, str] | None = None
) -> Path:
    """The dataset folder (contract files, plus `extra` name -> text files if given)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (splits or make_splits()).items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    (folder / SCHEMA_FILE).write_text(json.dumps(schema or schema_dict(), indent=2))
    for name, text in (extra or {}).items():
        (folder / name).write_text(text)
    return folder


def read_splits(folder: Path) -> dict[str, pd.DataFrame]:
    return {s: pd.read_parquet(folder / f"{s}.parquet") for s in SPLITS}
