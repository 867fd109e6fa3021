"""The dataset contract: which columns a sample holds, what each one is, and how a sample is built
from feature rows.

The contract comes from the Feast registry (the feature service's fields, tagged with their kind,
and each view's TTL), so once `feast apply` has run there is one source of truth. The dataset step
builds training rows with `to_training_frame`, the service builds online samples with the same
function, and the validation gate checks a candidate against `schema_from_store`, never against
the candidate's own `schema.json`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import pandas as pd

from feature_repo.definitions import FEATURE_SERVICE, REQUEST_CONTEXT_KINDS
from common.names import SPLITS

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

KEYS = ("event_id", "user_id", "item_id")
TIMESTAMP = "event_timestamp"
LABEL = "label"
FEATURE_MASK_PREFIX = "missing__"
VIEW_MASK_PREFIX = "missing_view__"
SCHEMA_FILE = "schema.json"


@dataclass(frozen=True)
class FeatureColumn:
    name: str
    view: str
    kind: str  # categorical | numeric | multi
    dtype: str  # the Feast type, e.g. String, Int64, Array(String)

    @property
    def is_list(self) -> bool:
        return self.kind == "multi" or self.dtype.lower().replace(" ", "").startswith(("array", "list"))

    @property
    def pandas_dtype(self) -> str:
        """numeric -> float64 (NaN = missing); integer categoricals -> int64 (never missing);
        strings and lists -> object (None = missing)."""
        if self.is_list:
            return "object"
        if self.kind == "numeric" or self.dtype.lower().startswith(("float", "double")):
            return "float64"
        if self.dtype.lower().startswith(("int", "uint")):
            return "int64"
        return "object"

    @property
    def is_string(self) -> bool:
        return not self.is_list and self.pandas_dtype == "object"


@dataclass(frozen=True)
class DatasetSchema:
    features: tuple[FeatureColumn, ...]
    views: dict[str, dict]  # view -> {"ttl_hours": h | None, "features": [...], "timestamp_column": c | None}
    keys: tuple[str, ...] = KEYS
    timestamp: str = TIMESTAMP
    label: str = LABEL

    def to_json(self) -> dict[str, Any]:
        return {
            "keys": list(self.keys),
            "timestamp": self.timestamp,
            "label": self.label,
            "features": [asdict(f) for f in self.features],
            "views": self.views,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = SCHEMA_FILE) -> "DatasetSchema":
        try:
            features = tuple(FeatureColumn(f["name"], f["view"], str(f.get("kind", "")), str(f["dtype"])) for f in d["features"])
            schema = cls(features, dict(d["views"]), tuple(d["keys"]), d["timestamp"], d["label"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"{source} does not follow the dataset contract ({type(e).__name__}: {e})") from e
        unknown_views = sorted({f.view for f in features} - set(schema.views))
        if unknown_views:
            raise ValueError(f"{source}: features name view(s) {unknown_views} that 'views' does not define")
        return schema

    @staticmethod
    def feature_mask(feature: str) -> str:
        return f"{FEATURE_MASK_PREFIX}{feature}"

    @staticmethod
    def view_mask(view: str) -> str:
        return f"{VIEW_MASK_PREFIX}{view}"

    @property
    def ts_columns(self) -> dict[str, str]:
        """view -> the column holding when its value became available (request-time views have none)."""
        return {v: info["timestamp_column"] for v, info in self.views.items() if info.get("timestamp_column")}

    @property
    def timestamp_columns(self) -> list[str]:
        return list(self.ts_columns.values())

    @property
    def columns(self) -> list[str]:
        cols = [*self.keys, self.timestamp, self.label, *(f.name for f in self.features), *self.timestamp_columns]
        cols += [self.feature_mask(f.name) for f in self.features] + [self.view_mask(v) for v in self.views]
        return list(dict.fromkeys(cols))


def view_ttl_hours(views: Iterable[Any]) -> dict[str, float | None]:
    """view -> its TTL in hours (None: no TTL), as the contract records it."""
    return {v.name: v.ttl.total_seconds() / 3600 if v.ttl else None for v in views}


def schema_from_store(store: "FeatureStore", service: str = FEATURE_SERVICE) -> DatasetSchema:
    """The contract as the registry holds it: the feature service with the TTLs its views were applied with."""
    from feast.errors import FeatureServiceNotFoundException

    try:
        applied = store.get_feature_service(service)
    except FeatureServiceNotFoundException as e:
        raise FileNotFoundError(
            f"the Feast registry {store.config.registry.path} holds no feature service '{service}'; "
            "apply the definitions (dvc repro feast_apply) and materialize (dvc repro materialize) first"
        ) from e
    return schema_from_service(applied, view_ttl_hours(store.list_feature_views()))


def schema_from_service(service: "FeatureService", ttl_hours: dict[str, float | None]) -> DatasetSchema:
    """The contract of a feature service: its fields that carry a kind tag are model inputs (`<view>_ts`
    availability times are metadata); each view gets `ttl_hours[view]` (absent: None, e.g. request-time
    views). Takes the service object so tests can build the contract from the definitions, without a registry."""
    features: list[FeatureColumn] = []
    views: dict[str, dict] = {}
    for projection in service.feature_view_projections:
        view = projection.name
        ts_column = f"{view}_ts"
        names: list[str] = []
        for field in projection.features:
            kind = field.tags.get("kind") or REQUEST_CONTEXT_KINDS.get(field.name)
            if kind is None:
                continue
            features.append(FeatureColumn(field.name, view, kind, str(field.dtype)))
            names.append(field.name)
        has_ts = any(f.name == ts_column for f in projection.features)
        views[view] = {"ttl_hours": ttl_hours.get(view), "features": names, "timestamp_column": ts_column if has_ts else None}
    return DatasetSchema(tuple(features), views)


def seconds_to_utc(seconds: pd.Series) -> pd.Series:
    """Unix seconds (float, NaN where a view had no row) as UTC nanosecond timestamps, NaT where missing.

    `pd.to_datetime(floats, unit="s")` in pandas 2.x leaves the fractional part of every NaN entry
    uninitialized and then rounds it under `errstate(over="raise")`, so whatever the allocator left
    there can raise FloatingPointError at random (pandas GH 58419, fixed in 3.0). Converting only
    the present values keeps pandas' arithmetic and never hands it a NaN."""
    values = seconds.to_numpy(dtype="float64", na_value=np.nan)
    missing = np.isnan(values)
    stamps = pd.to_datetime(np.where(missing, 0.0, values), unit="s", utc=True).as_unit("ns")
    return pd.Series(stamps, index=seconds.index, name=seconds.name).mask(missing)


