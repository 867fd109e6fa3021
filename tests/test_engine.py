"""The engine choice and its agreement with the Feast config, checked before any step writes."""
from __future__ import annotations

import pytest

from components.data import engine
from components.data.dataset import dataset_step


@pytest.mark.parametrize(
    "chosen, config",
    [("duckdb", "feature_store.yaml"), ("duckdb", "feature_store.redis.yaml"), ("spark", "feature_store.spark.yaml"),
     ("spark", "feature_store.spark-cluster.yaml")],
)
def test_engine_and_config_that_agree_pass(chosen, config, monkeypatch):
    monkeypatch.setenv("FEAST_REGISTRY_SQL_URL", "postgresql://x")  # the cluster configs name variables
    assert engine.check_engine(chosen, config) == chosen


def test_spark_engine_on_a_duckdb_config_names_the_spark_config():
    with pytest.raises(ValueError, match=r"engine: spark but feature_store.config: feature_store.yaml .*'duckdb'.*feature_store.spark.yaml"):
        engine.check_engine("spark", "feature_store.yaml")


def test_duckdb_engine_on_a_spark_config_says_which_to_change():
    with pytest.raises(ValueError, match=r"engine: duckdb but .*'spark'.*set engine: spark, or feature_store.config: feature_store.yaml"):
        engine.check_engine("duckdb", "feature_store.spark.yaml")


def test_unknown_engine_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"engine: 'pandas' is not one of \['duckdb', 'spark'\]"):
        engine.check_engine("pandas", "feature_store.yaml")


def test_unknown_config_lists_the_configs():
    with pytest.raises(FileNotFoundError, match=r"feature_store.spark.yaml"):
        engine.check_engine("spark", "feature_store.nope.yaml")


def test_dataset_step_refuses_a_mismatch_before_writing(tmp_path, project_params):
    with pytest.raises(ValueError, match="engine: spark but"):
        dataset_step(tmp_path / "raw", tmp_path / "feast", tmp_path / "datasets", tmp_path / "reports",
                     project_params["dataset"], "feature_store.yaml", "spark")
    assert not (tmp_path / "datasets").exists() and not (tmp_path / "reports").exists()


def test_the_features_cli_refuses_a_mismatch_with_the_fix(tmp_path, project_params):
    import yaml

    from components.data import feature_jobs

    params = {**project_params, "engine": "spark"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit, match="feature jobs: engine: spark but feature_store.config: feature_store.yaml"):
        feature_jobs.main(["--params", str(tmp_path / "params.yaml"), "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "features")])
    assert not (tmp_path / "features").exists()
