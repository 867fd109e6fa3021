"""Running a suite on one frame in a throwaway GX context, and turning GX's results into
ExpectationOutcomes (the column it concerns, what was observed, up to `max_examples` offending values)."""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from components.data.contract import DatasetSchema
from components.data.validate.gx import gx
from components.data.validate.report import ExpectationOutcome
from common.jsonable import jsonable


def batch_definition() -> Any:
    """A throwaway in-memory context with one pandas dataframe asset, progress bars off. Suites can only
    be built once a context exists, so this comes first."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas(name="candidate").add_dataframe_asset(name="split")
    return asset.add_batch_definition_whole_dataframe(name="whole_split")


def suite(name: str, expectations: list) -> Any:
    out = gx.ExpectationSuite(name=name)
    for e in expectations:
        out.add_expectation(e)
    return out


def for_gx(frame: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """Parquet list columns come back as numpy arrays, which GX's type checks do not know;
    give GX Python lists instead (same values, so the check means the same)."""
    lists = [f.name for f in schema.features if f.is_list and f.name in frame.columns and frame[f.name].dtype == object]
    if not lists:
        return frame
    out = frame.copy()
    for name in lists:
        out[name] = frame[name].map(lambda v: v.tolist() if isinstance(v, np.ndarray) else v)
    return out


def run_suite(
    definition: Any, frame: pd.DataFrame, expectations: Any, split: str, expected_columns: list[str], max_examples: int
) -> list[ExpectationOutcome]:
    """Validate `frame` against the suite; outcomes sorted failures first (GX does not keep the
    suite's order, and a stable order makes reports diffable)."""
    batch = definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(expectations, result_format={"result_format": "SUMMARY", "partial_unexpected_count": max(max_examples, 1)})
    outcomes = [outcome(split, r, expected_columns, max_examples) for r in result.results]
    return sorted(outcomes, key=lambda o: (o.success, o.expectation, o.column or ""))


def outcome(split: str, r: Any, expected_columns: list[str], max_examples: int) -> ExpectationOutcome:
    """One GX result as an outcome; a column pair reads `A == B` / `A >= B`, a column set names the
    columns missing or unexpected."""
    cfg = r.expectation_config
    kwargs = {k: v for k, v in dict(cfg.kwargs).items() if k not in ("batch_id", "result_format")}
    column = kwargs.get("column")
    if column is None and "column_A" in kwargs:
        op = "==" if cfg.type == "expect_column_pair_values_to_be_equal" else ">=" if kwargs.get("or_equal") else ">"
        column = f"{kwargs['column_A']} {op} {kwargs['column_B']}"
    result = dict(r.result or {})
    observed: Any = None
    if cfg.type == "expect_table_columns_to_match_set":
        found = list(result.get("observed_value") or [])
        missing = [c for c in expected_columns if c not in found]
        unexpected = [c for c in found if c not in expected_columns]
        observed = {"missing": missing, "unexpected": unexpected}
        column = ", ".join(missing + unexpected) or None
        kwargs["column_set"] = f"{len(expected_columns)} columns of the contract"
    elif "partial_missing_list" in result:  # a set of values the column must contain
        observed = {"missing": examples(result["partial_missing_list"], max_examples)}
    elif "observed_value" in result:
        observed = jsonable(result["observed_value"])
    elif "unexpected_count" in result:
        observed = {
            "element_count": result.get("element_count"),
            "unexpected_count": result.get("unexpected_count"),
            "unexpected_percent": result.get("unexpected_percent"),
            "examples": examples(result.get("partial_unexpected_list") or [], max_examples),
        }
    return ExpectationOutcome(
        split=split, expectation=cfg.type, column=column, success=bool(r.success), observed=observed,
        kwargs=jsonable(kwargs), error=error_message(r.exception_info),
    )


def examples(values: Iterable[Any], limit: int) -> list[str]:
    """Distinct offending values as text, in the order GX found them. NaN and inf are shown as such
    (jsonable would turn them into null, hiding the very value that failed)."""
    out: list[str] = []
    for v in values:
        plain = jsonable(v)
        if isinstance(v, (float, np.floating)) and not math.isfinite(v):
            plain = float(v)
        text = repr(plain)
        if text not in out:
            out.append(text)
        if len(out) >= limit:
            break
    return out


def error_message(exception_info: Any) -> str | None:
    """GX reports an exception either flat or keyed by the metric that raised it."""
    if not exception_info:
        return None
    if isinstance(exception_info, dict) and "raised_exception" in exception_info:
        message = exception_info.get("exception_message") if exception_info.get("raised_exception") else None
        return message.removeprefix("Error: ") if message else None
    if isinstance(exception_info, dict):
        messages = dict.fromkeys(m for m in (error_message(v) for v in exception_info.values()) if m)
        return "; ".join(messages) or None
    return str(exception_info)
