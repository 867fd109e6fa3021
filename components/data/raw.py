"""Raw interaction log, user and item tables: the one schema every source produces.

Both MovieLens-100K and the synthetic generator return a :class:`RawTables`, so every
later step (feature jobs, the point-in-time join) is blind to where the events came from.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common.files import atomic_write_parquet

EVENT_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
USER_COLUMNS = ["user_id", "age", "gender", "occupation", "zip_code"]
ITEM_COLUMNS = ["item_id", "title", "release_year", "genres"]


@dataclass
class RawTables:
    """events: one row per rating (timestamp in unix seconds); users and items: static attributes."""

    events: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame

    def check(self) -> "RawTables":
        """Fail early, naming the table and column, if a source broke the schema."""
        for name, frame, cols in (
            ("events", self.events, EVENT_COLUMNS),
            ("users", self.users, USER_COLUMNS),
            ("items", self.items, ITEM_COLUMNS),
        ):
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise ValueError(f"raw table '{name}' lacks column(s) {missing}; expected {cols}")
        if self.events[["user_id", "item_id", "timestamp"]].isna().any().any():
            raise ValueError("raw table 'events' has null user_id, item_id or timestamp; drop those rows at the source")
        for key, name, table in (("user_id", "users", self.users), ("item_id", "items", self.items)):
            unknown = sorted(int(k) for k in set(self.events[key].unique()) - set(table[key]))
            if unknown:
                raise ValueError(
                    f"raw table 'events' names {len(unknown)} {key}(s) absent from '{name}' (e.g. {unknown[:5]}); "
                    f"every event's {key} needs a row there"
                )
        return self

    def write(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("events", "users", "items"):
            atomic_write_parquet(getattr(self, name), out_dir / f"{name}.parquet")

    @classmethod
    def read(cls, in_dir: Path) -> "RawTables":
        paths = {name: in_dir / f"{name}.parquet" for name in ("events", "users", "items")}
        for name, path in paths.items():
            if not path.exists():
                raise FileNotFoundError(f"raw table '{name}' not found at {path}; run the ingest stage first (dvc repro ingest)")
        return cls(**{name: pd.read_parquet(path) for name, path in paths.items()}).check()