def to_training_frame(joined: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """Typed columns of the dataset contract plus missing masks, from joined feature rows. The dataset
    step and the service both build samples with this function, so a value missing in training is
    missing in serving too."""
    base = [*KEYS, TIMESTAMP, *([LABEL] if LABEL in joined.columns else [])]
    out = joined[base].copy()
    out[TIMESTAMP] = pd.to_datetime(out[TIMESTAMP], utc=True).dt.as_unit("ns")
    for spec in schema.features:
        col = joined[spec.name]
        if spec.kind == "numeric":
            col = col.astype("float64")
        elif spec.kind == "multi":  # an empty list carries nothing: missing, like a null
            col = col.map(lambda v: list(v) if isinstance(v, (list, np.ndarray)) and len(v) else None)
        elif spec.dtype.lower().startswith("int"):
            col = col.astype("int64")
        else:
            col = col.astype(object).where(col.notna(), None)
        out[spec.name] = col
    for column in schema.timestamp_columns:
        out[column] = seconds_to_utc(joined[column])
    for spec in schema.features:
        out[schema.feature_mask(spec.name)] = out[spec.name].isna().astype("int8")
    for view, info in schema.views.items():
        masks = out[[schema.feature_mask(f) for f in info["features"]]].to_numpy()
        out[schema.view_mask(view)] = masks.all(axis=1).astype("int8")
    return out
