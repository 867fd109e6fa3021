"""The service heals by itself: a broken, replaced or restarted online store is followed within seconds,
under load, without a restart and without a failed request (answers degrade instead)."""
from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import redis
import requests

from components.data.feature_store import materialize_all, prepare_online_store
from serving.process import ServeProcess, free_port
from tests.serving.helpers import Load, fs_yaml_for

WHEN = "1998-03-10T20:00:00Z"
RECOVERY_S = 15  # the service checks the store every 2 s and retries every 1 s (params.yaml defaults)
STORED = ("user_profile", "user_activity", "item_metadata", "item_stats")


def _payload(workspace) -> dict:
    test = workspace.splits["test"]
    user = int(test["user_id"].value_counts().index[0])
    items = [int(i) for i in test["item_id"].drop_duplicates().head(50)]
    return {"user_id": user, "item_ids": items, "context": {"request_time": WHEN}}


def healthy(body) -> bool:
    return not body["degraded"] and body["missing"]["item_metadata"] < 1.0


def degraded(body) -> bool:
    return body["degraded"]


def _metric(url: str, name: str) -> float:
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_sqlite_store_broken_replaced_and_restored_under_load(tmp_path, workspace, model_store):
    folder = tmp_path / "online"
    db = folder / "online_store.db"
    config = fs_yaml_for(workspace, tmp_path, {"type": "sqlite", "path": str(db)}, "recovery")
    materialize_all(prepare_online_store(workspace.repo_dir, fs_yaml=str(config)), workspace.root / "data" / "features")
    good = tmp_path / "good.db"
    shutil.copy(db, good)
    # A store re-materialized elsewhere (here: applied, nothing materialized yet) to be renamed into place.
    empty_db = tmp_path / "empty" / "online_store.db"
    empty_config = fs_yaml_for(workspace, tmp_path, {"type": "sqlite", "path": str(empty_db)}, "recovery-empty")
    prepare_online_store(workspace.repo_dir, fs_yaml=str(empty_config))

    home, tag = model_store
    with ServeProcess(tmp_path, home, tag, config) as server, Load(server.url, _payload(workspace)) as load:
        load.wait_for(healthy, time.monotonic() - 1, RECOVERY_S)
        before = [b for _, s, b in load.answers if s == 200 and healthy(b)][-1]

        broke = time.monotonic()
        db.replace(folder / "moved-away.db")  # the old connection would keep reading this file...
        db.write_bytes(b"this is not an SQLite database" * 100)  # ...while the store path now holds garbage
        load.wait_for(degraded, broke, RECOVERY_S)

        restored = time.monotonic()
        shutil.copy(good, folder / "restore.tmp")
        (folder / "restore.tmp").replace(db)
        healed_in = load.wait_for(healthy, restored, RECOVERY_S)
        after = [b for at, s, b in load.answers if at > restored and s == 200 and healthy(b)][-1]
        assert after["items"] == before["items"] and after["missing"] == before["missing"]

        swapped = time.monotonic()
        shutil.copy(empty_db, folder / "swap.tmp")
        (folder / "swap.tmp").replace(db)  # a re-materialized store file: its rows, not the cached ones, are served
        load.wait_for(lambda b: not b["degraded"] and all(b["missing"][v] == 1.0 for v in STORED), swapped, RECOVERY_S)

        back = time.monotonic()
        shutil.copy(good, folder / "back.tmp")
        (folder / "back.tmp").replace(db)
        load.wait_for(healthy, back, RECOVERY_S)
        assert load.errors_since(broke) == [], "a store fault must degrade answers, never fail a request"
        assert _metric(server.url, "asymdiffrec_online_store_errors_total") > 0
        assert _metric(server.url, "asymdiffrec_online_store_reconnects_total") >= 3
    assert healed_in < RECOVERY_S


def _start_redis(port: int, folder) -> subprocess.Popen:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(200):
        try:
            if client.ping():
                return proc
        except redis.RedisError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=10)


def test_redis_stopped_and_started_under_load(tmp_path, workspace, model_store):
    port = free_port()
    proc = _start_redis(port, tmp_path)
    try:
        config = fs_yaml_for(workspace, tmp_path, {"type": "redis", "connection_string": f"127.0.0.1:{port}"}, "recovery-redis")
        materialize_all(prepare_online_store(workspace.repo_dir, fs_yaml=str(config)), workspace.root / "data" / "features")
        redis.Redis(host="127.0.0.1", port=port).save()  # the snapshot a restarted server loads
        home, tag = model_store
        with ServeProcess(tmp_path, home, tag, config) as server, Load(server.url, _payload(workspace)) as load:
            load.wait_for(healthy, time.monotonic() - 1, RECOVERY_S)
            stopped = time.monotonic()
            _stop(proc)
            load.wait_for(degraded, stopped, RECOVERY_S)
            started = time.monotonic()
            proc = _start_redis(port, tmp_path)
            healed_in = load.wait_for(healthy, started, RECOVERY_S)
            assert load.errors_since(stopped) == [], "a store outage must degrade answers, never fail a request"
        assert healed_in < RECOVERY_S
    finally:
        _stop(proc)
