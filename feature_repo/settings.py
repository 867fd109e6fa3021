"""Where the feature definitions take their knobs: TTLs from params.yaml, data from a folder.

`feast apply` imports the definitions with no arguments, so they read these settings from the
environment: ASYMDIFFREC_PARAMS (default: the project's params.yaml) and
ASYMDIFFREC_FEATURES_DIR (default: ../data/features relative to this repo, or any URI Feast's
file source reads, such as s3://bucket/features on a cluster).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import yaml

REPO_DIR = Path(__file__).resolve().parent
DEFAULT_PARAMS = REPO_DIR.parent / "params.yaml"
DEFAULT_TTL_HOURS = {"user_profile": 87_600, "user_activity": 24, "item_metadata": 87_600, "item_stats": 24}


@dataclass(frozen=True)
class FeatureRepoSettings:
    features_dir: str = "../data/features"
    ttl_hours: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TTL_HOURS))

    def ttl(self, view: str) -> timedelta:
        hours = self.ttl_hours.get(view)
        if hours is None or hours <= 0:
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
        ttl = dict(DEFAULT_TTL_HOURS)
        ttl.update((params.get("feature_store") or {}).get("ttl_hours") or {})
        unknown = set(ttl) - set(DEFAULT_TTL_HOURS)
        if unknown:
            raise ValueError(f"feature_store.ttl_hours names unknown view(s) {sorted(unknown)}; views: {sorted(DEFAULT_TTL_HOURS)}")
        return cls(features_dir=features_dir or os.environ.get("ASYMDIFFREC_FEATURES_DIR", cls.features_dir), ttl_hours=ttl)

    @classmethod
    def from_environment(cls) -> "FeatureRepoSettings":
        path = Path(os.environ.get("ASYMDIFFREC_PARAMS", DEFAULT_PARAMS))
        params = yaml.safe_load(path.read_text()) if path.exists() else {}
        return cls.from_params(params or {})
