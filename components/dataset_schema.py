"""The dataset contract: which columns a training split holds and what each one is.

Written as `schema.json` beside the splits by the dataset step, read back by the validation gate
(and, as plain JSON, by the model's feature schema).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

KEYS = ("event_id", "user_id", "item_id")
TIMESTAMP = "event_timestamp"
LABEL = "label"
FEATURE_MASK_PREFIX = "missing__"
VIEW_MASK_PREFIX = "missing_view__"
SCHEMA_FILE = "schema.json"


@dataclass(frozen=True)
class FeatureSpec:
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
    features: tuple[FeatureSpec, ...]
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
            features = tuple(FeatureSpec(f["name"], f["view"], str(f.get("kind", "")), str(f["dtype"])) for f in d["features"])
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
