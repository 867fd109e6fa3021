"""Encode online feature values straight to the model's ids, with lookup tables built once from the
checkpoint's feature schema: no pandas and no per-request Python beyond one call per stored row.

This is the serving twin of `FeatureSchema.encode` (the training-set encoder). The two must agree on
every value: tests/serving/test_encoding.py runs every row of the test split through both and
requires identical ids and masks. The rules it mirrors:
  categorical - str(value) in the vocabulary -> its id, else OOV; integral floats lose their '.0';
  numeric     - float(value) bucketised by the training quantiles (searchsorted, side="right");
  multi       - a non-empty list: its non-null tokens, the first `max_len`, each in the vocabulary
                or OOV; an empty list or null is missing;
  null / NaN  - MISSING, and the field's mask is set.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from models.schema import N_RESERVED, OOV, FeatureSchema, FieldSpec, _listlike_empty

def proto_to_python(value: Any) -> Any:
    """A Feast `Value` proto as the plain Python value the offline join would hold (None for null)."""
    if value is None:
        return None
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    raw = getattr(value, kind)
    return list(raw.val) if kind.endswith("_list_val") else raw


@dataclass(frozen=True)
class BlockLayout:
    """Where a group of fields (one view, or several views of one entity) sits in the model's input."""

    fields: tuple[int, ...]  # schema field indices, in block order
    single: tuple[int, ...]  # positions in the block's single-id columns -> schema field index
    multi: tuple[int, ...]  # positions in the block's multi-id slots -> schema field index
    single_view: np.ndarray  # for each single column: which of the block's views it belongs to
    multi_view: np.ndarray  # for each multi slot: which of the block's views it belongs to
    mask_view: np.ndarray  # for each mask column (= each field in `fields`): its view


class FieldEncoder:
    """One field's lookup table: a value -> its id (single fields) or ids (multi fields)."""

    def __init__(self, spec: FieldSpec, multi_len: int):
        self.spec = spec
        self.kind = spec.kind
        self.multi_len = multi_len
        self.vocab = {token: i + N_RESERVED for i, token in enumerate(spec.vocab)}
        self.boundaries = np.asarray(spec.boundaries, np.float64)

    def is_missing(self, value: Any) -> bool:
        if value is None:
            return True
        if self.kind == "multi":  # the training encoder's rule: a null, NaN or empty list is missing
            return not isinstance(value, str) and _listlike_empty(value)
        return isinstance(value, float) and math.isnan(value)

    def single_id(self, value: Any) -> int:
        """The id of a present categorical or numeric value."""
        if self.kind == "numeric":
            return N_RESERVED + int(np.searchsorted(self.boundaries, float(value), side="right"))
        return self.vocab.get(_category(value), OOV)

    def multi_ids(self, value: Sequence[Any]) -> list[int]:
        """The ids of a present list's tokens (nulls dropped, at most max_len)."""
        tokens = [t for t in value if t is not None and not (isinstance(t, float) and math.isnan(t))]
        return [self.vocab.get(str(t), OOV) for t in tokens[: self.spec.max_len]]


def _category(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (np.integer, np.floating)):
        return _category(value.item())
    return str(value)


class SampleEncoder:
    """Lookup tables for every field of a checkpoint's feature schema, and the column layout that
    puts per-entity blocks (user views, item views, request context) back into the model's order."""

    def __init__(self, schema: FeatureSchema):
        self.schema = schema
        self.multi_len = schema.multi_len
        self.fields = [FieldEncoder(f, schema.multi_len) for f in schema.fields]
        self.index = {f.name: i for i, f in enumerate(schema.fields)}
        self.single_pos = {field: j for j, field in enumerate(schema.single_fields)}
        self.multi_pos = {field: j for j, field in enumerate(schema.multi_fields)}

    def layout(self, views: Sequence[str]) -> BlockLayout:
        """The block of all schema fields of `views` (in schema order)."""
        view_of = {v: k for k, v in enumerate(views)}
        fields = tuple(i for i, f in enumerate(self.schema.fields) if f.view in view_of)
        single = tuple(i for i in fields if self.schema.fields[i].kind != "multi")
        multi = tuple(i for i in fields if self.schema.fields[i].kind == "multi")
        view = lambda idx: np.asarray([view_of[self.schema.fields[i].view] for i in idx], np.int64)  # noqa: E731
        return BlockLayout(fields, single, multi, view(single), view(multi), view(fields))

    def encode_rows(self, layout: BlockLayout, rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(single ids (R, n_single), multi ids (R, n_multi, L), mask (R, n_fields)) for rows of plain
        values keyed by feature name (a name absent from a row is missing)."""
        n = len(rows)
        single = np.zeros((n, len(layout.single)), np.int64)
        multi = np.zeros((n, len(layout.multi), self.multi_len), np.int64)
        mask = np.zeros((n, len(layout.fields)), bool)
        encoders = [self.fields[i] for i in layout.fields]
        single_col = {field: j for j, field in enumerate(layout.single)}
        multi_col = {field: j for j, field in enumerate(layout.multi)}
        for r, row in enumerate(rows):
            for c, (field, enc) in enumerate(zip(layout.fields, encoders)):
                value = row.get(enc.spec.name)
                if enc.is_missing(value):
                    mask[r, c] = True
                elif enc.kind == "multi":
                    ids = enc.multi_ids(value)
                    multi[r, multi_col[field], : len(ids)] = ids
                else:
                    single[r, single_col[field]] = enc.single_id(value)
        return single, multi, mask

