"""Validation gate of the dataset stage.

A candidate dataset folder (``train.parquet``, ``validation.parquet``, ``test.parquet`` and
``schema.json``) is checked with a Great Expectations suite derived from ``schema.json`` and
the ``validate:`` section of ``params.yaml``. Only a dataset that passes every expectation is
published to the validated folder, by copying it to a staging folder beside the target and
swapping it in with renames; a failing dataset leaves the previous validated folder untouched.

Every split is validated on its own (so missing rates are checked per split), and the three
splits together are checked for event ids that repeat across splits.

    python -m components.data.validate --candidate data/datasets --validated data/validated \\
        --report reports/validation.json --params params.yaml

Exit status: 0 when the dataset passed and was published, 1 when an expectation failed
(short report on stderr), 2 when the inputs are unusable (a missing file, a bad schema or
config).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from components.data.contract import SCHEMA_FILE, DatasetSchema
from components.common.files import atomic_write_text, replace_dir, staging_dir_for

SPLITS = ("train", "validation", "test")
ALL_SPLITS = "all_splits"
CONTRACT_FILES = tuple(f"{s}.parquet" for s in SPLITS) + (SCHEMA_FILE,)

# Fixed by the dataset contract (not knobs): dtypes of the non-feature columns as pandas reads them.
KEY_DTYPE = "int64"
LABEL_DTYPE = "int64"
TIMESTAMP_DTYPE = "datetime64[ns, UTC]"
MASK_DTYPE = "int8"
LABEL_VALUES = (0, 1)
MASK_VALUES = (0, 1)


class ValidationFailed(RuntimeError):
    """The candidate dataset broke at least one expectation; the message is the short report."""

    def __init__(self, report: "ValidationReport"):
        super().__init__(report.short_text())
        self.report = report


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

DEFAULT_CONFIG: dict[str, Any] = {
    # Per view: allowed [min, max] of the mean of missing_view__<view> over each split.
    "missing_rate_bands": {
        "user_profile": [0.0, 0.8],
        "user_activity": [0.02, 0.98],
        "item_metadata": [0.0, 0.5],
        "item_stats": [0.02, 0.98],
        "request_context": [0.0, 0.0],
    },
    # Numeric columns: inclusive [min, max]; null leaves that side open. Nulls (missing) pass.
    "ranges": {
        "user_events_7d": [0, None],
        "user_events_30d": [0, None],
        "user_mean_rating_30d": [1, 5],
        "item_events_7d": [0, None],
        "item_events_30d": [0, None],
        "item_mean_rating_30d": [1, 5],
        "item_release_year": [1900, 2100],
        "hour_of_day": [0, 23],
        "weekday": [0, 6],
    },
    # Categorical columns: the allowed values. Nulls (missing) pass.
    "value_sets": {
        "gender": ["M", "F"],
    },
    # Every split needs at least this many rows.
    "min_rows": 1,
    # missing__<feature> is 1 exactly where the feature is null, and missing_view__<view> is 1
    # exactly where <view>_ts is null.
    "check_mask_consistency": True,
    # How many offending values a report quotes per failed expectation.
    "max_examples": 5,
}


def _band(name: str, value: Any, *, open_ends: bool) -> tuple[float | None, float | None]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{name} must be a [min, max] pair, got {value!r}")
    lo, hi = value
    for v in (lo, hi):
        if v is None and open_ends:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{name} must hold numbers{' or null' if open_ends else ''}, got {value!r}")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"{name} has min > max: {value!r}")
    return (None if lo is None else float(lo)), (None if hi is None else float(hi))


@dataclass(frozen=True)
class ValidationConfig:
    """The gate's knobs, as found under ``validate:`` in params.yaml (see ``DEFAULT_CONFIG``)."""

    missing_rate_bands: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {k: tuple(v) for k, v in DEFAULT_CONFIG["missing_rate_bands"].items()}
    )
    ranges: dict[str, tuple[float | None, float | None]] = field(
        default_factory=lambda: {k: tuple(v) for k, v in DEFAULT_CONFIG["ranges"].items()}
    )
    value_sets: dict[str, tuple[Any, ...]] = field(
        default_factory=lambda: {k: tuple(v) for k, v in DEFAULT_CONFIG["value_sets"].items()}
    )
    min_rows: int = DEFAULT_CONFIG["min_rows"]
    check_mask_consistency: bool = DEFAULT_CONFIG["check_mask_consistency"]
    max_examples: int = DEFAULT_CONFIG["max_examples"]

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "ValidationConfig":
        """Build from the ``validate:`` mapping. Absent keys keep their defaults; a given mapping
        (e.g. ``ranges``) replaces the default mapping as a whole."""
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"validate has unknown key(s) {sorted(unknown)}; allowed: {sorted(cls.__dataclass_fields__)}")
        merged = {**DEFAULT_CONFIG, **d}
        for key in ("missing_rate_bands", "ranges", "value_sets"):
            if not isinstance(merged[key] or {}, dict):
                raise ValueError(f"validate.{key} must be a mapping, got {type(merged[key]).__name__}")
        bands = {}
        for view, band in (merged["missing_rate_bands"] or {}).items():
            lo, hi = _band(f"validate.missing_rate_bands.{view}", band, open_ends=False)
            if not 0.0 <= lo <= hi <= 1.0:
                raise ValueError(f"validate.missing_rate_bands.{view} must lie within [0, 1], got {band!r}")
            bands[str(view)] = (lo, hi)
        ranges = {str(c): _band(f"validate.ranges.{c}", r, open_ends=True) for c, r in (merged["ranges"] or {}).items()}
        value_sets = {}
        for col, values in (merged["value_sets"] or {}).items():
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"validate.value_sets.{col} must be a non-empty list, got {values!r}")
            value_sets[str(col)] = tuple(values)
        min_rows = merged["min_rows"]
        if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 0:
            raise ValueError(f"validate.min_rows must be an integer >= 0, got {min_rows!r}")
        max_examples = merged["max_examples"]
        if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 0:
            raise ValueError(f"validate.max_examples must be an integer >= 0, got {max_examples!r}")
        if not isinstance(merged["check_mask_consistency"], bool):
            raise ValueError("validate.check_mask_consistency must be true or false")
        return cls(
            missing_rate_bands=bands,
            ranges=ranges,
            value_sets=value_sets,
            min_rows=min_rows,
            check_mask_consistency=merged["check_mask_consistency"],
            max_examples=max_examples,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "missing_rate_bands": {k: list(v) for k, v in self.missing_rate_bands.items()},
            "ranges": {k: list(v) for k, v in self.ranges.items()},
            "value_sets": {k: list(v) for k, v in self.value_sets.items()},
            "min_rows": self.min_rows,
            "check_mask_consistency": self.check_mask_consistency,
            "max_examples": self.max_examples,
        }


