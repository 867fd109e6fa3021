"""The BentoML service as users meet it: `bentoml serve` in its own process, called over HTTP."""
from __future__ import annotations

import shutil
import time

import pytest
import requests

from components.data.feature_store import materialize_all, prepare_online_store
from serving.process import ServeProcess
from tests.serving.helpers import fs_yaml_for as _fs_yaml, save_model as _save_model

WHEN = "1998-03-10T20:00:00Z"  # inside the MovieLens log, so stored features are fresh for active users


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


def server_tag(server: ServeProcess) -> str:
    return server.model_tag


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


BAD_RANK_REQUESTS = [
    ({"user_id": "abc", "item_ids": [1]}, "user_id"),
    ({"user_id": 1, "item_ids": []}, "item_ids"),
    ({"user_id": 1, "item_ids": list(range(1, 1002))}, "item_ids"),
    ({"user_id": 1, "item_ids": [3, 4, 3]}, "item_ids"),
    ({"user_id": 1, "item_ids": ["x"]}, "item_ids"),
    ({"user_id": 1, "item_ids": [1], "context": {"hour": 3}}, "context"),
    ({"item_ids": [1]}, "user_id"),
    ({"user_id": 2**63, "item_ids": [1]}, "user_id"),  # outside int64
    ({"user_id": 1, "item_ids": [1, -(2**63) - 1]}, "item_ids"),
    ({"user_id": 1, "item_ids": [1], "context": {"request_time": "9999-12-31T00:00:00Z"}}, "request_time"),  # past what numpy holds
    ({"user_id": 1, "item_ids": [1], "context": {"request_time": "0001-01-01T00:00:00Z"}}, "request_time"),
    ({"user_id": 1, "item_ids": [1], "contxt": {"request_time": "1998-03-10T20:00:00Z"}}, "contxt"),  # a typo, not ignored
]


@pytest.mark.parametrize("payload, field", BAD_RANK_REQUESTS)
def test_bad_requests_get_a_4xx_naming_the_field(server, payload, field):
    response = server.post("/rank", payload)
    assert 400 <= response.status_code < 500, response.text
    assert field in response.text


def test_bad_bodies_and_oversized_batches_get_a_4xx(server):
    garbage = requests.post(f"{server.url}/rank", data=b"--xx\r\ngarbage", headers={"Content-Type": "multipart/form-data; boundary=xx"}, timeout=30)
    assert garbage.status_code == 400, garbage.text
    not_json = requests.post(f"{server.url}/rank", data=b"{not json", headers={"Content-Type": "application/json"}, timeout=30)
    assert not_json.status_code == 400 and "json" in not_json.text.lower(), not_json.text
    huge = server.post("/score", {"pairs": [{"user_id": 1, "item_id": i} for i in range(100_000)]})
    assert huge.status_code == 400 and "pairs" in huge.text, huge.text[:500]
    typo = server.post("/score", {"pairs": [{"user_id": 1, "item_id": 1}], "contxt": {}})
    assert typo.status_code == 400 and "contxt" in typo.text, typo.text
    long_id = server.post("/rank", {"user_id": 1, "item_ids": [1]}, headers={"X-Request-ID": "x" * 200})
    assert long_id.status_code == 400 and "x-request-id" in long_id.text, long_id.text


def test_client_errors_are_never_reported_as_store_outages(server):
    for payload, _ in BAD_RANK_REQUESTS:
        assert server.post("/rank", payload).status_code < 500
    metrics = requests.get(f"{server.url}/metrics", timeout=5).text
    assert "asymdiffrec_online_store_errors_total 0.0" in metrics
    assert "asymdiffrec_degraded_answers_total" not in metrics
    assert "degraded" not in server.log.read_text()


def test_batch_scoring_and_the_sync_client(server, workspace):
    import bentoml

    user, items = _known_pairs(workspace, 5)
    pairs = [{"user_id": user, "item_id": i} for i in items]
    response = server.post("/score", {"pairs": pairs, "context": {"request_time": WHEN}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["scores"]) == 5 and all(0 < s < 1 for s in body["scores"]) and body["degraded"] is False
    with bentoml.SyncHTTPClient(server.url) as client:
        ranked = client.rank(user_id=user, item_ids=items, context={"request_time": WHEN})
    assert sorted(it["item_id"] for it in ranked["items"]) == sorted(items)
    by_item = {it["item_id"]: it["score"] for it in ranked["items"]}
    assert body["scores"] == pytest.approx([by_item[i] for i in items], abs=1e-6)  # same time, same features, same scores


def test_every_answer_goes_to_the_serving_log(server, workspace):
    from serving.serving_log import SCHEMA_VERSION, read_serving_log

    user, items = _known_pairs(workspace, 4)
    response = server.post("/rank", {"user_id": user, "item_ids": items, "context": {"request_time": WHEN}}, headers={"X-Request-ID": "req-42"})
    assert response.status_code == 200 and response.json()["request_id"] == "req-42"
    deadline, found = time.time() + 10, []
    while not found and time.time() < deadline:
        found = [r for r in read_serving_log(server.serving_log_dir) if r["request_id"] == "req-42"]
        time.sleep(0.2)
    assert len(found) == 1
    record = found[0]
    assert record["schema"] == SCHEMA_VERSION and record["endpoint"] == "rank" and record["request_time"] == "1998-03-10T20:00:00.000Z"
    assert record["user_ids"] == [user] * 4 and record["item_ids"] == items
    by_item = {it["item_id"]: it["score"] for it in response.json()["items"]}
    assert record["scores"] == pytest.approx([by_item[i] for i in items], abs=1e-12)
    assert set(record["missing"]) == set(workspace.schema.views) and all(len(m) == 4 for m in record["missing"].values())
    for view, ages in record["age_s"].items():
        assert all((a is None) == bool(m) for a, m in zip(ages, record["missing"][view])), view
        assert all(a is None or a >= 0 for a in ages)
    shares = {v: sum(m) / 4 for v, m in record["missing"].items()}
    assert shares == pytest.approx(response.json()["missing"])


def test_health_readiness_and_metrics(server):
    assert requests.get(f"{server.url}/livez", timeout=5).status_code == 200
    assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 200
    metrics = requests.get(f"{server.url}/metrics", timeout=5).text
    assert "bentoml_service_request" in metrics
    assert f'asymdiffrec_model_info{{tag="{server_tag(server)}"}} 1.0' in metrics
    for series in ("asymdiffrec_samples_total{endpoint=\"rank\"}", "asymdiffrec_samples_missing_total", "asymdiffrec_feature_age_seconds_bucket",
                   "asymdiffrec_online_store_up 1.0", "asymdiffrec_item_cache_hits_total", "asymdiffrec_online_store_errors_total"):
        assert series in metrics, series


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
    """Answers keep coming, degraded; /readyz stays 200 by default (every replica shares the store) and
    fails with serving.ready_requires_store; the metrics say the store is down."""
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
        assert requests.get(f"{srv.url}/readyz", timeout=5).status_code == 200
        metrics = requests.get(f"{srv.url}/metrics", timeout=5).text
        assert "asymdiffrec_online_store_up 0.0" in metrics and 'asymdiffrec_degraded_answers_total{endpoint="rank"}' in metrics
    finally:
        srv.stop()
    with ServeProcess(tmp_path, home, tag, dead, serving={"ready_requires_store": True}, wait_for="/livez") as strict:
        assert requests.get(f"{strict.url}/readyz", timeout=5).status_code == 503
        assert strict.post("/rank", {"user_id": 1, "item_ids": [1], "context": {"request_time": WHEN}}).json()["degraded"] is True


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
