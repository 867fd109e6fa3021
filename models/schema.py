"""The feature map: one description of every field, fitted on the training split.

It is the single source of truth for fields (FuxiCTR style): the embedding layer sizes its tables
from it, the forward process reads the feature-view groups from it, and serving encodes online
features with it. Everything is driven by the dataset's `features` list (name, view, kind); no
feature name is written into the model code.

Every field is encoded to integer ids with two reserved values:
  MISSING (0) - the value is null/NaN/None or an empty list; the model substitutes that field's
                learned missing embedding, so any missing mask is a valid input;
  OOV (1)     - a category never seen in training (or seen fewer than `min_count` times);
                serving maps it here instead of failing.
Numeric fields are bucketised by training quantiles, so every field is an id and every field has
one embedding per sample.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

MISSING = 0
OOV = 1
N_RESERVED = 2
KINDS = ("categorical", "numeric", "multi")
SCHEMA_VERSION = 1


@dataclass
class FieldSpec:
    """One feature field: where it comes from and how its values become ids."""

    name: str
    view: str
    kind: str
    vocab: list[str] = field(default_factory=list)  # categorical / multi tokens, in id order from N_RESERVED
    boundaries: list[float] = field(default_factory=list)  # numeric bucket edges (train quantiles)
    max_len: int = 0  # multi: tokens kept per sample

    @property
    def cardinality(self) -> int:
        """Number of ids, reserved ones included."""
        if self.kind == "numeric":
            return N_RESERVED + len(self.boundaries) + 1
        return N_RESERVED + len(self.vocab)


@dataclass
class EncodedBatch:
    """Tensors for a set of samples, in schema field order.

    `single` holds the ids of categorical and numeric fields, `multi` the padded token ids of
    multi-value fields (0 = padding), `mask` is 1 where a field is missing.
    """

    single: torch.Tensor  # (N, n_single) int64
    multi: torch.Tensor  # (N, n_multi, L) int64
    mask: torch.Tensor  # (N, n_fields) bool
    label: torch.Tensor | None = None  # (N,) float32
    user: torch.Tensor | None = None  # (N,) int64, for UAUC

    def __len__(self) -> int:
        return self.mask.shape[0]

    def index(self, idx: torch.Tensor | slice) -> "EncodedBatch":
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        return EncodedBatch(self.single[idx], self.multi[idx], self.mask[idx], pick(self.label), pick(self.user))

    def to(self, device: torch.device | str) -> "EncodedBatch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return EncodedBatch(move(self.single), move(self.multi), move(self.mask), move(self.label), move(self.user))

    def with_mask(self, mask: torch.Tensor) -> "EncodedBatch":
        """The same samples with another missing mask (extra masked fields use the missing embedding)."""
        if mask.shape != self.mask.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match the batch's {tuple(self.mask.shape)}")
        return EncodedBatch(self.single, self.multi, mask.bool(), self.label, self.user)


class SchemaError(ValueError):
    """Input that does not fit the schema; the message names the field and the fix."""


def _as_str(values: pd.Series) -> pd.Series:
    """Categories as strings; integral floats lose their '.0' so 3 and 3.0 are one category."""
    if pd.api.types.is_float_dtype(values.dtype):
        floats = values.to_numpy(dtype=np.float64)
        if np.isfinite(floats).all() and np.array_equal(np.round(floats), floats):
            values = values.astype("int64")
    return values.astype(str)


def _is_missing(values: pd.Series, kind: str) -> np.ndarray:
    if kind == "multi":
        return np.fromiter((v is None or (not isinstance(v, str) and _listlike_empty(v)) for v in values), bool, len(values))
    return values.isna().to_numpy()


def _listlike_empty(v: Any) -> bool:
    if isinstance(v, float):  # NaN stands for a null list
        return True
    try:
        return len(v) == 0
    except TypeError:
        return True


@dataclass
class FeatureSchema:
    """All fields, their vocabularies and buckets, plus training statistics the model may use."""

    fields: list[FieldSpec]
    label: str = "label"
    user_key: str = "user_id"
    missing_count_hist: list[float] = field(default_factory=list)  # share of train samples by missing count
    version: int = SCHEMA_VERSION

    # -- structure -----------------------------------------------------------------------------
    @property
    def n_fields(self) -> int:
        return len(self.fields)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def views(self) -> list[str]:
        """Feature-view groups, in first-seen order."""
        return list(dict.fromkeys(f.view for f in self.fields))

    @property
    def view_index(self) -> list[int]:
        """The group id of every field, in field order."""
        views = self.views
        return [views.index(f.view) for f in self.fields]

    @property
    def single_fields(self) -> list[int]:
        return [i for i, f in enumerate(self.fields) if f.kind != "multi"]

    @property
    def multi_fields(self) -> list[int]:
        return [i for i, f in enumerate(self.fields) if f.kind == "multi"]

    @property
    def multi_len(self) -> int:
        return max([self.fields[i].max_len for i in self.multi_fields], default=1)

    # -- fitting -------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        features: Sequence[dict[str, str]],
        *,
        label: str = "label",
        user_key: str = "user_id",
        min_count: int = 1,
        n_buckets: int = 10,
        max_multi_len: int = 8,
    ) -> "FeatureSchema":
        """Fit vocabularies and numeric buckets on the training split.

        `features` is the dataset's list of {"name", "view", "kind"}; columns not in it are ignored.
        """
        if not features:
            raise SchemaError("the feature list is empty; pass the 'features' list of the dataset's schema.json")
        _check_columns(frame, [f["name"] for f in features])
        specs = []
        for feat in features:
            for key in ("name", "view", "kind"):
                if key not in feat:
                    raise SchemaError(f"feature entry {feat!r} lacks '{key}'; each needs name, view and kind")
            name, view, kind = feat["name"], feat["view"], feat["kind"]
            if kind not in KINDS:
                raise SchemaError(f"feature '{name}' has kind '{kind}'; use one of {KINDS}")
            col = frame[name]
            present = col[~_is_missing(col, kind)]
            spec = FieldSpec(name=name, view=view, kind=kind)
            if kind == "categorical":
                counts = _as_str(present).value_counts()
                spec.vocab = sorted(counts[counts >= min_count].index.tolist())
            elif kind == "multi":
                tokens = present.explode().dropna().astype(str)
                counts = tokens.value_counts()
                spec.vocab = sorted(counts[counts >= min_count].index.tolist())
                lengths = present.map(len)
                spec.max_len = int(min(max_multi_len, max(1, lengths.max() if len(lengths) else 1)))
            else:
                values = _numeric(present, name).to_numpy(dtype=np.float64)
                values = values[np.isfinite(values)]
                if len(values):
                    qs = np.quantile(values, np.linspace(0, 1, n_buckets + 1)[1:-1])
                    spec.boundaries = [float(b) for b in np.unique(qs)]
            specs.append(spec)
        schema = cls(fields=specs, label=label, user_key=user_key)
        counts = schema.missing_mask(frame).sum(1)
        schema.missing_count_hist = (np.bincount(counts, minlength=schema.n_fields + 1) / max(1, len(frame))).tolist()
        return schema

    # -- encoding ------------------------------------------------------------------------------
    def missing_mask(self, frame: pd.DataFrame) -> np.ndarray:
        """(N, n_fields) bool, True where the value is missing."""
        _check_columns(frame, self.names)
        if not self.fields:
            return np.zeros((len(frame), 0), bool)
        return np.stack([_is_missing(frame[f.name], f.kind) for f in self.fields], axis=1)

    def encode(self, frame: pd.DataFrame, *, with_label: bool | None = None) -> EncodedBatch:
        """Turn a frame into id tensors and the missing mask. Unknown categories become OOV.

        The label and user columns are read when present (`with_label=True` requires the label).
        """
        _check_columns(frame, self.names)
        n = len(frame)
        mask = self.missing_mask(frame)
        single = np.zeros((n, len(self.single_fields)), np.int64)
        multi = np.zeros((n, len(self.multi_fields), self.multi_len), np.int64)
        for j, i in enumerate(self.single_fields):
            single[:, j] = self._encode_single(self.fields[i], frame[self.fields[i].name], mask[:, i])
        for j, i in enumerate(self.multi_fields):
            multi[:, j, : self.fields[i].max_len] = self._encode_multi(self.fields[i], frame[self.fields[i].name], mask[:, i])
        label = None
        if with_label or (with_label is None and self.label in frame.columns):
            _check_columns(frame, [self.label], what="label column")
            y = pd.to_numeric(frame[self.label], errors="coerce").to_numpy(dtype=np.float64)
            if np.isnan(y).any() or not np.isin(y, (0.0, 1.0)).all():
                raise SchemaError(f"label column '{self.label}' must hold only 0 and 1 (no nulls)")
            label = torch.from_numpy(y.astype(np.float32))
        user = None
        if self.user_key in frame.columns:
            user = torch.from_numpy(pd.to_numeric(frame[self.user_key]).to_numpy(dtype=np.int64))
        return EncodedBatch(torch.from_numpy(single), torch.from_numpy(multi), torch.from_numpy(mask), label, user)

    @staticmethod
    def _encode_single(spec: FieldSpec, col: pd.Series, missing: np.ndarray) -> np.ndarray:
        ids = np.full(len(col), MISSING, np.int64)
        present = col[~missing]
        if spec.kind == "categorical":
            codes = pd.Categorical(_as_str(present), categories=spec.vocab).codes.astype(np.int64)
            ids[~missing] = np.where(codes < 0, OOV, codes + N_RESERVED)
        else:
            values = _numeric(present, spec.name).to_numpy(dtype=np.float64)
            ids[~missing] = N_RESERVED + np.searchsorted(np.asarray(spec.boundaries, np.float64), values, side="right")
        return ids

    @staticmethod
    def _encode_multi(spec: FieldSpec, col: pd.Series, missing: np.ndarray) -> np.ndarray:
        out = np.zeros((len(col), spec.max_len), np.int64)
        present = col[~missing]
        if not len(present):
            return out
        if any(isinstance(v, str) for v in present.iloc[:100]):
            raise SchemaError(f"multi-value feature '{spec.name}' holds strings; it needs a list of strings per row")
        rows = np.flatnonzero(~missing)
        tokens = pd.Series(list(present), index=rows).explode()
        tokens = tokens[tokens.notna()]
        pos = tokens.groupby(level=0).cumcount().to_numpy()
        keep = pos < spec.max_len
        codes = pd.Categorical(tokens.astype(str).to_numpy(), categories=spec.vocab).codes.astype(np.int64)
        codes = np.where(codes < 0, OOV, codes + N_RESERVED)
        out[tokens.index.to_numpy()[keep], pos[keep]] = codes[keep]
        return out

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureSchema":
        if d.get("version") != SCHEMA_VERSION:
            raise SchemaError(f"schema version {d.get('version')!r} is not supported; refit the schema (version {SCHEMA_VERSION})")
        fields = [FieldSpec(**f) for f in d["fields"]]
        return cls(fields=fields, **{k: v for k, v in d.items() if k != "fields"})

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "FeatureSchema":
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "FeatureSchema":
        return cls.from_json(Path(path).read_text())


def _check_columns(frame: pd.DataFrame, names: Iterable[str], what: str = "feature column") -> None:
    if not isinstance(frame, pd.DataFrame):
        raise SchemaError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    absent = [n for n in names if n not in frame.columns]
    if absent:
        raise SchemaError(
            f"{what}(s) {absent} missing from the frame; add them (use null values to mark a missing feature)"
        )


def _numeric(values: pd.Series, name: str) -> pd.Series:
    try:
        return pd.to_numeric(values, errors="raise").astype("float64")
    except (ValueError, TypeError) as exc:
        raise SchemaError(f"numeric feature '{name}' holds non-numeric values ({exc}); send numbers or null") from exc


def fit_schema(frame: pd.DataFrame, features: Sequence[dict[str, str]], **options: Any) -> FeatureSchema:
    """Fit the feature map on the training split (see FeatureSchema.fit for options)."""
    return FeatureSchema.fit(frame, features, **options)