# --------------------------------------------------------------------------------------------
# Dataset schema (schema.json)
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@dataclass
class ExpectationOutcome:
    split: str
    expectation: str
    column: str | None
    success: bool
    observed: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def describe(self) -> str:
        """One line: what was expected, and what was found."""
        if self.error:
            return f"error: {self.error}"
        obs = self.observed
        if isinstance(obs, dict) and "unexpected_count" in obs:
            pct = obs.get("unexpected_percent")
            text = f"{obs['unexpected_count']} unexpected row(s)"
            if pct is not None:
                text += f" ({pct:.3g}%)"
            if obs.get("examples"):
                text += f", e.g. {', '.join(map(str, obs['examples']))}"
            return text
        if isinstance(obs, dict) and ("missing" in obs or "unexpected" in obs):
            parts = [f"{k}: {', '.join(v)}" for k, v in obs.items() if k in ("missing", "unexpected") and v]
            return "; ".join(parts)
        return f"observed {obs!r}, expected {self._expected()}"

    def _expected(self) -> str:
        kw = self.kwargs
        if "min_value" in kw or "max_value" in kw:
            return f"[{kw.get('min_value', '-inf')}, {kw.get('max_value', 'inf')}]"
        for key in ("type_", "value_set", "type_list"):
            if key in kw:
                return repr(kw[key])
        return "see the full report"


