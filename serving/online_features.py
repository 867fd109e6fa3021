"""The online sample path: (users, items, request time) -> the model's encoded batch, with the training
set's missing semantics, in numpy.

Per request: the distinct users' rows are read once (one `online_read` per user view), the candidates'
item rows come from the item cache (one `online_read` per item view for the misses), the request
context comes from the on-demand view's own function (memoised per request second), each view's TTL is
applied to its availability time (`<view>_ts`) exactly as the point-in-time join applies it, and the
blocks are put into the model's field order with index arrays computed once. No pandas per request.

If the online store fails, the stored views it could not return are missing, the request context is
still computed, and the answer is marked degraded; cached item rows are still served (their TTL
still applies), since they are exactly what the store held.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from feast import FeatureStore

from components.data.contract import DatasetSchema, schema_from_store
from feature_repo.definitions import REQUEST_TIME_FIELD, request_context_frame
from models.schema import EncodedBatch, FeatureSchema
from serving.config import ServingConfig
from serving.encoding import BlockLayout, SampleEncoder, proto_to_python
from serving.item_cache import ItemCache, ItemRows
from serving.online_store import OnlineReader, Row, StoreUnavailable

USER_KEY, ITEM_KEY = "user_id", "item_id"
NO_TS = np.iinfo(np.int64).min  # a view without a row (or without an availability time)


def serving_schema(store: FeatureStore) -> DatasetSchema:
    """The dataset contract as the store's registry holds it: the views, fields and TTLs the offline
    join used."""
    return schema_from_store(store)


def request_unix_s(request_time: datetime) -> int:
    """The request time as the point-in-time join's `request_unix_s` (whole seconds)."""
    return int(request_time.timestamp())


def fresh(ts: np.ndarray, ttl_s: np.ndarray, unix_s: np.ndarray) -> np.ndarray:
    """The TTL rule, as the point-in-time join applies it: a value (available at `ts`, unix s; NO_TS: none)
    is served at `unix_s` when it became available at or before then and is at most its TTL old."""
    return (ts != NO_TS) & (ts <= unix_s) & (ts.astype(np.float64) >= unix_s - ttl_s)


def apply_ttl(online: pd.DataFrame, schema: DatasetSchema, unix_s: int) -> pd.DataFrame:
    """Blank every view that `fresh` rejects, on a frame of online rows (`<view>_ts` in unix s): the
    service's rule on a readable frame, for walkthroughs and debugging (the service applies it to
    encoded rows)."""
    online = online.copy()
    for view, info in schema.views.items():
        ts_column, ttl_hours = info.get("timestamp_column"), info.get("ttl_hours")
        if not ts_column:
            continue
        ts = pd.to_numeric(online[ts_column], errors="coerce")
        stamps = np.where(ts.notna(), ts.fillna(0), NO_TS).astype(np.int64)
        keep = fresh(stamps, np.float64(ttl_hours * 3600.0 if ttl_hours else np.inf), np.int64(unix_s))
        for column in [*info["features"], ts_column]:
            online[column] = online[column].astype(object).where(keep, None)
    return online


@dataclass(frozen=True)
class EntityGroup:
    """The stored views keyed by one entity (the user's, or the item's), as one block of fields."""

    key: str
    views: tuple[str, ...]
    ts_columns: tuple[str, ...]
    ttl_s: np.ndarray  # (n_views,) float seconds; inf where the view has no TTL
    layout: BlockLayout


@dataclass
class OnlineBatch:
    """The model's input for one request, plus what the service reports and logs about it."""

    batch: EncodedBatch
    views: tuple[str, ...]  # every view of the contract, in contract order
    view_missing: np.ndarray  # (N, n_views) bool: the view's fields are all missing
    age_s: np.ndarray  # (N, n_views) float: seconds since the value became available (NaN: missing or request-time)
    degraded: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def missing(self) -> dict[str, float]:
        """Per view: the share of the samples missing it."""
        share = self.view_missing.mean(0) if len(self.view_missing) else np.zeros(len(self.views))
        return {v: float(s) for v, s in zip(self.views, share)}


