"""The project's Spark session: the settings every Spark step needs to agree with the pandas path.

- time zone UTC: Spark turns timestamps into wall-clock values in the session zone; any other zone
  shifts the feature jobs' midnights and hands naive local times back to pandas;
- Parquet timestamps in microseconds: Spark 4 refuses nanosecond Parquet timestamps and writes
  INT96 (no zone) unless told otherwise;
- workers run this very interpreter, so they import the same pandas, numpy and project code;
- a local session binds to 127.0.0.1 (no network needed, nothing listens outside the machine).
"""
from __future__ import annotations

import os
import shutil
import sys

from pyspark.sql import SparkSession

LOCAL_MASTER = "local[2]"
# What any session must have, local or on a cluster (also in feature_repo/feature_store.spark*.yaml).
REQUIRED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
LOCAL_CONF = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.shuffle.partitions": "4",  # small logs on a few cores; a cluster sets its own
    "spark.default.parallelism": "4",
}


def require_java() -> str:
    """The `java` Spark will launch, or an error naming how to install it."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise RuntimeError(
            "Spark needs a Java runtime (17 or 21) and none was found (JAVA_HOME unset and no `java` on PATH); "
            "install it, e.g. `apt-get install -y --no-install-recommends openjdk-17-jre-headless`"
        )
    return java


def local_session(master: str = LOCAL_MASTER, app_name: str = "asymdiffrec", conf: dict[str, str] | None = None) -> SparkSession:
    """A Spark session on this machine (or the one already running in this process).

    An existing session is reused, as Feast's Spark offline store does, so a step and Feast share one
    JVM; the required settings are then checked rather than silently assumed."""
    require_java()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the spark.pyspark.python conf is not honoured locally
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in {**LOCAL_CONF, **REQUIRED_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    return check_session(builder.getOrCreate())


def check_session(spark: SparkSession) -> SparkSession:
    """Fail early, naming the setting, if a session (e.g. one a cluster made) disagrees with REQUIRED_CONF."""
    for key, value in REQUIRED_CONF.items():
        got = spark.conf.get(key, None)
        if got is None or got.upper() != value.upper():
            raise ValueError(f"Spark session has {key}={got!r}; the feature jobs and the join need {value!r} (set it in the session's conf)")
    return spark