@dataclass
class ValidationReport:
    candidate_dir: str
    results: list[ExpectationOutcome]
    rows: dict[str, int]
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of what was validated
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [r for r in self.results if not r.success]

    def to_dict(self) -> dict[str, Any]:
        splits: dict[str, Any] = {}
        for r in self.results:
            entry = splits.setdefault(r.split, {"rows": self.rows.get(r.split), "success": True, "results": []})
            entry["success"] = entry["success"] and r.success
            d = asdict(r)
            d.pop("split")
            entry["results"].append(d)
        return {
            "success": self.success,
            "candidate": self.candidate_dir,
            "evaluated": len(self.results),
            "failed": len(self.failures),
            "files": self.files,
            "config": self.config,
            "splits": splits,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n"

    def short_text(self) -> str:
        rows = ", ".join(f"{s} {n:,}" for s, n in self.rows.items() if s in SPLITS)
        if self.success:
            return f"dataset validation passed: {len(self.results)} expectations over {rows} rows ({self.candidate_dir})\n"
        # The same failure in several splits is listed once, naming the splits.
        grouped: dict[tuple[str, str, str], list[str]] = {}
        for r in self.failures:
            grouped.setdefault((r.expectation, r.column or "-", r.describe()), []).append(r.split)
        lines = [f"dataset validation FAILED: {len(self.failures)} of {len(self.results)} expectations failed ({self.candidate_dir})"]
        for (expectation, column, text), splits in grouped.items():
            lines.append(f"  - {expectation} on column {column} [{', '.join(splits)}]: {text}")
        return "\n".join(lines) + "\n"


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (pd.Timestamp, np.datetime64)):
        return str(pd.Timestamp(o))
    return str(o)


