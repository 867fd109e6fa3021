"""Where the feature definitions take their knobs: TTLs from params.yaml, data from a folder.

`feast apply` imports the definitions with no arguments, so they read these settings from the
environment: ASYMDIFFREC_PARAMS (default: the project's params.yaml) and
ASYMDIFFREC_FEATURES_DIR (default: ../data/features relative to this repo, or any URI Feast's
file source reads, such as s3://bucket/features on a cluster).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import yaml

REPO_DIR = Path(__file__).resolve().parent
DEFAULT_PARAMS = REPO_DIR.parent / "params.yaml"


@dataclass(frozen=True)
class FeatureRepoSettings:
    ttl_hours: dict[str, float]  # feature_store.ttl_hours of params.yaml
    features_dir: str = "../data/features"

    def ttl(self, view: str) -> timedelta:
        if view not in self.ttl_hours:
            raise KeyError(f"feature_store.ttl_hours lacks '{view}'; give every feature view a TTL in params.yaml")
        hours = self.ttl_hours[view]
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours <= 0:
            raise ValueError(f"feature_store.ttl_hours.{view} must be a positive number of hours, got {hours!r}")
        ttl = timedelta(hours=float(hours))
        if ttl.days and ttl.seconds:
            # Feast's DuckDB store turns the TTL into one SQL interval, which cannot mix days and seconds.
            raise ValueError(
                f"feature_store.ttl_hours.{view} = {hours}: the DuckDB offline store needs a TTL under 24 hours "
                f"or a whole number of days; use {ttl.days * 24} or {(ttl.days + 1) * 24}"
            )
        return ttl

    def source_path(self, table: str) -> str:
        return f"{self.features_dir.rstrip('/')}/{table}.parquet"

    @classmethod
    def from_params(cls, params: dict, features_dir: str | None = None) -> "FeatureRepoSettings":
        ttl = (params.get("feature_store") or {}).get("ttl_hours")
        if not isinstance(ttl, dict):
            raise KeyError("params.yaml lacks feature_store.ttl_hours, a mapping of feature view -> hours")
        return cls(ttl_hours=dict(ttl), features_dir=features_dir or os.environ.get("ASYMDIFFREC_FEATURES_DIR", cls.features_dir))

    @classmethod
    def from_environment(cls) -> "FeatureRepoSettings":
        path = Path(os.environ.get("ASYMDIFFREC_PARAMS", DEFAULT_PARAMS))
        params = yaml.safe_load(path.read_text()) if path.exists() else {}
        return cls.from_params(params or {})
