"""The online reader's circuit: after a store error, reads fail at once (answers degrade without waiting
on the store) until a background probe on a fresh connection reads again."""
from __future__ import annotations

import time

import pytest

from components.data.feature_store import prepare_online_store
from serving.online_store import OnlineReader, StoreUnavailable
from tests.serving.helpers import fs_yaml_for

VIEW, KEY = "user_profile", "user_id"


def test_a_store_error_opens_the_circuit_until_a_background_probe_reads_again(tmp_path, workspace):
    db = tmp_path / "online" / "online_store.db"
    config = fs_yaml_for(workspace, tmp_path, {"type": "sqlite", "path": str(db)}, "circuit")
    store = prepare_online_store(workspace.repo_dir, fs_yaml=str(config))  # applied, nothing materialized: reads find no rows
    reader = OnlineReader(store, check_seconds=0, reconnect_seconds=1.0)
    assert reader.read(VIEW, KEY, [1, 2]) == [(None, None), (None, None)]

    good = db.read_bytes()
    db.replace(db.with_suffix(".moved"))
    db.write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(StoreUnavailable, match="not a database"):
        reader.read(VIEW, KEY, [1])  # the changed file is seen, reconnected to, and fails
    assert not reader.healthy and reader.errors == 1

    db.write_bytes(good)  # the store is back, but the reader has not probed it yet
    with pytest.raises(StoreUnavailable, match="probing every 1 s"):
        reader.read(VIEW, KEY, [1])  # the circuit is open: no read is tried
    assert not reader.ping() and reader.errors == 1

    generation = reader.generation
    deadline = time.monotonic() + 10
    while not reader.healthy and time.monotonic() < deadline:
        reader.maybe_refresh()  # what every request does: starts the probe once reconnect_seconds have passed
        time.sleep(0.05)
    assert reader.healthy, reader.last_error
    assert reader.generation > generation  # the item cache drops what it held before the outage
    assert reader.read(VIEW, KEY, [1]) == [(None, None)] and reader.ping()
