"""The serving log: one JSON line per answered /rank or /score request, into size-bounded rotating
files. A record is encoded with orjson (about 15 us for 100 candidates; the standard json module took
0.7 ms) and appended under a lock by the request's own thread: a background writer thread was tried
and held the GIL against the request threads. A write that fails (disk full) is counted, never raised.

Each worker writes its own file, `<log_dir>/serving-w<worker>.jsonl` (rotated to `.1`, `.2`, ...; at most
`max_bytes * files` bytes per worker). If the writer falls behind, records are dropped and counted
(`dropped`), never queued without bound. The record schema (SCHEMA_VERSION) is documented in the README
and read back by `read_serving_log`:

    {"schema": 1, "request_id": "...", "logged_at": "2026-...Z", "endpoint": "rank",
     "request_time": "1998-03-10T20:00:00Z", "model": "asymdiffrec:<version>", "degraded": false,
     "user_ids": [...], "item_ids": [...], "scores": [...],           # one entry per sample
     "missing": {"<view>": [0|1, ...]},                                # per view, per sample
     "age_s": {"<view>": [seconds | null, ...]},                       # stored views; null = missing
     "missing_count": [...],                                           # missing model fields per sample
     "ids": {"<field>": [...]}}                                        # encoded id per single-value field (0 = missing)
"""
from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import orjson

if TYPE_CHECKING:
    import pandas as pd

    from serving.online_features import OnlineBatch

SCHEMA_VERSION = 1
log = logging.getLogger("asymdiffrec.serving")
FILE_PREFIX = "serving-"


