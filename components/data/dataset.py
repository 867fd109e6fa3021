"""Training data by point-in-time join: labelled events + every feature as it was at event time.

Missing values are exactly what TTL, delays, failed runs and cold start leave; each row carries
its missing mask per feature (`missing__<feature>`) and per view (`missing_view__<view>`).
"""
from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from feast import FeatureStore

from components.data.contract import FEATURE_SERVICE, SPLITS, DatasetSchema, schema_from_store, to_training_frame
from components.data.engine import check_engine, spark_session_for, stop_spark
from components.data.feature_store import open_store, pipeline_feast_config
from common.files import atomic_write_json, replace_dir, staging_dir_for
from components.data.missingness import missingness_report, missing_rate_over_time, write_missing_over_time
from common.params import ParamsSection, load_params, section
from components.data.raw import RawTables
from feature_repo.definitions import REQUEST_TIME_FIELD


def labelled_events(events: pd.DataFrame, label_min_rating: float) -> pd.DataFrame:
    """The entity frame: one row per event, ordered by time; the rating itself never leaves this function."""
    ordered = events.sort_values(["timestamp", "user_id", "item_id"], kind="stable").reset_index(drop=True)
    return pd.DataFrame(
        {
            "event_id": np.arange(len(ordered), dtype=np.int64),
            "user_id": ordered["user_id"].astype("int64"),
            "item_id": ordered["item_id"].astype("int64"),
            "event_timestamp": pd.to_datetime(ordered["timestamp"], unit="s", utc=True).dt.as_unit("ns"),
            "label": (ordered["rating"] >= label_min_rating).astype("int64"),
            REQUEST_TIME_FIELD: ordered["timestamp"].astype("int64"),
        }
    )


def point_in_time_join(store: FeatureStore, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Join through the feature service; every event must come back, exactly once."""
    joined = store.get_historical_features(entity_df=entity_df, features=store.get_feature_service(FEATURE_SERVICE)).to_df()
    if len(joined) != len(entity_df) or joined["event_id"].nunique() != len(entity_df):
        raise RuntimeError(
            f"point-in-time join returned {len(joined):,} rows ({joined['event_id'].nunique():,} distinct events) for "
            f"{len(entity_df):,} events; the offline store must keep rows past TTL as nulls (use the duckdb offline store)"
        )
    return joined.sort_values("event_id", kind="stable").reset_index(drop=True)


def split_by_time(frame: pd.DataFrame, fractions: dict[str, float]) -> dict[str, pd.DataFrame]:
    """Oldest events train, newest test; no event of a later split is older than one of an earlier split."""
    missing = [s for s in SPLITS if s not in fractions]
    if missing:
        raise KeyError(f"dataset.split lacks {missing}; give fractions for {list(SPLITS)}")
    total = sum(float(fractions[s]) for s in SPLITS)
    if not np.isclose(total, 1.0) or min(float(fractions[s]) for s in SPLITS) <= 0:
        raise ValueError(f"dataset.split fractions must be positive and sum to 1, got {dict(fractions)}")
    ordered = frame.sort_values(["event_timestamp", "event_id"], kind="stable").reset_index(drop=True)
    n = len(ordered)
    cut1 = int(round(n * float(fractions["train"])))
    cut2 = int(round(n * (float(fractions["train"]) + float(fractions["validation"]))))
    return {
        "train": ordered.iloc[:cut1].reset_index(drop=True),
        "validation": ordered.iloc[cut1:cut2].reset_index(drop=True),
        "test": ordered.iloc[cut2:].reset_index(drop=True),
    }


def build_dataset(
    store: FeatureStore, raw: RawTables, label_min_rating: float, fractions: dict[str, float]
) -> tuple[dict[str, pd.DataFrame], DatasetSchema]:
    """Join, type and split; the contract (views, TTLs, field kinds) is the store's registry."""
    schema = schema_from_store(store)
    joined = point_in_time_join(store, labelled_events(raw.events, label_min_rating))
    return split_by_time(to_training_frame(joined, schema), fractions), schema


def build_dataset_on_spark(
    spark, store: FeatureStore, raw_dir: Path, label_min_rating: float, fractions: dict[str, float], scratch: Path
) -> tuple[dict[str, pd.DataFrame], DatasetSchema]:
    """`build_dataset` with the join on Spark: the events are read and numbered by Spark, the joined
    rows written as Parquet under `scratch` by the executors and read back once for the same typing
    and split as the DuckDB path (the driver holds the dataset from here on, as it does there)."""
    from components.data import spark_join

    schema = schema_from_store(store)
    joined = spark_join.joined_to_parquet(spark, store, raw_dir, label_min_rating, scratch)
    return split_by_time(to_training_frame(joined, schema), fractions), schema


def write_dataset(splits: dict[str, pd.DataFrame], schema: DatasetSchema, out_dir: Path) -> None:
    """All splits and schema.json appear together or not at all."""
    staged = staging_dir_for(out_dir)
    for name, frame in splits.items():
        frame.to_parquet(staged / f"{name}.parquet", index=False)
    atomic_write_json(schema.to_json(), staged / "schema.json")
    replace_dir(staged, out_dir)


@dataclass(frozen=True)
class DatasetConfig(ParamsSection):
    """The params.yaml `dataset:` section."""

    SECTION = "dataset"
    label_min_rating: float  # label = rating >= this
    split: dict  # train / validation / test fractions, by event time


def dataset_step(
    raw_dir: Path,
    registry_dir: Path | None,
    out_dir: Path,
    reports_dir: Path,
    config: dict,
    fs_yaml: str | None = None,
    engine: str = "duckdb",
) -> dict:
    """The dataset stage: join, split, write the dataset and the missingness report and plot.
    `registry_dir`: where a pipeline run's apply step left its registry (None: the config's own);
    the views, their sources and TTLs are read from it. `config` is the `dataset:` section; `engine`
    (duckdb | spark) where the join runs, which the Feast config's offline store must match. Returns
    the missingness report (rows and missing rate per split and view)."""
    cfg = DatasetConfig.from_dict(config)
    check_engine(engine, fs_yaml)
    store = open_store(fs_yaml=fs_yaml, work_dir=registry_dir)
    if engine == "spark":
        spark = spark_session_for(fs_yaml, "asymdiffrec-dataset")  # before Feast's store asks for one
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}-joined-", dir=out_dir.parent) as scratch:
            splits, schema = build_dataset_on_spark(spark, store, raw_dir, cfg.label_min_rating, cfg.split, Path(scratch))
    else:
        splits, schema = build_dataset(store, RawTables.read(raw_dir), cfg.label_min_rating, cfg.split)
    write_dataset(splits, schema, out_dir)
    report = missingness_report(splits, list(schema.views))
    atomic_write_json(report, reports_dir / "missingness.json")
    write_missing_over_time(missing_rate_over_time(splits, list(schema.views)), reports_dir)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the train/validation/test sets by point-in-time join.")
    parser.add_argument("--params", default=None)
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--out", type=Path, default=Path("data/datasets"))
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    params = load_params(args.params)
    try:
        report = dataset_step(
            args.raw, None, args.out, args.reports, section(params, "dataset"), pipeline_feast_config(params), str(section(params, "engine")),
        )
    except (FileNotFoundError, KeyError, ValueError) as e:
        raise SystemExit(f"dataset: {e}") from None
    finally:
        stop_spark()
    for name, info in report.items():
        rates = ", ".join(f"{v} {r:.3f}" for v, r in info["missing_rate"].items())
        print(f"dataset {name}: {info['rows']:,} rows; missing rate {rates}")


if __name__ == "__main__":
    main()
