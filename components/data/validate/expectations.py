"""The expectation suites, built from the expected contract (the feature service) and the config.

Every split gets `split_expectations` (and, on a side frame of null indicators, `mask_expectations`);
the three splits together get `cross_split_expectations`."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import ColumnMapMetricProvider, column_condition_partial

from components.data.contract import DatasetSchema
from components.data.validate.config import ValidationConfig
from components.data.validate.gx import gxe

# Fixed by the dataset contract (not knobs): dtypes of the non-feature columns as pandas reads them.
KEY_DTYPE = "int64"
LABEL_DTYPE = "int64"
TIMESTAMP_DTYPE = "datetime64[ns, UTC]"
MASK_DTYPE = "int8"
LABEL_VALUES = (0, 1)
MASK_VALUES = (0, 1)
NULL_PREFIX = "null__"


class ColumnValuesFinite(ColumnMapMetricProvider):
    """Metric behind ExpectColumnValuesToBeFinite (GX has no finiteness check; a range with an open
    side lets inf through)."""

    condition_metric_name = "column_values.finite"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs) -> pd.Series:
        return pd.Series(np.isfinite(pd.to_numeric(column, errors="coerce").astype("float64")), index=column.index)


class ExpectColumnValuesToBeFinite(ColumnMapExpectation):
    """Numeric values are neither inf nor -inf (nulls, i.e. missing values, pass)."""

    map_metric = "column_values.finite"
    success_keys = ("mostly",)


def check_config_against_contract(schema: DatasetSchema, config: ValidationConfig) -> None:
    """A knob naming a column or view the contract lacks is a config error, not a data failure."""
    columns = set(schema.columns)
    for kind, names in (("ranges", config.ranges), ("value_sets", config.value_sets)):
        unknown = sorted(set(names) - columns)
        if unknown:
            raise ValueError(f"validate.{kind} names column(s) {unknown} that the dataset contract does not have")
    unknown_views = sorted(set(config.missing_rate_bands) - set(schema.views))
    if unknown_views:
        raise ValueError(f"validate.missing_rate_bands names view(s) {unknown_views} that the dataset contract does not have")


def split_expectations(schema: DatasetSchema, config: ValidationConfig) -> list:
    """The expectations every split must meet."""
    ex: list = [
        gxe.ExpectTableColumnsToMatchSet(column_set=schema.columns, exact_match=True),
        gxe.ExpectTableRowCountToBeBetween(min_value=config.min_rows),
    ]
    # Types: keys, times, label, features, masks.
    typed = [(k, KEY_DTYPE) for k in schema.keys] + [(schema.label, LABEL_DTYPE)]
    typed += [(ts, TIMESTAMP_DTYPE) for ts in (schema.timestamp, *schema.timestamp_columns)]
    typed += [(f.name, f.pandas_dtype) for f in schema.features]
    masks = [schema.feature_mask(f.name) for f in schema.features] + [schema.view_mask(v) for v in schema.views]
    typed += [(m, MASK_DTYPE) for m in masks]
    ex += [gxe.ExpectColumnTypeToBe(column=c, type_=t) for c, t in typed]
    ex += [gxe.ExpectColumnValuesToBeOfType(column=f.name, type_="str") for f in schema.features if f.is_string]
    ex += [gxe.ExpectColumnValuesToBeOfType(column=f.name, type_="list") for f in schema.features if f.is_list]
    ex += [ExpectColumnValuesToBeFinite(column=f.name) for f in schema.features if f.pandas_dtype == "float64"]
    ex += [gxe.ExpectColumnValuesToBeInSet(column=m, value_set=list(MASK_VALUES)) for m in masks]

    # Keys, event time and label are never null; the label is binary with both classes; events are unique.
    ex += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in (*schema.keys, schema.timestamp, schema.label)]
    ex.append(gxe.ExpectColumnValuesToBeInSet(column=schema.label, value_set=list(LABEL_VALUES)))
    ex.append(gxe.ExpectColumnDistinctValuesToContainSet(column=schema.label, value_set=list(LABEL_VALUES)))
    ex.append(gxe.ExpectColumnValuesToBeUnique(column=schema.keys[0]))

    # Values.
    ex += [
        gxe.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi)
        for c, (lo, hi) in config.ranges.items()
        if lo is not None or hi is not None
    ]
    ex += [gxe.ExpectColumnValuesToBeInSet(column=c, value_set=list(v)) for c, v in config.value_sets.items()]

    # Point-in-time correctness: no feature value became available after its event.
    ex += [
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=schema.timestamp, column_B=ts, or_equal=True, ignore_row_if="either_value_is_missing"
        )
        for ts in schema.timestamp_columns
    ]
    # Missing rates per view.
    ex += [
        gxe.ExpectColumnMeanToBeBetween(column=schema.view_mask(v), min_value=lo, max_value=hi)
        for v, (lo, hi) in config.missing_rate_bands.items()
    ]
    return ex


def mask_frame(frame: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """The masks of a split beside 0/1 indicators of the nulls they describe (`null__<column>`),
    for the mask-consistency expectations. (Comparing two columns is much faster in GX than a
    null check under a row condition, which re-filters the whole split for every metric.)"""
    masks = [schema.feature_mask(f.name) for f in schema.features] + [schema.view_mask(v) for v in schema.views]
    out = {m: frame[m] for m in masks if m in frame.columns}
    for col in [f.name for f in schema.features] + schema.timestamp_columns:
        if col in frame.columns:
            out[f"{NULL_PREFIX}{col}"] = frame[col].isna().astype("int8")
    return pd.DataFrame(out, index=frame.index)


def mask_expectations(schema: DatasetSchema, columns: Iterable[str]) -> list:
    """Masks agree with the data: missing__<f> is 1 exactly where <f> is null; a view flagged
    missing has every feature flagged missing; a view not flagged missing was joined, so its
    availability time is known. Only pairs whose columns exist are checked (an absent column is
    already reported by the column-set expectation)."""
    present = set(columns)
    pairs: list[tuple[str, str, bool]] = []  # (A, B, equal): A == B if equal, else A >= B
    for f in schema.features:
        pairs.append((schema.feature_mask(f.name), f"{NULL_PREFIX}{f.name}", True))
        pairs.append((schema.feature_mask(f.name), schema.view_mask(f.view), False))
    for view, ts in schema.ts_columns.items():
        pairs.append((schema.view_mask(view), f"{NULL_PREFIX}{ts}", False))
    return [
        gxe.ExpectColumnPairValuesToBeEqual(column_A=a, column_B=b)
        if equal
        else gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=a, column_B=b, or_equal=True)
        for a, b, equal in pairs
        if a in present and b in present
    ]


def cross_split_expectations(schema: DatasetSchema) -> list:
    """The expectations over the three splits together: an event belongs to one split only."""
    return [gxe.ExpectColumnValuesToBeUnique(column=schema.keys[0])]
