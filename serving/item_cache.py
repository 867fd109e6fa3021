"""An in-process cache of encoded item rows, keyed by item id.

Item features change at most once per batch run, so a ranking request need not read its 100-1,000
candidates from the store each time. Each entry keeps the item's encoded values *and* each view's
availability time, so the TTL is still applied at request time (a cached value expires exactly when
the stored one would). Items without a row are cached as absent too. The cache is a fixed-size ring
of numpy rows (the oldest entry makes room: memory is bounded by `capacity`), and it empties itself
when the online reader opens a new connection (`generation` changed: the store was re-materialized,
replaced, or came back after an outage).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


@dataclass
class ItemRows:
    """Encoded rows of the item views: ids, missing mask and each view's availability time."""

    single: np.ndarray  # (N, n_single) int64
    multi: np.ndarray  # (N, n_multi, L) int64
    mask: np.ndarray  # (N, n_fields) bool
    ts: np.ndarray  # (N, n_views) int64 unix seconds; NO_TS where the view has no row

    def take(self, rows: np.ndarray) -> "ItemRows":
        return ItemRows(self.single[rows], self.multi[rows], self.mask[rows], self.ts[rows])

    @staticmethod
    def empty_like(template: "ItemRows", n: int) -> "ItemRows":
        return ItemRows(
            np.zeros((n, *template.single.shape[1:]), np.int64),
            np.zeros((n, *template.multi.shape[1:]), np.int64),
            np.zeros((n, *template.mask.shape[1:]), bool),
            np.zeros((n, *template.ts.shape[1:]), np.int64),
        )


class ItemCache:
    """Bounded cache of `ItemRows` by item id; `capacity=0` turns it off (every lookup misses)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.generation = 0
        self.hits = 0
        self.misses = 0
        self._slots: dict[int, int] = {}
        self._owner = np.zeros(capacity, np.int64)  # the item in each slot...
        self._used = np.zeros(capacity, bool)  # ...when the slot holds one (any int64 is a valid id)
        self._rows: ItemRows | None = None
        self._next = 0
        self._lock = threading.Lock()

    def _clear(self, generation: int) -> None:
        self._slots.clear()
        self._used[:] = False
        self._next = 0
        self.generation = generation

    def lookup(self, item_ids: list[int], generation: int) -> tuple[np.ndarray, ItemRows | None]:
        """(hit flags (N,), the hits' rows in order) for the ids; entries from an older store
        `generation` are dropped first."""
        with self._lock:
            if generation != self.generation:
                self._clear(generation)
            slots = np.fromiter((self._slots.get(i, -1) for i in item_ids), np.int64, len(item_ids))
            hit = slots >= 0
            n_hit = int(hit.sum())
            self.hits += n_hit
            self.misses += len(item_ids) - n_hit
            rows = self._rows.take(slots[hit]) if n_hit else None
        return hit, rows

    def insert(self, item_ids: list[int], rows: ItemRows, generation: int) -> None:
        """Store freshly read rows (read under `generation`; rows read before a newer one are dropped)."""
        if not self.capacity or not item_ids:
            return
        with self._lock:
            if generation != self.generation:
                if generation < self.generation:
                    return
                self._clear(generation)
            if self._rows is None:
                self._rows = ItemRows.empty_like(rows, self.capacity)
            for k, item in enumerate(item_ids[: self.capacity]):
                if item in self._slots:
                    continue
                slot = self._next
                self._next = (slot + 1) % self.capacity
                if self._used[slot]:  # the oldest entry makes room
                    self._slots.pop(int(self._owner[slot]), None)
                self._owner[slot], self._used[slot] = item, True
                self._slots[item] = slot
                self._rows.single[slot] = rows.single[k]
                self._rows.multi[slot] = rows.multi[k]
                self._rows.mask[slot] = rows.mask[k]
                self._rows.ts[slot] = rows.ts[k]
