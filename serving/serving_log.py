"""The serving log: one JSON line per answered /rank or /score request, written by a background
thread into size-bounded rotating files, so logging never delays or fails a request.

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
import queue
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np

SCHEMA_VERSION = 1
FILE_PREFIX = "serving-"


class ServingLog:
    """Asynchronous JSON-lines writer with size-based rotation."""

    def __init__(self, folder: Path, worker: str, max_bytes: int, files: int, queue_size: int = 10_000):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"{FILE_PREFIX}{worker}.jsonl"
        self.max_bytes = max(1, int(max_bytes))
        self.files = max(1, int(files))
        self.written = 0
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="serving-log", daemon=True)
        self._thread.start()

    def write(self, record: dict[str, Any]) -> None:
        """Queue a record (numpy arrays welcome: they are converted in the writer thread)."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every queued record is on disk."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def _rotate(self) -> None:
        for k in range(self.files - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{k}")
            newer = self.path.with_name(f"{self.path.name}.{k - 1}") if k > 1 else self.path
            if newer.exists():
                newer.replace(older)
        if self.files == 1:
            self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        out = self.path.open("a", encoding="utf-8")
        size = self.path.stat().st_size
        while True:
            item = self._queue.get()
            if isinstance(item, threading.Event):
                out.flush()
                item.set()
                continue
            line = json.dumps(item, default=_plain, separators=(",", ":")) + "\n"
            if size and size + len(line) > self.max_bytes:
                out.close()
                self._rotate()
                out, size = self.path.open("a", encoding="utf-8"), 0
            out.write(line)
            size += len(line)
            self.written += 1
            if self._queue.empty():
                out.flush()


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            return [None if np.isnan(v) else (int(v) if float(v).is_integer() else float(v)) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime):
        return utc_iso(value)
    raise TypeError(f"cannot log a {type(value).__name__}")


def utc_iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def read_serving_log(folder: Path) -> Iterator[dict[str, Any]]:
    """Every record under `folder`, oldest file first (rotated files before the live one)."""
    paths = sorted(Path(folder).glob(f"{FILE_PREFIX}*.jsonl*"), key=lambda p: (p.name.split(".jsonl")[0], -_rotation(p)))
    for path in paths:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)


def _rotation(path: Path) -> int:
    suffix = path.name.rsplit(".jsonl", 1)[1].lstrip(".")
    return int(suffix) if suffix.isdigit() else 0
