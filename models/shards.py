"""Training data streamed from Parquet: each rank reads its own shard, in chunks.

The in-memory path (`load_dataset` + `FeatureSchema.encode`) holds the whole training split as a
pandas frame and then as tensors, so its memory grows with the data. Here a process holds one chunk
(`chunk_rows` rows, plus the Parquet row group being read) whatever the file's size:

- `fit_schema_from_parquet` fits the vocabularies, buckets and missing-count histogram chunk by
  chunk (the numeric buckets' exact quantiles hold one numeric column's values at a time);
- `ParquetShard` gives rank r of W the rows [r*n, (r+1)*n) with n = rows // W (every rank takes the
  same number of steps, as DDP needs), and yields mini-batches: the file's row groups in a seeded
  random order, each streamed in chunks, rows shuffled inside each chunk, leftovers carried into the
  next chunk so batches are full. Memory: one chunk, plus the row group pyarrow is reading.

Shuffling is therefore by chunk, not over the whole split: with chunks of 64k rows and a time-ordered
file, a batch mixes rows from one stretch of time. `models.train.train` takes either source.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from models.schema import EncodedBatch, FeatureSchema, _as_str, _is_missing, _numeric


def fit_schema_from_parquet(
    path: str | Path, features: Sequence[dict[str, str]], *, chunk_rows: int = 65_536, label: str = "label",
    user_key: str = "user_id", min_count: int = 1, n_buckets: int = 10, max_multi_len: int = 8,
) -> FeatureSchema:
    """`FeatureSchema.fit` on a Parquet file, chunk by chunk: the same vocabularies, buckets and
    missing-count histogram (a test holds them equal). Memory: the category counts, one chunk, and the
    values of one numeric column at a time (8 bytes per row), which exact quantiles need."""
    file = pq.ParquetFile(path)
    specs = FeatureSchema.fit(file.schema_arrow.empty_table().to_pandas(), features, label=label, user_key=user_key).fields
    counts: dict[str, Counter] = {f.name: Counter() for f in specs if f.kind != "numeric"}
    max_len = {f.name: 0 for f in specs if f.kind == "multi"}
    missing = np.zeros(len(specs) + 1, np.int64)
    rows = 0
    for batch in file.iter_batches(batch_size=chunk_rows, columns=[f.name for f in specs]):
        frame = batch.to_pandas()
        masks = np.stack([_is_missing(frame[f.name], f.kind) for f in specs], axis=1)
        missing += np.bincount(masks.sum(1), minlength=len(specs) + 1)
        rows += len(frame)
        for i, f in enumerate(specs):
            present = frame[f.name][~masks[:, i]]
            if f.kind == "categorical":
                counts[f.name].update(present.value_counts().to_dict())  # raw values: how they print is decided on all of them
            elif f.kind == "multi":
                counts[f.name].update(present.explode().dropna().astype(str).value_counts().to_dict())
                if len(present):
                    max_len[f.name] = max(max_len[f.name], int(present.map(len).max()))
    for f in specs:
        if f.kind == "categorical":
            raw = pd.Series(list(counts[f.name].values()), index=_as_str(pd.Series(list(counts[f.name].keys()))).to_numpy())
            by_text = raw.groupby(level=0).sum()
            f.vocab = sorted(by_text[by_text >= min_count].index.tolist())
        elif f.kind == "multi":
            f.vocab = sorted(token for token, n in counts[f.name].items() if n >= min_count)
            f.max_len = int(min(max_multi_len, max(1, max_len[f.name] or 1)))
        else:
            values = []
            for batch in file.iter_batches(batch_size=chunk_rows, columns=[f.name]):
                column = batch.to_pandas()[f.name]
                v = _numeric(column[~_is_missing(column, "numeric")], f.name).to_numpy(dtype=np.float64)
                values.append(v[np.isfinite(v)])
            values = np.concatenate(values) if values else np.zeros(0)
            if len(values):
                qs = np.quantile(values, np.linspace(0, 1, n_buckets + 1)[1:-1])
                f.boundaries = [float(b) for b in np.unique(qs)]
    schema = FeatureSchema(fields=specs, label=label, user_key=user_key)
    schema.missing_count_hist = (missing / max(1, rows)).tolist()
    return schema


def concat(batches: Sequence[EncodedBatch]) -> EncodedBatch:
    if len(batches) == 1:
        return batches[0]
    cat = lambda name: None if getattr(batches[0], name) is None else torch.cat([getattr(b, name) for b in batches])  # noqa: E731
    return EncodedBatch(cat("single"), cat("multi"), cat("mask"), cat("label"), cat("user"))


@dataclass
class ParquetShard:
    """Rank `rank`'s shard of a Parquet training file, encoded chunk by chunk."""

    path: Path
    schema: FeatureSchema
    rank: int = 0
    world_size: int = 1
    chunk_rows: int = 65_536
    rows: int = field(init=False)
    start: int = field(init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside a world of {self.world_size} processes")
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {self.chunk_rows}")
        meta = pq.ParquetFile(self.path).metadata
        self.rows = meta.num_rows // self.world_size
        self.start = self.rank * self.rows
        columns = set(pq.read_schema(self.path).names)
        if self.schema.label not in columns:
            raise ValueError(f"{self.path} has no label column '{self.schema.label}'; training needs it")
        self.columns = [*self.schema.names, self.schema.label, *([self.schema.user_key] if self.schema.user_key in columns else [])]

    def __len__(self) -> int:
        return self.rows

    def row_groups(self) -> list[tuple[int, int, int]]:
        """(row group, first, last row of it in this shard, relative to the group) for every group the shard touches."""
        meta = pq.ParquetFile(self.path).metadata
        groups, first, end = [], 0, self.start + self.rows
        for group in range(meta.num_row_groups):
            size = meta.row_group(group).num_rows
            lo, hi = max(self.start, first), min(end, first + size)
            if lo < hi:
                groups.append((group, lo - first, hi - first))
            first += size
        return groups

    def chunks(self, file: pq.ParquetFile, group: int, lo: int, hi: int) -> Iterator[EncodedBatch]:
        """Rows [lo, hi) of a row group, streamed `chunk_rows` at a time and encoded."""
        row = 0
        for batch in file.iter_batches(batch_size=self.chunk_rows, row_groups=[group], columns=self.columns):
            a, b = max(row, lo), min(row + batch.num_rows, hi)
            if a < b:
                yield self.schema.encode(batch.slice(a - row, b - a).to_pandas(), with_label=True)
            row += batch.num_rows
            if row >= hi:
                break

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[EncodedBatch]:
        """One epoch: ceil(rows / batch_size) batches, full except the last. Row groups come in a seeded
        random order, each read in chunks; rows are shuffled within a chunk."""
        file = pq.ParquetFile(self.path)
        groups = self.row_groups()
        pending: EncodedBatch | None = None
        for i in torch.randperm(len(groups), generator=generator).tolist():
            for chunk in self.chunks(file, *groups[i]):
                chunk = chunk.index(torch.randperm(len(chunk), generator=generator))
                if pending is not None:
                    chunk = concat([pending, chunk])
                full = len(chunk) // batch_size * batch_size
                for lo in range(0, full, batch_size):
                    yield chunk.index(slice(lo, lo + batch_size))
                pending = chunk.index(slice(full, len(chunk))) if full < len(chunk) else None
        if pending is not None:
            yield pending

    def steps(self, batch_size: int) -> int:
        return math.ceil(self.rows / batch_size)

