"""Feast steps: apply the definitions (registry) and materialize into the online store."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
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

from common.params import load_params, section
from feature_repo.definitions import Definitions, build_definitions
from feature_repo.settings import REPO_DIR, FeatureRepoSettings

DEFAULT_FS_YAML = "feature_store.yaml"


ONLINE_REGISTRY = "online_registry"


def open_store(
    repo_dir: Path = REPO_DIR, fs_yaml: str | None = None, registry: str | None = None, work_dir: Path | None = None
) -> FeatureStore:
    """The project's store. FEAST_FS_YAML (or `fs_yaml`) picks another config in the repo, e.g. Redis.

    `registry="online_registry"` opens the copy of the registry that materialization writes to
    (the config's `online_registry:` key): materializing records its intervals in the registry, and
    writing them into the applied registry would make the apply step's output change after the fact.

    `work_dir` moves the config's local files (registry, online registry, SQLite file) under one
    folder, so a pipeline step keeps its store inside its own artefact instead of the repo's data/.
    """
    path, raw = read_feast_config(repo_dir, fs_yaml)
    if work_dir is not None:
        raw = relocate_local_files(raw, Path(work_dir))
    online_registry = raw.pop(ONLINE_REGISTRY, None)
    if registry == ONLINE_REGISTRY:
        if online_registry is None:
            raise KeyError(f"{path} lacks '{ONLINE_REGISTRY}:', the registry path materialization writes to")
        raw["registry"] = online_registry
    config = RepoConfig(repo_path=repo_dir, **raw)
    if not is_uri(config.registry.path):  # a local file: Feast creates the file, not its folders
        (repo_dir / config.registry.path).parent.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(repo_dir), config=config)


def read_feast_config(repo_dir: Path = REPO_DIR, fs_yaml: str | None = None) -> tuple[Path, dict]:
    """The Feast config `fs_yaml` (else FEAST_FS_YAML, else the default) as written, environment
    variables expanded, without opening a store."""
    name = fs_yaml or os.environ.get("FEAST_FS_YAML", DEFAULT_FS_YAML)
    path = Path(name) if Path(name).is_absolute() else Path(repo_dir) / name
    if not path.exists():
        raise FileNotFoundError(f"Feast config {path} not found; choose one of {sorted(p.name for p in Path(repo_dir).glob('feature_store*.yaml'))}")
    return path, yaml.safe_load(os.path.expandvars(path.read_text())) or {}


def is_uri(location: str) -> bool:
    """s3://, gs://, ... : object storage that Feast reaches itself, not a file on this machine."""
    return "://" in location


def relocate_local_files(raw: dict, work_dir: Path) -> dict:
    """The config with its local files under `work_dir`; URIs and network stores (Redis) stay as configured."""
    raw = dict(raw)
    places = {"registry": work_dir / "registry.db", ONLINE_REGISTRY: work_dir / "online" / "registry.db"}
    for key, place in places.items():
        value = raw.get(key)
        location = value.get("path") if isinstance(value, dict) else value
        if location is not None and not is_uri(str(location)):
            raw[key] = {**value, "path": str(place)} if isinstance(value, dict) else str(place)
    online = raw.get("online_store")
    if isinstance(online, dict) and online.get("type", "sqlite") == "sqlite":
        raw["online_store"] = {**online, "path": str(work_dir / "online" / "online_store.db")}
    return raw


def registry_path(store: FeatureStore) -> Path:
    registry = store.config.registry.path
    return Path(registry) if Path(registry).is_absolute() else Path(store.config.repo_path) / registry


def apply_definitions(store: FeatureStore, settings: FeatureRepoSettings) -> Definitions:
    """Apply the project's definitions; a Spark offline store gets them on `SparkSource`s, the only
    sources its join reads (feature_repo/spark_definitions.py)."""
    if store.config.offline_store.type == "spark":
        from feature_repo.spark_definitions import build_spark_definitions

        definitions = build_spark_definitions(settings)
    else:
        definitions = build_definitions(settings)
    store.apply(definitions.objects())
    return definitions


def applied_objects(store: FeatureStore) -> list:
    """Everything `feast apply` put in the store's registry, as Feast objects."""
    return [
        *store.list_entities(), *store.list_data_sources(), *store.list_feature_views(),
        *store.list_on_demand_feature_views(), *store.list_feature_services(),
    ]


def prepare_online_store(repo_dir: Path = REPO_DIR, fs_yaml: str | None = None, work_dir: Path | None = None) -> FeatureStore:
    """The store materialization writes through: its own copy of the applied registry, and the
    online tables created for what that registry holds (the online folder is a fresh output on every
    run). A config whose online registry is the applied registry itself (a shared one in object
    storage) skips the copy. Views, sources and TTLs come from the applied registry alone."""
    store = open_store(repo_dir, fs_yaml, registry=ONLINE_REGISTRY, work_dir=work_dir)
    applied_store = open_store(repo_dir, fs_yaml, work_dir=work_dir)
    if store.config.registry.path != applied_store.config.registry.path:
        applied = registry_path(applied_store)
        if not applied.exists():
            raise FileNotFoundError(f"no applied registry at {applied}; run the apply step first (dvc repro feast_apply)")
        shutil.copyfile(applied, registry_path(store))
    store.apply(applied_objects(store))  # creates the online tables of the applied views
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


def apply_step(features_dir: str, registry_dir: Path | None, ttl_hours: dict[str, float], fs_yaml: str | None = None) -> Definitions:
    """`feast apply` for one pipeline run: the only step that reads the TTLs and the features folder;
    every later step reads them from the registry it writes. A local registry goes to `registry_dir`
    (None: where the config points; a remote one stays there, e.g. object storage)."""
    settings = FeatureRepoSettings(ttl_hours=dict(ttl_hours), features_dir=str(features_dir))
    return apply_definitions(open_store(fs_yaml=fs_yaml, work_dir=registry_dir), settings)


def materialize_all(store: FeatureStore, features_dir: Path, end: datetime | None = None) -> tuple[datetime, datetime]:
    """Materialize every feature row from the oldest up to `end` (default: the newest)."""
    start, newest = feature_time_range(Path(features_dir))
    end = end or newest
    materialize(store, start - timedelta(seconds=1), end + timedelta(seconds=1))
    return start, end


def materialize_step(
    features_dir: Path, registry_dir: Path | None, online_dir: Path | None, fs_yaml: str | None = None, end: datetime | None = None
) -> tuple[datetime, datetime]:
    """Materialize one run's feature tables into the online store (SQLite under `online_dir`, or the
    configured Redis), from the registry the apply step left in `registry_dir` (None for either: where
    the config points). `features_dir` only bounds the time window; what is loaded is what the
    registry's sources name. Returns the window."""
    if registry_dir is not None and registry_dir != online_dir:
        applied = open_store(fs_yaml=fs_yaml, work_dir=registry_dir)
        if not is_uri(applied.config.registry.path):  # a local registry: carry the applied one over, never write into it
            target = registry_path(open_store(fs_yaml=fs_yaml, work_dir=online_dir))
            shutil.copyfile(registry_path(applied), target)
    store = prepare_online_store(fs_yaml=fs_yaml, work_dir=online_dir)
    return materialize_all(store, Path(features_dir), end)


def pipeline_feast_config(params: dict) -> str:
    """The Feast config a pipeline run uses: `feature_store.config` of params.yaml, which DVC tracks.
    FEAST_FS_YAML picks the service's config; a pipeline step refuses one that disagrees with
    params.yaml rather than silently writing a store DVC does not know about."""
    config = str(section(params, "feature_store", "config"))
    env = os.environ.get("FEAST_FS_YAML")
    if env and Path(env).name != Path(config).name:
        raise ValueError(
            f"FEAST_FS_YAML={env} but params.yaml has feature_store.config: {config}; the pipeline reads the "
            f"config from params.yaml (so DVC re-runs what it changes): set it there, e.g. "
            f"`dvc exp run -S feature_store.config={Path(env).name}`, and unset FEAST_FS_YAML"
        )
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Feast apply / materialize for the project's feature repo.")
    parser.add_argument("action", choices=["apply", "materialize"])
    parser.add_argument("--params", default=None)
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--end", default=None, help="materialize up to this ISO time (default: the newest feature row)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    try:
        fs_yaml = pipeline_feast_config(params)
        if args.action == "apply":
            defs = apply_step(str(args.features.resolve()), None, section(params, "feature_store", "ttl_hours"), fs_yaml)
            message = f"feast apply ({fs_yaml}): {len(defs.batch_views)} feature views + request_context, feature service {defs.service.name}"
        else:
            end = pd.Timestamp(args.end, tz="UTC").to_pydatetime() if args.end else None
            start, end = materialize_step(args.features, None, None, fs_yaml, end)
            message = f"feast materialize ({fs_yaml}): {start.isoformat()} .. {end.isoformat()}"
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"feature_store: {e}", file=sys.stderr)
        return 2
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
