"""The dataset a perfectly fresh feature store would have served: the reference of the missingness tax.

The same labelled events and the same time split as the dataset step, with every freshness gap of the
feature jobs closed: profiles and catalogue rows land the moment the user or item first appears (no
sync or ingestion delay), the daily aggregates land at midnight (no batch lag) and no run fails. A TTL
then never expires a value that a run could have refreshed. What stays missing is what no value could
describe yet: a user's or item's activity before its first full day, and aggregates of an entity with
no events in the window (the job writes no row for it, in both datasets alike). Training and testing
the base model on this set, against the natural one, measures what the missing features cost.

    python -m components.data.fresh --raw data/raw --out data/fresh --params params.yaml
"""
from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import pandas as pd

from common.files import staging_dir_for
from common.params import load_params, section
from components.data.contract import DatasetSchema
from components.data.dataset import DatasetConfig, build_dataset, write_dataset
from components.data.feature_jobs import FeatureJobConfig, build_feature_tables, write_feature_tables
from components.data.feature_store import DEFAULT_FS_YAML, apply_definitions, open_store
from components.data.missingness import missingness_report
from components.data.raw import RawTables
from feature_repo.settings import REPO_DIR, FeatureRepoSettings

NO_GAPS = {"profile_sync_delay_hours": 0.0, "item_ingestion_delay_hours": 0.0, "batch_lag_hours": 0.0, "batch_failure_rate": 0.0}


def fresh_feature_config(config: FeatureJobConfig) -> FeatureJobConfig:
    """The feature jobs' settings with every freshness gap closed (windows, genres and seed unchanged)."""
    return scaled_feature_config(config, 0.0)


def scaled_feature_config(config: FeatureJobConfig, scale: float) -> FeatureJobConfig:
    """Every freshness gap (delays, lag, failure rate) times `scale`: 0 is the fresh store, 1 the configured one."""
    if scale < 0:
        raise ValueError(f"a gap scale must be >= 0, got {scale}")
    return replace(config, **{k: getattr(config, k) * scale for k in NO_GAPS})


def build_fresh_dataset(raw: RawTables, feature_jobs: dict, ttl_hours: dict, dataset: dict, work_dir: Path,
                        gap_scale: float = 0.0) -> tuple[dict[str, pd.DataFrame], DatasetSchema]:
    """Feature jobs without gaps (or with them scaled by `gap_scale`) -> `feast apply` and the
    point-in-time join in an embedded store of its own under `work_dir` (never the project's) -> the
    splits, by the same rule as the dataset step."""
    features = Path(work_dir) / "features"
    config = scaled_feature_config(FeatureJobConfig.from_dict(feature_jobs), gap_scale)
    write_feature_tables(build_feature_tables(raw, config), features)
    store = open_store(REPO_DIR, DEFAULT_FS_YAML, work_dir=Path(work_dir) / "feast")
    apply_definitions(store, FeatureRepoSettings(ttl_hours=dict(ttl_hours), features_dir=str(features.resolve())))
    config = DatasetConfig.from_dict(dataset)
    return build_dataset(store, raw, config.label_min_rating, config.split)


def fresh_dataset_step(raw_dir: Path, out_dir: Path, params: dict) -> dict:
    """The step: `out_dir` gets the fresh splits and schema.json (as the dataset step writes them);
    returns the missingness report. Reads the feature_jobs, feature_store.ttl_hours and dataset sections."""
    raw = RawTables.read(Path(raw_dir))
    work = staging_dir_for(Path(out_dir).resolve().with_name(Path(out_dir).name + "-work"))
    try:
        splits, schema = build_fresh_dataset(raw, section(params, "feature_jobs"), section(params, "feature_store", "ttl_hours"),
                                             section(params, "dataset"), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_dataset(splits, schema, Path(out_dir))
    return missingness_report(splits, list(schema.views))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the dataset a perfectly fresh feature store would have served.")
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--out", type=Path, default=Path("data/fresh"))
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        report = fresh_dataset_step(args.raw, args.out, load_params(args.params))
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"fresh dataset: {e}", file=sys.stderr)
        return 2
    for name, info in report.items():
        rates = ", ".join(f"{v} {r:.3f}" for v, r in info["missing_rate"].items())
        print(f"fresh {name}: {info['rows']:,} rows; missing rate {rates}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
