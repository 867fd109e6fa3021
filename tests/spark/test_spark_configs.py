"""The Spark Feast configs load as Feast reads them; the cluster one passes the SparkApplication
engine's own checks (a SQL registry, no file-based stores). No Spark session or cluster is needed."""
from __future__ import annotations

import shutil

import pytest
import yaml

from components.data.feature_store import open_store
from components.data.spark_session import REQUIRED_CONF
from feature_repo.settings import REPO_DIR


@pytest.fixture
def repo(tmp_path, monkeypatch):
    for config in REPO_DIR.glob("feature_store*.yaml"):
        shutil.copy(config, tmp_path / config.name)
    monkeypatch.setenv("FEAST_REGISTRY_SQL_URL", f"sqlite:///{tmp_path / 'registry.sqlite'}")
    monkeypatch.setenv("SPARK_NAMESPACE", "spark-jobs")
    monkeypatch.setenv("SPARK_IMAGE", "registry.example/asymdiffrec-spark:1")
    monkeypatch.setenv("REDIS_CONNECTION_STRING", "localhost:6379")
    return tmp_path


@pytest.mark.parametrize("name", ["feature_store.spark.yaml", "feature_store.spark-cluster.yaml"])
def test_spark_configs_set_what_the_jobs_and_the_join_need(repo, name):
    store = open_store(repo, fs_yaml=name)
    assert store.config.offline_store.type == "spark"
    conf = store.config.offline_store.spark_conf
    for key, value in REQUIRED_CONF.items():
        assert conf.get(key) == value, (name, key)


def test_local_spark_config_is_two_local_cores_on_loopback_writing_the_pipelines_store_paths(repo):
    """The registry and online store are the stages' outputs (dvc.yaml names one path), whichever engine made them."""
    store = open_store(repo, fs_yaml="feature_store.spark.yaml")
    conf = store.config.offline_store.spark_conf
    assert conf["spark.master"] == "local[2]" and conf["spark.driver.bindAddress"] == "127.0.0.1"
    default = open_store(repo)
    assert store.config.registry.path == default.config.registry.path
    assert store.config.online_store.path == default.config.online_store.path


def test_cluster_config_passes_the_spark_application_engine_checks(repo):
    store = open_store(repo, fs_yaml="feature_store.spark-cluster.yaml")
    assert store.config.registry.registry_type == "sql"
    engine = store._get_provider().batch_engine
    assert type(engine).__name__ == "SparkApplicationComputeEngine"
    assert engine.config.image == "registry.example/asymdiffrec-spark:1" and engine.config.namespace == "spark-jobs"
    online = open_store(repo, fs_yaml="feature_store.spark-cluster.yaml", registry="online_registry")
    assert online.config.registry.path == store.config.registry.path, "materialization shares the SQL registry"


def test_the_engine_refuses_the_file_registry_the_cluster_config_avoids(repo):
    raw = yaml.safe_load((repo / "feature_store.spark-cluster.yaml").read_text())
    raw["registry"] = str(repo / "registry.db")
    (repo / "feature_store.file-registry.yaml").write_text(yaml.safe_dump(raw))
    store = open_store(repo, fs_yaml="feature_store.file-registry.yaml")
    with pytest.raises(ValueError, match="spark_application engine cannot use 'file' registry"):
        store._get_provider().batch_engine
