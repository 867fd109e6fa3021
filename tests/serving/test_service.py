"""The BentoML service as users meet it: `bentoml serve` in its own process, called over HTTP."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import requests
import yaml

from components.data.feature_store import materialize_all, prepare_online_store
from serving.process import ServeProcess

WHEN = "1998-03-10T20:00:00Z"  # inside the MovieLens log, so stored features are fresh for active users


def _fs_yaml(workspace, tmp: Path, online: dict, name: str) -> Path:
    """A Feast config with absolute paths into the test workspace."""
    data = workspace.root / "data" / "feast"
    config = yaml.safe_load((workspace.repo_dir / "feature_store.yaml").read_text())
    config.update(registry=str(data / "registry.db"), online_registry=str(data / name / "registry.db"), online_store=online)
    path = tmp / f"feature_store.{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _save_model(home: Path, checkpoint_dir: Path, stage: str) -> str:
    """Copy a checkpoint into the BentoML store at `home`, whatever store this process used before."""
    import bentoml

    from components.lifecycle.model_store import bentoml_model_store, use_bentoml_home

    previous = os.environ.get("BENTOML_HOME")
    try:
        use_bentoml_home(home)
        with bentoml.models.create("asymdiffrec", labels={"stage": stage}, _model_store=bentoml_model_store()) as ref:
            for f in Path(checkpoint_dir).iterdir():
                shutil.copy(f, Path(ref.path) / f.name)
        return str(ref.tag)
    finally:
        if previous is None:
            os.environ.pop("BENTOML_HOME", None)
        else:
            os.environ["BENTOML_HOME"] = previous


@pytest.fixture(scope="module")
def model_store(tmp_path_factory, checkpoint):
    home = tmp_path_factory.mktemp("bentoml")
    return home, _save_model(home, checkpoint, "production")


@pytest.fixture(scope="module")
def sqlite_yaml(workspace, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fs")
    path = _fs_yaml(workspace, tmp, {"type": "sqlite", "path": str(workspace.root / "data/feast/served/online_store.db")}, "served")
    store = prepare_online_store(workspace.repo_dir, fs_yaml=str(path))
    materialize_all(store, workspace.root / "data" / "features")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_store, sqlite_yaml):
    home, tag = model_store
    srv = ServeProcess(tmp_path_factory.mktemp("srv"), home, tag, sqlite_yaml)
    yield srv
    srv.stop()


def _known_pairs(workspace, n: int = 20) -> tuple[int, list[int]]:
    test = workspace.splits["test"]
    user = int(test["user_id"].value_counts().index[0])
    return user, [int(i) for i in test["item_id"].drop_duplicates().head(n)]


def test_rank_orders_candidates_by_score_and_says_what_is_missing(server, workspace, model_store, checkpoint, sqlite_yaml):
    from components.data.feature_store import ONLINE_REGISTRY, open_store
    from serving.ranker import Ranker

    user, items = _known_pairs(workspace)
    response = server.post("/rank", {"user_id": user, "item_ids": items, "context": {"request_time": WHEN}})
    assert response.status_code == 200, response.text
    body = response.json()
    scores = [it["score"] for it in body["items"]]
    assert sorted(it["item_id"] for it in body["items"]) == sorted(items)
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    assert body["model"] == model_store[1] and body["degraded"] is False
    assert set(body["missing"]) == set(workspace.schema.views)
    assert body["missing"]["request_context"] == 0.0
    # the same answer as the ranker in this process, on the same online store
    ranker = Ranker(checkpoint, open_store(fs_yaml=str(sqlite_yaml), registry=ONLINE_REGISTRY), body["model"])
    from datetime import datetime

    local = ranker.rank(user, items, datetime.fromisoformat(WHEN.replace("Z", "+00:00")))
    assert [it["item_id"] for it in body["items"]] == [it["item_id"] for it in local.items]
    assert scores == pytest.approx([it["score"] for it in local.items], abs=1e-6)


def test_cold_start_user_and_items_are_served_with_features_missing(server):
    response = server.post("/rank", {"user_id": 10**9, "item_ids": [10**9, 10**9 + 1], "context": {"request_time": WHEN}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["degraded"] is False
    assert body["missing"] == {"user_profile": 1.0, "user_activity": 1.0, "item_metadata": 1.0, "item_stats": 1.0, "request_context": 0.0}
    assert len(body["items"]) == 2


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"user_id": "abc", "item_ids": [1]}, "user_id"),
        ({"user_id": 1, "item_ids": []}, "item_ids"),
        ({"user_id": 1, "item_ids": list(range(1, 502))}, "item_ids"),
        ({"user_id": 1, "item_ids": [3, 4, 3]}, "item_ids"),
        ({"user_id": 1, "item_ids": ["x"]}, "item_ids"),
        ({"user_id": 1, "item_ids": [1], "context": {"hour": 3}}, "context"),
        ({"item_ids": [1]}, "user_id"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_field(server, payload, field):
    response = server.post("/rank", payload)
    assert 400 <= response.status_code < 500, response.text
    assert field in response.text


def test_batch_scoring_and_the_sync_client(server, workspace):
    import bentoml

    user, items = _known_pairs(workspace, 5)
    pairs = [{"user_id": user, "item_id": i} for i in items]
    response = server.post("/score", {"pairs": pairs})
    assert response.status_code == 200, response.text
    assert len(response.json()) == 5 and all(0 < s < 1 for s in response.json())
    with bentoml.SyncHTTPClient(server.url) as client:
        ranked = client.rank(user_id=user, item_ids=items, context={"request_time": WHEN})
    assert sorted(it["item_id"] for it in ranked["items"]) == sorted(items)


def test_health_readiness_and_metrics(server):
    assert requests.get(f"{server.url}/livez", timeout=5).status_code == 200
    assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 200
    metrics = requests.get(f"{server.url}/metrics", timeout=5).text
    assert "bentoml_service_request" in metrics


def test_a_model_that_answers_nan_is_alive_but_never_ready(tmp_path, model_store, checkpoint, sqlite_yaml):
    """Readiness is the model scoring a probe to a probability, not the process being up."""
    import time

    import torch

    home, _ = model_store
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    weights = torch.load(broken / "weights.pt", weights_only=True)
    torch.save({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in weights.items()}, broken / "weights.pt")
    tag = _save_model(home, broken, "candidate")
    with ServeProcess(tmp_path, home, tag, sqlite_yaml, wait_for="/livez") as srv:
        deadline = time.time() + 60
        while "NOT READY" not in srv.log.read_text() and time.time() < deadline:
            time.sleep(0.3)
        assert "NOT READY" in srv.log.read_text()
        assert requests.get(f"{srv.url}/livez", timeout=5).status_code == 200
        assert requests.get(f"{srv.url}/readyz", timeout=5).status_code == 503


def test_unreachable_online_store_answers_degraded(tmp_path, workspace, model_store):
    home, tag = model_store
    dead = _fs_yaml(workspace, tmp_path, {"type": "redis", "connection_string": "127.0.0.1:1,socket_connect_timeout=0.2"}, "dead")
    # The registry materialization left is there (a file); only the Redis behind it is down.
    registry = workspace.root / "data" / "feast"
    (registry / "dead").mkdir(exist_ok=True)
    shutil.copy(registry / "registry.db", registry / "dead" / "registry.db")
    srv = ServeProcess(tmp_path, home, tag, dead)
    try:
        user, items = _known_pairs(workspace, 3)
        response = srv.post("/rank", {"user_id": user, "item_ids": items, "context": {"request_time": WHEN}})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["degraded"] is True
        assert body["missing"]["user_activity"] == 1.0 and body["missing"]["request_context"] == 0.0
        assert "degraded" in srv.log.read_text()
    finally:
        srv.stop()


def test_redis_online_store_by_configuration(tmp_path, workspace, model_store, server, redis_url):
    config = _fs_yaml(workspace, tmp_path, {"type": "redis", "connection_string": redis_url}, "redis")
    store = prepare_online_store(workspace.repo_dir, fs_yaml=str(config))
    materialize_all(store, workspace.root / "data" / "features")
    home, tag = model_store
    with ServeProcess(tmp_path, home, tag, config) as srv:
        user, items = _known_pairs(workspace, 10)
        payload = {"user_id": user, "item_ids": items, "context": {"request_time": WHEN}}
        from_redis, from_sqlite = srv.post("/rank", payload).json(), server.post("/rank", payload).json()
    assert from_redis["degraded"] is False
    assert from_redis["items"] == from_sqlite["items"] and from_redis["missing"] == from_sqlite["missing"]