# --------------------------------------------------------------------------------------------
# Reading the candidate
# --------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_candidate(candidate_dir: Path) -> tuple[DatasetSchema, dict[str, pd.DataFrame], dict[str, str]]:
    """The schema, the three splits and the sha256 of each contract file.

    Raises FileNotFoundError naming the first contract file that is absent."""
    candidate_dir = Path(candidate_dir)
    for name in CONTRACT_FILES:
        if not (candidate_dir / name).is_file():
            raise FileNotFoundError(f"candidate dataset lacks {candidate_dir / name} (expected {', '.join(CONTRACT_FILES)})")
    hashes = {name: _sha256(candidate_dir / name) for name in CONTRACT_FILES}
    schema_path = candidate_dir / SCHEMA_FILE
    try:
        schema_dict = json.loads(schema_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{schema_path} is not valid JSON: {e}") from e
    schema = DatasetSchema.from_dict(schema_dict, source=str(schema_path))
    frames = {}
    for split in SPLITS:
        path = candidate_dir / f"{split}.parquet"
        try:
            frames[split] = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for a corrupt file
            raise ValueError(f"cannot read {path}: {e}") from e
    return schema, frames, hashes


def _for_gx(frame: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """Parquet list columns come back as numpy arrays, which GX's type checks do not know;
    give GX Python lists instead (same values, so the check means the same)."""
    out = frame
    for f in schema.features:
        if f.is_list and f.name in frame.columns and frame[f.name].dtype == object:
            if out is frame:
                out = frame.copy()
            out[f.name] = frame[f.name].map(lambda v: v.tolist() if isinstance(v, np.ndarray) else v)
    return out


# --------------------------------------------------------------------------------------------
# The expectation suites
# --------------------------------------------------------------------------------------------


def _gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    return gx, gxe


def _check_config_against_schema(schema: DatasetSchema, config: ValidationConfig) -> None:
    columns = set(schema.columns)
    for kind, names in (("ranges", config.ranges), ("value_sets", config.value_sets)):
        unknown = sorted(set(names) - columns)
        if unknown:
            raise ValueError(f"validate.{kind} names column(s) {unknown} that the dataset schema does not have")
    unknown_views = sorted(set(config.missing_rate_bands) - set(schema.views))
    if unknown_views:
        raise ValueError(f"validate.missing_rate_bands names view(s) {unknown_views} that the dataset schema does not have")


def split_expectations(schema: DatasetSchema, config: ValidationConfig) -> list:
    """The expectations every split must meet."""
    _, gxe = _gx()
    ex: list = []
    ex.append(gxe.ExpectTableColumnsToMatchSet(column_set=schema.columns, exact_match=True))
    ex.append(gxe.ExpectTableRowCountToBeBetween(min_value=config.min_rows))

    # Types.
    for key in schema.keys:
        ex.append(gxe.ExpectColumnTypeToBe(column=key, type_=KEY_DTYPE))
    ex.append(gxe.ExpectColumnTypeToBe(column=schema.timestamp, type_=TIMESTAMP_DTYPE))
    ex.append(gxe.ExpectColumnTypeToBe(column=schema.label, type_=LABEL_DTYPE))
    for ts in schema.ts_columns.values():
        ex.append(gxe.ExpectColumnTypeToBe(column=ts, type_=TIMESTAMP_DTYPE))
    for f in schema.features:
        ex.append(gxe.ExpectColumnTypeToBe(column=f.name, type_=f.pandas_dtype))
        if f.is_string:
            ex.append(gxe.ExpectColumnValuesToBeOfType(column=f.name, type_="str"))
        elif f.is_list:
            ex.append(gxe.ExpectColumnValuesToBeOfType(column=f.name, type_="list"))
    masks = [schema.feature_mask(f.name) for f in schema.features] + [schema.view_mask(v) for v in schema.views]
    for m in masks:
        ex.append(gxe.ExpectColumnTypeToBe(column=m, type_=MASK_DTYPE))
        ex.append(gxe.ExpectColumnValuesToBeInSet(column=m, value_set=list(MASK_VALUES)))

    # Keys, event time and label are never null; the label is binary; events are unique.
    for col in (*schema.keys, schema.timestamp, schema.label):
        ex.append(gxe.ExpectColumnValuesToNotBeNull(column=col))
    ex.append(gxe.ExpectColumnValuesToBeInSet(column=schema.label, value_set=list(LABEL_VALUES)))
    ex.append(gxe.ExpectColumnValuesToBeUnique(column=schema.keys[0]))

    # Values.
    for col, (lo, hi) in config.ranges.items():
        kw = {k: v for k, v in (("min_value", lo), ("max_value", hi)) if v is not None}
        if kw:
            ex.append(gxe.ExpectColumnValuesToBeBetween(column=col, **kw))
    for col, values in config.value_sets.items():
        ex.append(gxe.ExpectColumnValuesToBeInSet(column=col, value_set=list(values)))

    # Point-in-time correctness: no feature value became available after its event.
    for ts in schema.ts_columns.values():
        ex.append(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=schema.timestamp, column_B=ts, or_equal=True, ignore_row_if="either_value_is_missing"
            )
        )

    # Missing rates per view.
    for view, (lo, hi) in config.missing_rate_bands.items():
        ex.append(gxe.ExpectColumnMeanToBeBetween(column=schema.view_mask(view), min_value=lo, max_value=hi))
    return ex


NULL_PREFIX = "null__"


def mask_frame(frame: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """The masks of a split beside 0/1 indicators of the nulls they describe (`null__<column>`),
    for the mask-consistency expectations. (Comparing two columns is much faster in GX than a
    null check under a row condition, which re-filters the whole split for every metric.)"""
    out = {}
    masks = [schema.feature_mask(f.name) for f in schema.features] + [schema.view_mask(v) for v in schema.views]
    for m in masks:
        if m in frame.columns:
            out[m] = frame[m]
    for col in [f.name for f in schema.features] + list(schema.ts_columns.values()):
        if col in frame.columns:
            out[f"{NULL_PREFIX}{col}"] = frame[col].isna().astype("int8")
    return pd.DataFrame(out, index=frame.index)


def mask_expectations(schema: DatasetSchema, columns: Iterable[str]) -> list:
    """Masks agree with the data: missing__<f> is 1 exactly where <f> is null; a view flagged
    missing has every feature flagged missing; a view not flagged missing was joined, so its
    availability time is known. Only pairs whose columns exist are checked (an absent column is
    already reported by the column-set expectation)."""
    _, gxe = _gx()
    present = set(columns)
    ex = []

    def have(*cols: str) -> bool:
        return all(c in present for c in cols)

    for f in schema.features:
        mask, null = schema.feature_mask(f.name), f"{NULL_PREFIX}{f.name}"
        if have(mask, null):
            ex.append(gxe.ExpectColumnPairValuesToBeEqual(column_A=mask, column_B=null))
        if have(mask, schema.view_mask(f.view)):
            ex.append(
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=mask, column_B=schema.view_mask(f.view), or_equal=True)
            )
    for view, ts in schema.ts_columns.items():
        vmask, null = schema.view_mask(view), f"{NULL_PREFIX}{ts}"
        if have(vmask, null):
            ex.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=vmask, column_B=null, or_equal=True))
    return ex


def cross_split_expectations(schema: DatasetSchema) -> list:
    """The expectations over the three splits together: an event belongs to one split only."""
    _, gxe = _gx()
    return [gxe.ExpectColumnValuesToBeUnique(column=schema.keys[0])]


def _ephemeral_batch_definition():
    """A throwaway in-memory context with one pandas dataframe asset. Suites can only be built
    once a context exists, so this comes first."""
    gx, _ = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas(name="candidate")
    asset = source.add_dataframe_asset(name="split")
    return asset.add_batch_definition_whole_dataframe(name="whole_split")


