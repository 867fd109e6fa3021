"""Spark fixtures: one local Spark session (local[2], bound to 127.0.0.1) for every Spark test, and a
small synthetic log run through both engines' feature jobs.

Spark needs Java. In CI (.ci/run installs it) a missing Java fails these tests with the fix in the
message; set ASYMDIFFREC_SKIP_SPARK=1 to skip them on a machine without one on purpose.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.data.feature_jobs import FeatureJobConfig, build_feature_tables, write_feature_tables
from components.data.raw import RawTables
from components.data.synthetic_log import SyntheticConfig, generate

SKIP_ENV = "ASYMDIFFREC_SKIP_SPARK"


def spark_unavailable() -> str | None:
    """Why Spark cannot start here, or None."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install -c constraints.txt -e '.[dev]')"
    home = os.environ.get("JAVA_HOME")
    if not (shutil.which("java") or (home and Path(home, "bin", "java").exists())):
        return "Spark needs Java and none was found (apt-get install -y --no-install-recommends openjdk-17-jre-headless)"
    return None


@pytest.fixture(scope="session")
def spark():
    """The one Spark session of the test run (about 15-20 s to start), stopped at the end."""
    problem = spark_unavailable()
    if problem:
        if os.environ.get(SKIP_ENV) == "1":
            pytest.skip(f"{problem}; skipped because {SKIP_ENV}=1")
        pytest.fail(f"{problem}. Install it (.ci/run does), or set {SKIP_ENV}=1 to skip the Spark tests on purpose", pytrace=False)
    from components.data.spark_session import local_session

    session = local_session("local[2]", app_name="asymdiffrec-tests")
    yield session
    session.stop()


def small_log(project_params: dict) -> RawTables:
    """A synthetic log with the awkward rows MovieLens has and the generator lacks: a non-US zip code,
    a missing zip, an item without genres, an item without a release year."""
    cfg = SyntheticConfig.from_dict(
        project_params["ingest"]["synthetic"], n_events=12_000, n_users=400, n_items=250, days=45, seed=11
    )
    raw = generate(cfg)
    users, items = raw.users.copy(), raw.items.copy()
    users["zip_code"] = users["zip_code"].astype(object)
    users.loc[0, "zip_code"] = "K1A0B"
    users.loc[1, "zip_code"] = None
    users.loc[2, "age"] = 17
    items.at[0, "genres"] = []
    items["release_year"] = items["release_year"].astype("Int64")
    items.loc[1, "release_year"] = pd.NA
    return RawTables(raw.events, users, items).check()


@dataclass
class EngineRun:
    """The same raw log through the pandas jobs and the Spark jobs, written as each engine writes."""

    root: Path
    raw: RawTables
    cfg: FeatureJobConfig
    pandas_tables: dict[str, pd.DataFrame]
    pandas_dir: Path
    spark_dir: Path


@pytest.fixture(scope="session")
def engine_run(spark, tmp_path_factory, project_params) -> EngineRun:
    from components.data.spark_jobs import feature_jobs_step

    root = tmp_path_factory.mktemp("spark_engine")
    raw = small_log(project_params)
    raw.write(root / "raw")
    # Failures and lags strong enough that every branch shows up in 45 days.
    config = {**project_params["feature_jobs"], "batch_failure_rate": 0.25}
    cfg = FeatureJobConfig.from_dict(config)
    tables = build_feature_tables(raw, cfg)
    write_feature_tables(tables, root / "features_pandas")
    feature_jobs_step(spark, str(root / "raw"), str(root / "features_spark"), config)
    return EngineRun(root, raw, cfg, tables, root / "features_pandas", root / "features_spark")


def canonical(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Rows in (key, event_timestamp) order, columns by name, timestamps as UTC, lists as tuples."""
    frame = frame.copy()
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True).dt.as_unit("us")
    for column in frame.columns:
        if frame[column].dtype == object and frame[column].map(lambda v: isinstance(v, (list, np.ndarray))).any():
            frame[column] = frame[column].map(lambda v: tuple(v) if isinstance(v, (list, np.ndarray)) else v)
    return frame.sort_values([key, "event_timestamp"], kind="stable").reset_index(drop=True)[sorted(frame.columns)]
