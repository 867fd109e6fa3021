"""Feast steps: apply the definitions (registry) and materialize into the online store."""
from __future__ import annotations

import argparse
import os
import shutil
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import yaml
from feast import FeatureStore, RepoConfig

# Library noise on every step's console, not ours to fix: ibis' deprecation notices inside Feast's
# DuckDB store, and Feast's reminder that on-demand views are experimental. Installed after
# importing feast, whose modules put their own warning filters first.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ibis(\.|$)")
warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")

from components.params import load_params
from feature_repo.definitions import Definitions, build_definitions
from feature_repo.settings import REPO_DIR, FeatureRepoSettings

DEFAULT_FS_YAML = "feature_store.yaml"


ONLINE_REGISTRY = "online_registry"


def open_store(repo_dir: Path = REPO_DIR, fs_yaml: str | None = None, registry: str | None = None) -> FeatureStore:
    """The project's store. FEAST_FS_YAML (or `fs_yaml`) picks another config in the repo, e.g. Redis.

    `registry="online_registry"` opens the copy of the registry that materialization writes to
    (the config's `online_registry:` key): materializing records its intervals in the registry, and
    writing them into the applied registry would make the apply step's output change after the fact.
    """
    name = fs_yaml or os.environ.get("FEAST_FS_YAML", DEFAULT_FS_YAML)
    path = Path(name) if Path(name).is_absolute() else repo_dir / name
    if not path.exists():
        raise FileNotFoundError(f"Feast config {path} not found; choose one of {sorted(p.name for p in repo_dir.glob('feature_store*.yaml'))}")
    raw = yaml.safe_load(os.path.expandvars(path.read_text()))
    online_registry = raw.pop(ONLINE_REGISTRY, None)
    if registry == ONLINE_REGISTRY:
        if online_registry is None:
            raise KeyError(f"{path} lacks '{ONLINE_REGISTRY}:', the registry path materialization writes to")
        raw["registry"] = online_registry
    config = RepoConfig(repo_path=repo_dir, **raw)
    if "://" not in config.registry.path:  # a local file: Feast creates the file, not its folders
        (repo_dir / config.registry.path).parent.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(repo_dir), config=config)


def registry_path(store: FeatureStore) -> Path:
    registry = store.config.registry.path
    return Path(registry) if Path(registry).is_absolute() else Path(store.config.repo_path) / registry


def apply_definitions(store: FeatureStore, settings: FeatureRepoSettings) -> Definitions:
    definitions = build_definitions(settings)
    store.apply(definitions.objects())
    return definitions


def prepare_online_store(settings: FeatureRepoSettings, repo_dir: Path = REPO_DIR, fs_yaml: str | None = None) -> FeatureStore:
    """The store materialization writes through: its own copy of the applied registry, and the
    online tables created for it (the online folder is a fresh output on every run)."""
    store = open_store(repo_dir, fs_yaml, registry=ONLINE_REGISTRY)
    applied = registry_path(open_store(repo_dir, fs_yaml))
    if not applied.exists():
        raise FileNotFoundError(f"no applied registry at {applied}; run the apply step first (dvc repro feast_apply)")
    shutil.copyfile(applied, registry_path(store))
    apply_definitions(store, settings)
    return store


def feature_time_range(features_dir: Path) -> tuple[datetime, datetime]:
    """Earliest and latest availability time across the feature tables."""
    stamps = [pd.read_parquet(p, columns=["event_timestamp"])["event_timestamp"] for p in sorted(features_dir.glob("*.parquet"))]
    if not stamps:
        raise FileNotFoundError(f"no feature tables in {features_dir}; run the feature jobs first (dvc repro features)")
    allstamps = pd.concat(stamps)
    return allstamps.min().to_pydatetime(), allstamps.max().to_pydatetime()


def materialize(store: FeatureStore, start: datetime, end: datetime) -> None:
    """Load the latest value per entity within [start, end] into the online store.
    A fixed window (not materialize_incremental) so a first run loads every view."""
    store.materialize(start_date=start, end_date=end)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Feast apply / materialize for the project's feature repo.")
    parser.add_argument("action", choices=["apply", "materialize"])
    parser.add_argument("--params", default=None)
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--end", default=None, help="materialize up to this ISO time (default: the newest feature row)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    settings = FeatureRepoSettings.from_params(params, features_dir=str(args.features.resolve()))
    if args.action == "apply":
        defs = apply_definitions(open_store(), settings)
        message = f"feast apply: {len(defs.batch_views)} feature views + request_context, feature service asymdiffrec_v1"
    else:
        store = prepare_online_store(settings)
        start, end = feature_time_range(args.features)
        if args.end:
            end = pd.Timestamp(args.end, tz="UTC").to_pydatetime()
        materialize(store, start - timedelta(seconds=1), end + timedelta(seconds=1))
        message = f"feast materialize: {start.isoformat()} .. {end.isoformat()}"
    print(message)


if __name__ == "__main__":
    main()
