"""Read a dataset folder: `train/validation/test.parquet` plus the `schema.json` that lists features."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from common.names import SPLITS


@dataclass
class Dataset:
    """The three time-ordered splits and the dataset's description of its columns."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    features: list[dict[str, str]]
    label: str = "label"
    user_key: str = "user_id"

    def split(self, name: str) -> pd.DataFrame:
        if name not in SPLITS:
            raise ValueError(f"unknown split '{name}'; use one of {SPLITS}")
        return getattr(self, name)


def read_dataset_schema(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "schema.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; a dataset folder needs schema.json beside the split parquet files")
    meta = json.loads(path.read_text())
    if not isinstance(meta.get("features"), list) or not meta["features"]:
        raise ValueError(f"{path} lacks a non-empty 'features' list of {{name, view, kind}}")
    return meta


def load_dataset(folder: str | Path, splits: tuple[str, ...] = SPLITS) -> Dataset:
    """Load the splits of a dataset folder; the frames keep every column, the model reads only features."""
    folder = Path(folder)
    meta = read_dataset_schema(folder)
    frames = {}
    for name in SPLITS:
        path = folder / f"{name}.parquet"
        if name in splits:
            if not path.exists():
                raise FileNotFoundError(f"{path} not found; expected {', '.join(s + '.parquet' for s in SPLITS)} in {folder}")
            frames[name] = pd.read_parquet(path)
        else:
            frames[name] = pd.DataFrame()
    keys = meta.get("keys", [])
    user_key = "user_id" if "user_id" in keys or not keys else keys[1] if len(keys) > 1 else keys[0]
    return Dataset(**frames, features=meta["features"], label=meta.get("label", "label"), user_key=user_key)
