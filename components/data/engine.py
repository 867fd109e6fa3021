"""The `engine` choice: where the feature jobs and the point-in-time join run.

- `duckdb` (the default): pandas feature jobs, Feast's DuckDB offline store; one process.
- `spark`: PySpark feature jobs (`spark_jobs.py`) and Feast's Spark offline store (`spark_join.py`),
  in the Spark session the Feast config describes (`offline_store.spark_conf`): `local[2]` with
  `feature_store.spark.yaml`, a Kubernetes cluster with `feature_store.spark-cluster.yaml`.

The engine and the Feast config must agree (a Spark engine needs a Spark offline store and the other
way round); every step that reads both checks them first, so a half-switched pipeline fails before it
writes anything.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from components.data.feature_store import DEFAULT_FS_YAML, read_feast_config
from feature_repo.settings import REPO_DIR

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ENGINES = ("duckdb", "spark")
SPARK_CONFIG = "feature_store.spark.yaml"
DEFAULT_CONFIG = DEFAULT_FS_YAML


def local_config(engine: str) -> str:
    """The Feast config that runs `engine` on this machine."""
    return SPARK_CONFIG if engine == "spark" else DEFAULT_CONFIG


def _offline_store_type(raw: dict) -> str:
    offline = raw.get("offline_store") or {}
    return str(offline.get("type", "dask") if isinstance(offline, dict) else offline)


def check_engine(engine: str, fs_yaml: str | None, repo_dir: Path = REPO_DIR) -> str:
    """`engine` if it is known and the Feast config's offline store (`fs_yaml`; None: FEAST_FS_YAML or
    the default, as `open_store` picks it) is the one it runs on, else a ValueError naming both
    settings and the fix."""
    if engine not in ENGINES:
        raise ValueError(f"engine: {engine!r} is not one of {list(ENGINES)}; set engine in params.yaml (or the pipeline's engine parameter)")
    path, raw = read_feast_config(repo_dir, fs_yaml)
    offline = _offline_store_type(raw)
    if (engine == "spark") != (offline == "spark"):
        fix = (
            f"set feature_store.config: {SPARK_CONFIG} (or a config of yours with offline_store type spark)"
            if engine == "spark"
            else f"set engine: spark, or feature_store.config: {DEFAULT_CONFIG}"
        )
        raise ValueError(
            f"engine: {engine} but feature_store.config: {path.name} has an offline store of type {offline!r}; "
            f"the feature jobs and the join must run on the same engine: {fix}"
        )
    return engine


def spark_session_for(fs_yaml: str | None, app_name: str, repo_dir: Path = REPO_DIR) -> "SparkSession":
    """The Spark session the Feast config's offline store describes, so the feature jobs, the join and
    materialization share one: a local master gets the loopback settings of `spark_session`, any
    other master (k8s://, spark://) exactly the config's `spark_conf`."""
    from pyspark.sql import SparkSession

    from components.data.spark_session import LOCAL_MASTER, check_session, local_session

    offline = read_feast_config(repo_dir, fs_yaml)[1].get("offline_store") or {}
    conf = {str(k): str(v) for k, v in (offline.get("spark_conf") or {}).items()}
    master = conf.pop("spark.master", LOCAL_MASTER)
    conf.pop("spark.app.name", None)
    if master.startswith("local"):
        return local_session(master, app_name=app_name, conf=conf)
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    return check_session(builder.getOrCreate())


def feature_jobs_step(engine: str, raw_dir: Path, out_dir: Path, config: dict, fs_yaml: str) -> dict[str, int]:
    """The features stage on `engine`: the same tables at `out_dir/<table>.parquet` (a file from
    pandas, a folder of part files from Spark). Returns each table's row count."""
    check_engine(engine, fs_yaml)
    if engine == "duckdb":
        from components.data import feature_jobs

        return feature_jobs.feature_jobs_step(Path(raw_dir), Path(out_dir), config)
    from components.data import spark_jobs

    spark = spark_session_for(fs_yaml, "asymdiffrec-feature-jobs")
    written = spark_jobs.feature_jobs_step(spark, str(raw_dir), str(out_dir), config)
    return {name: spark.read.parquet(f"{str(out_dir).rstrip('/')}/{name}.parquet").count() for name in written}


def stop_spark() -> None:
    """Stop this process's Spark session, if a step started one (a CLI's last act: frees the JVM's ports)."""
    import sys

    if "pyspark" not in sys.modules:
        return
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()