class ServingLog:
    """JSON-lines writer with size-based rotation; thread-safe."""

    def __init__(self, folder: Path, worker: str, max_bytes: int, files: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"{FILE_PREFIX}{worker}.jsonl"
        self.max_bytes = max(1, int(max_bytes))
        self.files = max(1, int(files))
        self.dropped = 0  # records that could not be written (disk full, permissions): counted, never raised
        self._lock = threading.Lock()
        self._out = self.path.open("ab", buffering=0)  # unbuffered: each record reaches the file in one write
        self._size = self.path.stat().st_size

    def write(self, record: dict[str, Any]) -> None:
        """Append a record (numpy arrays welcome) as one line."""
        line = orjson.dumps(record, default=_plain, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)
        with self._lock:
            try:
                if self._size and self._size + len(line) > self.max_bytes:
                    self._rotate()
                self._out.write(line)
                self._size += len(line)
            except OSError as err:
                self.dropped += 1
                if self.dropped == 1:
                    log.error("serving log %s: %s; records are dropped (asymdiffrec_serving_log_dropped_total)", self.path, err)

    def flush(self) -> None:
        with self._lock:
            self._out.flush()

    def _rotate(self) -> None:
        self._out.close()
        for k in range(self.files - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{k}")
            newer = self.path.with_name(f"{self.path.name}.{k - 1}") if k > 1 else self.path
            if newer.exists():
                newer.replace(older)
        if self.files == 1:
            self.path.unlink(missing_ok=True)
        self._out = self.path.open("ab", buffering=0)
        self._size = 0


def serving_record(*, request_id: str, endpoint: str, request_time: datetime, model: str, user_ids: Any, item_ids: Any,
                   scores: np.ndarray, samples: "OnlineBatch", single_fields: list[str], stored_views: frozenset[str]) -> dict[str, Any]:
    """The log record of one answer (the schema above); the service and any replay of traffic both build it here."""
    single = samples.batch.single.numpy().T.copy()  # one contiguous row per field
    missing = samples.view_missing.T.astype(np.int8)
    return {
        "schema": SCHEMA_VERSION,
        "request_id": request_id,
        "logged_at": utc_iso(datetime.now(timezone.utc)),
        "endpoint": endpoint,
        "request_time": utc_iso(request_time),
        "model": model,
        "degraded": samples.degraded,
        "user_ids": np.asarray(user_ids, np.int64),
        "item_ids": np.asarray(item_ids, np.int64),
        "scores": np.asarray(scores, np.float64),
        "missing": {v: missing[k] for k, v in enumerate(samples.views)},
        "age_s": {v: seconds_or_null(samples.age_s[:, k]) for k, v in enumerate(samples.views) if v in stored_views},
        "missing_count": samples.batch.mask.numpy().sum(1),
        "ids": {name: single[j] for j, name in enumerate(single_fields)},
    }


def _plain(value: Any) -> Any:
    """What orjson does not encode by itself: non-contiguous arrays, other numpy scalars."""
    if isinstance(value, np.ndarray):
        return np.ascontiguousarray(value).tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot log a {type(value).__name__}")


def seconds_or_null(ages: np.ndarray) -> list[int | None]:
    """Float seconds with NaN for missing -> whole seconds and nulls."""
    return [None if a != a else int(a) for a in ages.tolist()]


def utc_iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def read_serving_log(folder: Path) -> Iterator[dict[str, Any]]:
    """Every record under `folder` and its subfolders (one per replica, when a deployment mirrors each
    pod's log to a bucket), per worker oldest file first (rotated files before the live one)."""
    paths = sorted(Path(folder).rglob(f"{FILE_PREFIX}*.jsonl*"),
                   key=lambda p: (str(p.parent), p.name.split(".jsonl")[0], -_rotation(p)))
    for path in paths:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)


def _rotation(path: Path) -> int:
    suffix = path.name.rsplit(".jsonl", 1)[1].lstrip(".")
    return int(suffix) if suffix.isdigit() else 0


OUTCOMES_KEY = ["request_id", "item_id"]


def log_frame(records: list[dict[str, Any]]) -> "pd.DataFrame":
    """Serving-log records as one row per sample: request_id, user_id, item_id, request_time (UTC), score,
    model, missing_count, missing__<view> (0/1), age__<view> (seconds, NaN where missing, stored views) and
    id__<field> (the encoded single-value ids). Every record must list the views and fields of the first."""
    import pandas as pd

    if not records:
        raise ValueError("the serving log holds no records; replay traffic (dvc repro replay) or point at a service's serving.log_dir")
    views, stored, fields = list(records[0]["missing"]), list(records[0]["age_s"]), list(records[0]["ids"])
    for r in records:
        if list(r["missing"]) != views or list(r["age_s"]) != stored or list(r["ids"]) != fields:
            raise ValueError(
                f"serving log record {r.get('request_id')!r} lists views {list(r['missing'])} and fields {list(r['ids'])}, "
                f"the first record {views} and {fields}; read the logs of one feature contract and model schema at a time"
            )
    sizes = np.asarray([len(r["item_ids"]) for r in records], np.int64)

    def flat(get) -> list:
        return [v for r in records for v in get(r)]

    columns: dict[str, Any] = {
        "request_id": np.repeat(np.asarray([r["request_id"] for r in records], object), sizes),
        "user_id": np.asarray(flat(lambda r: r["user_ids"]), np.int64),
        "item_id": np.asarray(flat(lambda r: r["item_ids"]), np.int64),
        "request_time": np.repeat(pd.to_datetime([r["request_time"] for r in records], utc=True, format="ISO8601").as_unit("ns"), sizes),
        "score": np.asarray(flat(lambda r: r["scores"]), np.float64),
        "model": np.repeat(np.asarray([r.get("model") for r in records], object), sizes),
        "missing_count": np.asarray(flat(lambda r: r["missing_count"]), np.int64),
    }
    for v in views:
        columns[f"missing__{v}"] = np.asarray(flat(lambda r, v=v: r["missing"][v]), np.int8)
    for v in stored:
        columns[f"age__{v}"] = np.asarray(flat(lambda r, v=v: r["age_s"][v]), np.float64)  # None -> NaN
    for f in fields:
        columns[f"id__{f}"] = np.asarray(flat(lambda r, f=f: r["ids"][f]), np.int64)
    return pd.DataFrame(columns)


def read_outcomes(path: Path | None) -> "pd.DataFrame | None":
    """The labels that joined later (JSON lines of request_id, item_id, label), or None when there are none yet."""
    import pandas as pd

    if path is None or not Path(path).exists() or not Path(path).stat().st_size:
        return None
    return pd.read_json(path, lines=True)


def join_outcomes(samples: "pd.DataFrame", outcomes: "pd.DataFrame | None") -> "pd.DataFrame":
    """The logged samples that have an outcome, with its `label` (by request_id and item_id; a later outcome
    of the same pair replaces an earlier one)."""
    if outcomes is None or not len(outcomes):
        return samples.iloc[:0].assign(label=np.zeros(0, np.int64))
    missing = sorted({*OUTCOMES_KEY, "label"} - set(outcomes.columns))
    if missing:
        raise ValueError(f"outcomes lack column(s) {missing}; they are keyed by request_id + item_id with a 0/1 label")
    labels = outcomes[[*OUTCOMES_KEY, "label"]].drop_duplicates(OUTCOMES_KEY, keep="last")
    return samples.merge(labels, on=OUTCOMES_KEY, how="inner")