def _suite(name: str, expectations: list):
    gx, _ = _gx()
    suite = gx.ExpectationSuite(name=name)
    for e in expectations:
        suite.add_expectation(e)
    return suite


def _error_message(exception_info: Any) -> str | None:
    """GX reports an exception either flat or keyed by the metric that raised it."""
    if not exception_info:
        return None
    if isinstance(exception_info, dict) and "raised_exception" in exception_info:
        message = exception_info.get("exception_message") if exception_info.get("raised_exception") else None
        return message.removeprefix("Error: ") if message else None
    if isinstance(exception_info, dict):
        messages = [_error_message(v) for v in exception_info.values()]
        messages = list(dict.fromkeys(m for m in messages if m))
        return "; ".join(m.removeprefix("Error: ") for m in messages) or None
    return str(exception_info)


def _plain(v: Any) -> Any:
    """numpy/pandas scalars as plain Python values (timestamps as ISO strings), for reports."""
    if isinstance(v, pd.Timestamp):
        return "NaT" if pd.isna(v) else v.isoformat()
    if isinstance(v, np.datetime64):  # GX hands back tz-aware values as naive UTC
        return "NaT" if np.isnat(v) else pd.Timestamp(v).isoformat() + "Z"
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(x) for x in v)
    if isinstance(v, np.generic):
        return v.item()
    return v


def _examples(values: Iterable[Any], limit: int) -> list[str]:
    """Distinct offending values, in the order GX found them."""
    out: list[str] = []
    for v in values:
        text = repr(_plain(v))
        if text not in out:
            out.append(text)
        if len(out) >= limit:
            break
    return out


def _outcome(split: str, r: Any, expected_columns: list[str], max_examples: int) -> ExpectationOutcome:
    cfg = r.expectation_config
    kwargs = {k: v for k, v in dict(cfg.kwargs).items() if k not in ("batch_id", "result_format")}
    if isinstance(kwargs.get("row_condition"), dict):
        cond = kwargs["row_condition"]
        kwargs["row_condition"] = f"{cond.get('column', {}).get('name')} {cond.get('operator')} {cond.get('parameter')}"
    column = kwargs.get("column")
    if column is None and "column_A" in kwargs:
        op = "==" if cfg.type == "expect_column_pair_values_to_be_equal" else ">=" if kwargs.get("or_equal") else ">"
        column = f"{kwargs['column_A']} {op} {kwargs['column_B']}"
    result = dict(r.result or {})
    observed: Any
    if cfg.type == "expect_table_columns_to_match_set":
        found = list(result.get("observed_value") or [])
        missing = [c for c in expected_columns if c not in found]
        unexpected = [c for c in found if c not in expected_columns]
        observed = {"missing": missing, "unexpected": unexpected}
        column = ", ".join(missing + unexpected) or None
        kwargs["column_set"] = f"{len(expected_columns)} columns from {SCHEMA_FILE}"
    elif "observed_value" in result:
        observed = _plain(result["observed_value"])
    elif "unexpected_count" in result:
        observed = {
            "element_count": result.get("element_count"),
            "unexpected_count": result.get("unexpected_count"),
            "unexpected_percent": result.get("unexpected_percent"),
            "examples": _examples(result.get("partial_unexpected_list") or [], max_examples),
        }
    else:
        observed = None
    return ExpectationOutcome(
        split=split,
        expectation=cfg.type,
        column=column,
        success=bool(r.success),
        observed=observed,
        kwargs=kwargs,
        error=_error_message(r.exception_info),
    )


def _run_suite(batch_definition, frame: pd.DataFrame, suite, split: str, expected_columns: list[str], max_examples: int):
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": max(max_examples, 1)})
    outcomes = [_outcome(split, r, expected_columns, max_examples) for r in result.results]
    # GX does not keep the suite's order; a stable order makes reports diffable.
    return sorted(outcomes, key=lambda o: (o.success, o.expectation, o.column or ""))


