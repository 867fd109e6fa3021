"""`engine: spark` end to end on MovieLens-100K: the pipeline's own steps (feature jobs, apply,
point-in-time dataset, validation gate) on Spark give the validated dataset the DuckDB engine gives."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from components.data import engine
from components.data.contract import SPLITS
from components.data.dataset import dataset_step
from components.data.feature_store import apply_step
from components.data.validate import validate_step

SPARK_CONFIG = engine.SPARK_CONFIG


@pytest.fixture(scope="module")
def spark_pipeline(spark, tmp_path_factory, movielens, project_params):
    root = tmp_path_factory.mktemp("spark_pipeline")
    movielens.write(root / "raw")
    rows = engine.feature_jobs_step("spark", root / "raw", root / "features", project_params["feature_jobs"], SPARK_CONFIG)
    apply_step(str(root / "features"), root / "feast", project_params["feature_store"]["ttl_hours"], SPARK_CONFIG)
    dataset_step(root / "raw", root / "feast", root / "datasets", root / "reports", project_params["dataset"], SPARK_CONFIG, "spark")
    report = validate_step(root / "datasets", root / "feast", root / "validated", root / "validation.json", project_params["validate"], SPARK_CONFIG)
    return root, rows, report


def test_spark_engine_gives_the_duckdb_engines_validated_dataset(spark_pipeline, workspace):
    root, rows, report = spark_pipeline
    assert report.success and len(report.results) > 100, report.failures
    assert rows == {name: len(table) for name, table in workspace.tables.items()}
    duckdb_dir = workspace.root / "data" / "datasets"
    assert json.loads((root / "validated" / "schema.json").read_text()) == json.loads((duckdb_dir / "schema.json").read_text())
    for split in SPLITS:
        on_spark = pd.read_parquet(root / "validated" / f"{split}.parquet")
        on_duckdb = pd.read_parquet(duckdb_dir / f"{split}.parquet")
        assert len(on_spark) > 0
        pd.testing.assert_frame_equal(on_spark, on_duckdb, check_exact=True)


def test_the_spark_registry_reads_spark_sources(spark_pipeline):
    from components.data.feature_store import open_store

    root, _, _ = spark_pipeline
    store = open_store(fs_yaml=SPARK_CONFIG, work_dir=root / "feast")
    kinds = {view.name: type(view.batch_source).__name__ for view in store.list_feature_views()}
    assert set(kinds.values()) == {"SparkSource"}, kinds
