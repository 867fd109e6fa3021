"""Read rows from the Feast online store, and heal the connection by itself.

The service reads through the online store's own `online_read` (the call every Feast online store
implements, the same one `get_online_features` makes), one call per view for all the request's
entities, without the per-row dictionaries and frames of `get_online_features`.

Two faults used to stick until the process restarted, because Feast's SQLite store caches one
connection for the life of the object:
  - after a store error, every later read failed too, even once the store was back;
  - a store file renamed into place or re-materialized was never seen: the old file kept answering.
So the reader opens a fresh online-store object (a new connection) whenever the store's fingerprint
changes (the online registry's stamp, which materialization writes, and for SQLite the database
file's identity), and after an error. Each new connection bumps `generation`, which tells the item
cache its rows may be out of date.

While the store is down, requests do not wait on it. A read against an unreachable Redis costs
seconds (the client's own retries with backoff: about 4.7 s with redis-py 8's defaults), so after
an error the reader fails fast (the answer degrades at once) and a background probe, at most one
every `reconnect_seconds`, tries a fresh connection; its first successful read closes the circuit.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from feast import FeatureStore
from feast.infra.online_stores.helpers import get_online_store_from_config
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

log = logging.getLogger("asymdiffrec.serving")

Row = tuple[Any, dict[str, ValueProto] | None]  # (event time, feature -> value), (None, None) when absent


class StoreUnavailable(RuntimeError):
    """The online store could not be read (down, unreachable, broken file): an outage, never the client's fault."""


def _is_remote(location: str) -> bool:
    return "://" in location


def _file_identity(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError:
        return ("absent",)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class OnlineReader:
    """Reads feature-view rows by entity id; reconnects after errors and when the store changes."""

    def __init__(self, store: FeatureStore, check_seconds: float, reconnect_seconds: float):
        self.store = store
        self.config = store.config
        self.views = {v.name: v for v in store.list_feature_views()}
        self.check_seconds = check_seconds
        self.reconnect_seconds = reconnect_seconds
        self.generation = 0  # bumped by every new connection
        self.errors = 0  # store errors seen, for /metrics
        self.reconnects = 0
        self.healthy = True  # the last read succeeded
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._online = get_online_store_from_config(self.config.online_store)
        self._fingerprint = self._store_fingerprint()
        self._checked_at = time.monotonic()
        self._failed_at: float | None = None  # when the last failed read or probe ended; None while healthy
        self._probing = False

    # -- what identifies the data the store holds ------------------------------------------
    def _resolve(self, location: str) -> Path:
        path = Path(location)
        return path if path.is_absolute() else Path(self.config.repo_path or ".") / path

    def _store_fingerprint(self) -> tuple:
        registry = str(self.config.registry.path)
        if _is_remote(registry):  # a registry in object storage: the materialization intervals it records
            try:
                self.store.refresh_registry()
                stamp: tuple = tuple(
                    (v.name, max((end for _, end in v.materialization_intervals), default=None))
                    for v in self.store.list_feature_views()
                )
            except Exception as err:  # the registry is unreachable: keep serving from the store we have
                log.warning("cannot read the registry %s: %s", registry, err)
                return self._fingerprint
        else:
            stamp = _file_identity(self._resolve(registry))
        online = self.config.online_store
        if getattr(online, "type", "") == "sqlite":
            stamp = (stamp, _file_identity(self._resolve(online.path)))
        return stamp

    # -- connection --------------------------------------------------------------------------
    def _reconnect(self, why: str) -> None:
        self._online = get_online_store_from_config(self.config.online_store)
        self.generation += 1
        self.reconnects += 1
        log.info("online store: new connection (%s)", why)

    def maybe_refresh(self) -> None:
        """Reconnect if the store changed (checked every `check_seconds`); while it is down, start a probe
        every `reconnect_seconds`. Cheap: a clock read, and a stat of two files when a check is due."""
        now = time.monotonic()
        due_probe = not self.healthy and not self._probing and now - (self._failed_at or now) >= self.reconnect_seconds
        due_check = now - self._checked_at >= self.check_seconds
        if not (due_probe or due_check) or not self._lock.acquire(blocking=False):
            return
        try:
            if due_probe and not self._probing:
                self._probing = True
                threading.Thread(target=self._probe, name="online-store-probe", daemon=True).start()
            if due_check:
                self._checked_at = now
                fingerprint = self._store_fingerprint()
                if fingerprint != self._fingerprint:
                    self._fingerprint = fingerprint
                    self._reconnect("the store was re-materialized or replaced")
        finally:
            self._lock.release()

    def _probe(self) -> None:
        """One read on a fresh connection, off the request path; success closes the circuit."""
        try:
            with self._lock:
                self._reconnect("retry after a store error")
                online = self._online
            view = next(iter(self.views.values()))
            try:
                online.online_read(self.config, view, [self._key(view.join_keys[0], -1)], [f.name for f in view.features])
            except Exception as err:
                self._failed(err)
                return
            with self._lock:
                self.healthy, self._failed_at = True, None
                self.generation += 1  # what it holds may have been restored or re-materialized
            log.info("online store: reachable again")
        finally:
            self._probing = False

    def _failed(self, err: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(err).__name__}: {err}"
        self._failed_at = time.monotonic()  # the next probe waits `reconnect_seconds` from now
        if self.healthy:
            log.warning("online store: unavailable, answering without it until a probe reads again: %s", self.last_error)
        self.healthy = False

    @staticmethod
    def _key(join_key: str, entity_id: int) -> EntityKeyProto:
        return EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(int64_val=int(entity_id))])

    # -- reads -------------------------------------------------------------------------------
    def read(self, view: str, join_key: str, ids: Sequence[int]) -> list[Row]:
        """One row per id, in order. Raises StoreUnavailable on any store failure, and at once while
        the store is known to be down (a probe is retrying it)."""
        self.maybe_refresh()
        if not self.healthy:
            raise StoreUnavailable(f"online store unavailable (probing every {self.reconnect_seconds:g} s): {self.last_error}")
        keys = [self._key(join_key, i) for i in ids]
        try:
            rows = self._online.online_read(self.config, self.views[view], keys, [f.name for f in self.views[view].features])
        except Exception as err:
            self._failed(err)
            raise StoreUnavailable(f"online store unavailable: {self.last_error}") from err
        return rows

    def ping(self) -> bool:
        """Whether the store answers a read now (used by readiness)."""
        view = next(iter(self.views.values()))
        try:
            self.read(view.name, view.join_keys[0], [-1])
            return True
        except StoreUnavailable:
            return False