class OnlineFeatures:
    """Builds encoded samples from the online store; one per service process (thread-safe)."""

    def __init__(self, store: FeatureStore, model_schema: FeatureSchema, config: ServingConfig):
        """`config` gives the item cache's size and how often the store is checked and retried."""
        self.contract = serving_schema(store)
        self.encoder = SampleEncoder(model_schema)
        self.reader = OnlineReader(store, config.store_check_seconds, config.reconnect_seconds)
        self.cache = ItemCache(config.item_cache_size)
        self.views = tuple(self.contract.views)
        self.users = self._group(USER_KEY)
        self.items = self._group(ITEM_KEY)
        self.stored_views = frozenset((*self.users.views, *self.items.views))
        self.single_field_names = [model_schema.fields[i].name for i in model_schema.single_fields]
        self.context_layout = self.encoder.layout(self.context_views())
        self._context: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._context_lock = threading.Lock()
        self._check_coverage(model_schema)
        blocks = (self.users.layout, self.items.layout, self.context_layout)
        single_pos = self.encoder.single_pos
        multi_pos = self.encoder.multi_pos
        self._single_order = np.argsort([single_pos[f] for b in blocks for f in b.single])
        self._multi_order = np.argsort([multi_pos[f] for b in blocks for f in b.multi])
        self._mask_order = np.argsort([f for b in blocks for f in b.fields])
        # For reporting: which mask columns (model order) belong to each contract view.
        view_of_field = [f.view for f in model_schema.fields]
        self._view_fields = [np.flatnonzero(np.asarray(view_of_field) == v) for v in self.views]

    # -- set-up --------------------------------------------------------------------------------
    def _group(self, key: str) -> EntityGroup:
        views = tuple(
            v for v, info in self.contract.views.items()
            if info.get("timestamp_column") and key in self.reader.views[v].join_keys
        )
        ttl = [self.contract.views[v].get("ttl_hours") for v in views]
        return EntityGroup(
            key=key,
            views=views,
            ts_columns=tuple(self.contract.views[v]["timestamp_column"] for v in views),
            ttl_s=np.asarray([h * 3600.0 if h else np.inf for h in ttl], np.float64),
            layout=self.encoder.layout(views),
        )

    def _check_coverage(self, model_schema: FeatureSchema) -> None:
        served = {*self.users.views, *self.items.views, *self.context_views()}
        for spec in model_schema.fields:
            if spec.view not in served:
                raise ValueError(
                    f"model feature '{spec.name}' comes from view '{spec.view}', which the online store does not "
                    f"serve by user_id or item_id (served views: {sorted(served)}); retrain on the applied feature service"
                )
        for view in self.contract.views:
            keys = self.reader.views[view].join_keys if view in self.reader.views else []
            if self.contract.views[view].get("timestamp_column") and not ({USER_KEY, ITEM_KEY} & set(keys)):
                raise ValueError(f"view '{view}' is keyed by {keys}; the service reads views keyed by {USER_KEY} or {ITEM_KEY}")

    def context_views(self) -> tuple[str, ...]:
        """The request-time views (no stored row, no availability time)."""
        return tuple(v for v, info in self.contract.views.items() if not info.get("timestamp_column"))

    # -- reading -------------------------------------------------------------------------------
    def _read(self, group: EntityGroup, ids: list[int]) -> ItemRows:
        """The group's rows for `ids`, encoded (raises StoreUnavailable)."""
        return self.decode(group, [self.reader.read(view, group.key, ids) for view in group.views])

    def decode(self, group: EntityGroup, per_view: Sequence[Sequence[Row]]) -> ItemRows:
        """Encode what `online_read` returned for each of the group's views (same entities, same order)."""
        n = len(per_view[0]) if per_view else 0
        merged: list[dict] = [{} for _ in range(n)]
        ts = np.full((n, len(group.views)), NO_TS, np.int64)
        for v, (rows, ts_column) in enumerate(zip(per_view, group.ts_columns)):
            for r, (_, values) in enumerate(rows):
                if not values:
                    continue
                decoded = {name: proto_to_python(value) for name, value in values.items()}
                when = decoded.get(ts_column)
                if when is not None:
                    ts[r, v] = int(when)
                merged[r].update(decoded)
        single, multi, mask = self.encoder.encode_rows(group.layout, merged)
        return ItemRows(single, multi, mask, ts)

    def _absent(self, group: EntityGroup, n: int) -> ItemRows:
        layout = group.layout
        return ItemRows(
            np.zeros((n, len(layout.single)), np.int64),
            np.zeros((n, len(layout.multi), self.encoder.multi_len), np.int64),
            np.ones((n, len(layout.fields)), bool),
            np.full((n, len(group.views)), NO_TS, np.int64),
        )

    def _user_rows(self, user_ids: np.ndarray, errors: list[str]) -> ItemRows:
        distinct, inverse = np.unique(user_ids, return_inverse=True)
        try:
            rows = self._read(self.users, distinct.tolist())
        except StoreUnavailable as err:
            errors.append(str(err))
            rows = self._absent(self.users, len(distinct))
        return rows.take(inverse.reshape(-1))

    def _item_rows(self, item_ids: np.ndarray, errors: list[str]) -> ItemRows:
        ids = item_ids.tolist()
        generation = self.reader.generation
        hit, cached = self.cache.lookup(ids, generation)
        if hit.all():
            return cached  # type: ignore[return-value]
        missed = item_ids[~hit]
        distinct, inverse = np.unique(missed, return_inverse=True)
        try:
            read = self._read(self.items, distinct.tolist())
            self.cache.insert(distinct.tolist(), read, generation)
        except StoreUnavailable as err:
            errors.append(str(err))
            read = self._absent(self.items, len(distinct))
        if cached is None:
            return read.take(inverse.reshape(-1))
        rows = ItemRows.empty_like(read, len(ids))
        for name in ("single", "multi", "mask", "ts"):
            out = getattr(rows, name)
            out[hit] = getattr(cached, name)
            out[~hit] = getattr(read, name)[inverse.reshape(-1)]
        return rows

    def _context_rows(self, unix_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The request context's encoded rows, computed by the on-demand view's own function
        (memoised per request second: one call per second, not one per request)."""
        distinct, inverse = np.unique(unix_s, return_inverse=True)
        blocks = [self._context_row(int(t)) for t in distinct]
        if len(blocks) == 1:
            return tuple(np.broadcast_to(a, (len(unix_s), *a.shape[1:])) for a in blocks[0])  # type: ignore[return-value]
        return tuple(np.concatenate(parts)[inverse.reshape(-1)] for parts in zip(*blocks))  # type: ignore[return-value]

    def _context_row(self, unix_s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        found = self._context.get(unix_s)
        if found is None:
            values = request_context_frame(pd.DataFrame({REQUEST_TIME_FIELD: [unix_s]})).iloc[0].to_dict()
            found = self.encoder.encode_rows(self.context_layout, [values])
            with self._context_lock:
                if len(self._context) > 4096:
                    self._context.clear()
                self._context[unix_s] = found
        return found

    # -- the sample ----------------------------------------------------------------------------
    @staticmethod
    def _apply_ttl(rows: ItemRows, group: EntityGroup, unix_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Blank every view whose value is older than its TTL (or newer than the request) at request time."""
        served = fresh(rows.ts, group.ttl_s, unix_s.reshape(-1, 1))
        stale = ~served
        layout = group.layout
        single = np.where(stale[:, layout.single_view], 0, rows.single)
        multi = np.where(stale[:, layout.multi_view][:, :, None], 0, rows.multi)
        mask = rows.mask | stale[:, layout.mask_view]
        return single, multi, mask, served

    def build(self, user_ids: Sequence[int] | np.ndarray, item_ids: Sequence[int] | np.ndarray, request_time: datetime) -> OnlineBatch:
        """Samples for the (user, item) pairs at `request_time` (one user id for all items, or one per item)."""
        items = np.asarray(item_ids, dtype=np.int64).reshape(-1)
        users = np.asarray(user_ids, dtype=np.int64).reshape(-1)
        if users.size == 1 and items.size != 1:
            users = np.repeat(users, items.size)
        if users.size != items.size:
            raise ValueError(f"user_id: {users.size} user ids for {items.size} item ids; give one per item or a single one")
        errors: list[str] = []
        user_rows = self._user_rows(users, errors)
        item_rows = self._item_rows(items, errors)
        return self.assemble(user_rows, item_rows, np.full(items.size, request_unix_s(request_time), np.int64), errors)

    def assemble(self, user_rows: ItemRows, item_rows: ItemRows, unix_s: np.ndarray, errors: list[str] | None = None) -> OnlineBatch:
        """The model's batch from each sample's user rows, item rows and request time (unix s, per sample):
        TTLs applied, the request context added, the columns put into the model's order."""
        errors = errors or []
        u_single, u_multi, u_mask, u_fresh = self._apply_ttl(user_rows, self.users, unix_s)
        i_single, i_multi, i_mask, i_fresh = self._apply_ttl(item_rows, self.items, unix_s)
        c_single, c_multi, c_mask = self._context_rows(unix_s)
        single = np.concatenate([u_single, i_single, c_single], axis=1)[:, self._single_order]
        multi = np.concatenate([u_multi, i_multi, c_multi], axis=1)[:, self._multi_order]
        mask = np.concatenate([u_mask, i_mask, c_mask], axis=1)[:, self._mask_order]
        batch = EncodedBatch(torch.from_numpy(single), torch.from_numpy(multi), torch.from_numpy(mask))
        view_missing, age = self._report(mask, user_rows, item_rows, u_fresh, i_fresh, unix_s)
        return OnlineBatch(batch, self.views, view_missing, age, degraded=bool(errors), errors=errors)

    def _report(self, mask: np.ndarray, user_rows: ItemRows, item_rows: ItemRows, u_fresh: np.ndarray,
                i_fresh: np.ndarray, unix_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per sample and view: whether the view is missing, and the age of its value (seconds)."""
        n = len(mask)
        view_missing = np.zeros((n, len(self.views)), bool)
        age = np.full((n, len(self.views)), np.nan)
        for k, view in enumerate(self.views):
            columns = self._view_fields[k]
            view_missing[:, k] = mask[:, columns].all(1) if len(columns) else False
        for group, rows, fresh in ((self.users, user_rows, u_fresh), (self.items, item_rows, i_fresh)):
            for v, view in enumerate(group.views):
                k = self.views.index(view)
                if not len(self._view_fields[k]):
                    view_missing[:, k] = ~fresh[:, v]
                present = fresh[:, v] & ~view_missing[:, k]
                age[present, k] = unix_s[present] - rows.ts[present, v]
        return view_missing, age