def validate_dataset(candidate_dir: Path, config: ValidationConfig | None = None) -> ValidationReport:
    """Check a candidate dataset folder against its schema.json and `config`. Writes nothing."""
    config = config or ValidationConfig()
    candidate_dir = Path(candidate_dir)
    schema, frames, hashes = read_candidate(candidate_dir)
    _check_config_against_schema(schema, config)
    batch_definition = _ephemeral_batch_definition()
    split_suite = _suite("dataset_split", split_expectations(schema, config))
    cross_suite = _suite("dataset_all_splits", cross_split_expectations(schema))
    expected = schema.columns
    results: list[ExpectationOutcome] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for split in SPLITS:
            frame = frames[split]
            results += _run_suite(batch_definition, _for_gx(frame, schema), split_suite, split, expected, config.max_examples)
            if config.check_mask_consistency:
                masks = mask_frame(frame, schema)
                mask_suite = _suite(f"dataset_masks_{split}", mask_expectations(schema, masks.columns))
                results += _run_suite(batch_definition, masks, mask_suite, split, expected, config.max_examples)
        key = schema.keys[0]
        keys = [frames[s][[key]] for s in SPLITS if key in frames[s].columns]
        if len(keys) == len(SPLITS):
            everything = pd.concat(keys, ignore_index=True)
            results += _run_suite(batch_definition, everything, cross_suite, ALL_SPLITS, expected, config.max_examples)
    rows = {s: len(frames[s]) for s in SPLITS}
    rows[ALL_SPLITS] = sum(rows.values())
    return ValidationReport(
        candidate_dir=str(candidate_dir), results=results, rows=rows, files=hashes, config=config.to_dict()
    )


# --------------------------------------------------------------------------------------------
# The gate
# --------------------------------------------------------------------------------------------


def short_report_path(report_path: Path) -> Path:
    return Path(report_path).with_suffix(".txt")


def publish(candidate_dir: Path, validated_dir: Path, expected_hashes: dict[str, str]) -> None:
    """Copy the candidate into a staging folder beside `validated_dir`, check the copies are the
    bytes that were validated, then swap the staging folder in. The old folder is only removed
    once the new one is in place; on any error it stays as it was."""
    candidate_dir, validated_dir = Path(candidate_dir), Path(validated_dir)
    staging = staging_dir_for(validated_dir)
    try:
        for src in sorted(candidate_dir.iterdir()):
            if src.is_dir():
                shutil.copytree(src, staging / src.name)
            elif src.is_file():
                shutil.copy2(src, staging / src.name)
        for name, digest in expected_hashes.items():
            if _sha256(staging / name) != digest:
                raise RuntimeError(f"{candidate_dir / name} changed while it was being validated; nothing was published")
        replace_dir(staging, validated_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def run_gate(
    candidate_dir: Path, validated_dir: Path, report_path: Path, config: ValidationConfig | None = None
) -> ValidationReport:
    """Validate the candidate, write the full (JSON) and short (.txt) reports, and publish the
    dataset to `validated_dir` if it passed. Raises ValidationFailed (message: the short report)
    if it did not, leaving `validated_dir` as it was."""
    report = validate_dataset(candidate_dir, config)
    report_path = Path(report_path)
    atomic_write_text(report.to_json(), report_path)
    atomic_write_text(report.short_text(), short_report_path(report_path))
    if not report.success:
        raise ValidationFailed(report)
    publish(candidate_dir, validated_dir, report.files)
    return report


def _quiet_gx() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TQDM_DISABLE", "1")
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"great_expectations(\..*)?")


def load_config(params_path: Path | str | None) -> tuple[ValidationConfig, str | None]:
    """The config from the `validate:` section of params.yaml, with a note when defaults are used."""
    import yaml

    path = Path(params_path) if params_path else Path("params.yaml")
    if not path.exists():
        return ValidationConfig(), f"params file {path} not found; using the default validation config"
    params = yaml.safe_load(path.read_text()) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path} must hold a mapping of sections, got {type(params).__name__}")
    if params.get("validate") is None:
        return ValidationConfig(), f"{path} has no 'validate' section; using the default validation config"
    return ValidationConfig.from_dict(params["validate"]), None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Validate a candidate dataset and publish it if it passes.")
    parser.add_argument("--candidate", type=Path, default=Path("data/datasets"))
    parser.add_argument("--validated", type=Path, default=Path("data/validated"))
    parser.add_argument("--report", type=Path, default=Path("reports/validation.json"))
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    _quiet_gx()
    try:
        config, note = load_config(args.params)
        if note:
            print(note, file=sys.stderr)
        report = run_gate(args.candidate, args.validated, args.report, config)
    except ValidationFailed as e:
        sys.stderr.write(str(e))
        print(f"full report: {args.report}; {args.validated} left as it was", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as e:
        print(f"validate: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(report.short_text())
    print(f"published {args.candidate} -> {args.validated}; full report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
