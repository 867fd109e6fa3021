"""Shared fixtures: the real pipeline steps run once on MovieLens-100K into a temporary workspace."""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from components.data.contract import DatasetSchema
from components.data.dataset import build_dataset, write_dataset
from components.data.feature_jobs import FeatureJobConfig, build_feature_tables, write_feature_tables
from components.data.feature_store import apply_definitions, open_store
from components.data.movielens import load_movielens
from common.params import load_params
from components.data.raw import RawTables
from feature_repo.definitions import Definitions
from feature_repo.settings import REPO_DIR, FeatureRepoSettings

ROOT = Path(__file__).resolve().parents[1]
# The longest test files start first, so that under `pytest -n 2 --dist loadfile` (make test) the
# other worker runs everything else meanwhile instead of waiting on them at the end.
LONGEST_FIRST = ("tests/test_dvc_pipeline.py", "tests/test_kfp_pipeline.py")

# A pytest-xdist worker's __main__ has neither a spec nor a file. pyspark.sql.connect, which Great
# Expectations imports, takes that for a doctest run without grpc and calls sys.exit(0) at import.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "<pytest worker>"


def pytest_collection_modifyitems(config, items) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(item.path).relative_to(ROOT).as_posix(), len(rank)))  # stable: the rest keep their order


@dataclass
class Workspace:
    """A copy of the feature repo's configs with its own data folder, as `dvc repro` lays it out."""

    root: Path
    params: dict
    raw: RawTables
    tables: dict[str, pd.DataFrame]
    definitions: Definitions
    splits: dict[str, pd.DataFrame]
    schema: DatasetSchema
    settings: FeatureRepoSettings

    @property
    def repo_dir(self) -> Path:
        return self.root / "feature_repo"

    def store(self, **kwargs):
        return open_store(self.repo_dir, **kwargs)

    @property
    def dataset(self) -> pd.DataFrame:
        return pd.concat(self.splits.values(), ignore_index=True)


def make_workspace(root: Path, raw: RawTables, params: dict) -> Workspace:
    (root / "feature_repo").mkdir(parents=True)
    for config in REPO_DIR.glob("feature_store*.yaml"):
        shutil.copy(config, root / "feature_repo" / config.name)
    tables = build_feature_tables(raw, FeatureJobConfig.from_dict(params["feature_jobs"]))
    write_feature_tables(tables, root / "data" / "features")
    settings = FeatureRepoSettings.from_params(params, features_dir=str(root / "data" / "features"))
    store = open_store(root / "feature_repo")
    definitions = apply_definitions(store, settings)
    splits, schema = build_dataset(store, raw, params["dataset"]["label_min_rating"], params["dataset"]["split"])
    write_dataset(splits, schema, root / "data" / "datasets")
    return Workspace(root, params, raw, tables, definitions, splits, schema, settings)


@pytest.fixture(scope="session")
def project_params() -> dict:
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def movielens() -> RawTables:
    return load_movielens()


@pytest.fixture(scope="session")
def workspace(tmp_path_factory, movielens, project_params) -> Workspace:
    """MovieLens-100K through the feature jobs, `feast apply` and the point-in-time join."""
    return make_workspace(tmp_path_factory.mktemp("ws"), movielens, project_params)


@pytest.fixture
def redis_url(tmp_path):
    """A real redis-server on a free loopback port, stopped after the test."""
    import shutil
    import socket
    import subprocess
    import time

    from serving.process import free_port

    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def checkpoint(workspace, tmp_path_factory):
    """A small AsymDiffRec trained for one epoch on the workspace's training split."""
    from models import fit, save_checkpoint

    features = [{"name": f.name, "view": f.view, "kind": f.kind} for f in workspace.schema.features]
    model, schema, _ = fit(
        workspace.splits["train"],
        workspace.splits["validation"],
        features,
        {"variant": "asymdiffrec", "hidden": [64, 32]},
        {"epochs": 1, "progress": False, "seed": 0},
    )
    path = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(path, model, schema)
    return path
