"""The dataset validation gate: real Great Expectations suites over small contract-shaped datasets."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from components.data.validate import (
    DEFAULT_CONFIG,
    ValidationConfig,
    ValidationFailed,
    main,
    run_gate,
    short_report_path,
    validate_dataset,
)
from tests._frames import make_splits, schema_dict, write_dataset

FILES = ("train.parquet", "validation.parquet", "test.parquet", "schema.json")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def previous(tmp_path: Path) -> Path:
    """A validated folder from an earlier run, which a failing candidate must leave alone."""
    folder = tmp_path / "validated"
    write_dataset(folder, make_splits(seed=99))
    return folder


# ---------------------------------------------------------------------------------- passing


def test_valid_dataset_passes_and_is_published(tmp_path: Path, previous: Path):
    candidate = write_dataset(tmp_path / "datasets")
    report_path = tmp_path / "reports" / "validation.json"

    report = run_gate(candidate, previous, report_path, ValidationConfig())

    assert report.success and not report.failures
    assert snapshot(previous) == snapshot(candidate)  # the new dataset replaced the old one
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".validated")]  # no staging left behind
    full = json.loads(report_path.read_text())
    assert full["success"] is True and full["failed"] == 0
    assert set(full["splits"]) == {"train", "validation", "test", "all_splits"}
    assert full["files"].keys() == set(FILES)
    types = {r["expectation"] for r in full["splits"]["train"]["results"]}
    assert {
        "expect_table_columns_to_match_set",
        "expect_column_type_to_be",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_unique",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_mean_to_be_between",
        "expect_column_pair_values_to_be_equal",
    } <= types
    means = {r["column"]: r["observed"] for r in full["splits"]["train"]["results"] if r["expectation"] == "expect_column_mean_to_be_between"}
    assert means["missing_view__user_profile"] == pytest.approx(0.2)
    assert means["missing_view__request_context"] == 0
    assert short_report_path(report_path).read_text().startswith("dataset validation passed")


# ---------------------------------------------------------------------------------- failing


def drop_column(splits):
    splits["train"] = splits["train"].drop(columns=["user_mean_rating_30d"])


def label_of_two(splits):
    splits["validation"].loc[3, "label"] = 2


def feature_from_the_future(splits):
    frame = splits["train"]
    row = frame.index[frame["missing_view__item_stats"] == 0][0]
    frame.loc[row, "item_stats_ts"] = frame.loc[row, "event_timestamp"] + pd.Timedelta(hours=1)


def profile_mostly_missing(splits):
    """80% of test rows lose their user profile, consistently (values, masks, timestamp)."""
    frame = splits["test"]
    rows = frame.index[: int(len(frame) * 0.8)]
    for f in schema_dict()["views"]["user_profile"]["features"]:
        frame.loc[rows, f] = None
        frame.loc[rows, f"missing__{f}"] = np.int8(1)
    frame.loc[rows, "user_profile_ts"] = pd.NaT
    frame.loc[rows, "missing_view__user_profile"] = np.int8(1)


def event_in_two_splits(splits):
    splits["test"].loc[0, "event_id"] = splits["train"].loc[5, "event_id"]


def duplicate_event_in_a_split(splits):
    splits["train"].loc[1, "event_id"] = splits["train"].loc[0, "event_id"]


def null_without_mask(splits):
    frame = splits["train"]
    row = frame.index[frame["missing__region"] == 0][0]
    frame.loc[row, "region"] = None


CASES = {
    "dropped column": (drop_column, "expect_table_columns_to_match_set", "user_mean_rating_30d", ["train"]),
    "label of 2": (label_of_two, "expect_column_values_to_be_in_set", "label", ["validation"]),
    "feature from the future": (
        feature_from_the_future,
        "expect_column_pair_values_a_to_be_greater_than_b",
        "event_timestamp >= item_stats_ts",
        ["train"],
    ),
    "missing rate out of band": (profile_mostly_missing, "expect_column_mean_to_be_between", "missing_view__user_profile", ["test"]),
    "event in two splits": (event_in_two_splits, "expect_column_values_to_be_unique", "event_id", ["all_splits"]),
    "duplicate event in a split": (duplicate_event_in_a_split, "expect_column_values_to_be_unique", "event_id", ["train", "all_splits"]),
    "null without its mask": (null_without_mask, "expect_column_pair_values_to_be_equal", "missing__region == null__region", ["train"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_dataset_fails_and_leaves_the_validated_folder_alone(case: str, tmp_path: Path, previous: Path):
    corrupt, expectation, column, splits_hit = CASES[case]
    splits = make_splits()
    corrupt(splits)
    candidate = write_dataset(tmp_path / "datasets", splits)
    report_path = tmp_path / "reports" / "validation.json"
    before = snapshot(previous)

    with pytest.raises(ValidationFailed) as failed:
        run_gate(candidate, previous, report_path, ValidationConfig())

    message = str(failed.value)
    assert message.startswith("dataset validation FAILED")
    assert expectation in message and column in message
    hits = [f for f in failed.value.report.failures if f.expectation == expectation and f.column == column]
    assert sorted(f.split for f in hits) == sorted(splits_hit)
    assert snapshot(previous) == before  # byte for byte
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".validated")]
    full = json.loads(report_path.read_text())
    assert full["success"] is False
    failed_entries = [
        r for split in splits_hit for r in full["splits"][split]["results"] if not r["success"]
    ]
    assert any(r["expectation"] == expectation and r["column"] == column for r in failed_entries)
    assert short_report_path(report_path).read_text() == message


def test_failure_report_quotes_the_offending_values(tmp_path: Path):
    splits = make_splits()
    label_of_two(splits)
    report = validate_dataset(write_dataset(tmp_path / "datasets", splits), ValidationConfig())
    (failure,) = report.failures
    assert failure.observed["unexpected_count"] == 1 and failure.observed["examples"] == ["2"]
    assert "1 unexpected row(s)" in report.short_text()


def test_validate_dataset_writes_nothing(tmp_path: Path):
    candidate = write_dataset(tmp_path / "datasets")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    validate_dataset(candidate, ValidationConfig())
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


# ---------------------------------------------------------------------------------- config


def test_default_config_round_trips_through_a_dict():
    assert ValidationConfig.from_dict(DEFAULT_CONFIG) == ValidationConfig()
    assert ValidationConfig.from_dict(ValidationConfig().to_dict()) == ValidationConfig()
    assert ValidationConfig.from_dict({}) == ValidationConfig()
    cfg = ValidationConfig.from_dict({"missing_rate_bands": {"user_profile": [0.1, 0.3]}})
    assert cfg.missing_rate_bands == {"user_profile": (0.1, 0.3)} and cfg.ranges == ValidationConfig().ranges


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"missing_rate": {}}, "unknown key"),
        ({"missing_rate_bands": {"user_profile": [0.6, 0.2]}}, "min > max"),
        ({"missing_rate_bands": {"user_profile": [0.0, 1.5]}}, "within [0, 1]"),
        ({"ranges": {"weekday": [0]}}, "[min, max] pair"),
        ({"value_sets": {"gender": []}}, "non-empty list"),
        ({"min_rows": -1}, "min_rows"),
    ],
)
def test_bad_config_is_rejected(bad: dict, words: str):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        ValidationConfig.from_dict(bad)


def test_config_naming_unknown_columns_is_rejected(tmp_path: Path):
    candidate = write_dataset(tmp_path / "datasets")
    with pytest.raises(ValueError, match="user_rating_mean"):
        validate_dataset(candidate, ValidationConfig.from_dict({"ranges": {"user_rating_mean": [1, 5]}}))


def test_tighter_band_from_config_fails(tmp_path: Path):
    candidate = write_dataset(tmp_path / "datasets")
    cfg = ValidationConfig.from_dict({"missing_rate_bands": {"item_stats": [0.0, 0.1]}})
    report = validate_dataset(candidate, cfg)
    assert {(f.split, f.column) for f in report.failures} == {
        (s, "missing_view__item_stats") for s in ("train", "validation", "test")
    }
    # the same failure in three splits is one line of the short report
    assert report.short_text().count("missing_view__item_stats") == 1


# ---------------------------------------------------------------------------------- CLI


def test_cli_fails_with_the_short_report_on_stderr(tmp_path: Path, previous: Path, capsys):
    splits = make_splits()
    label_of_two(splits)
    candidate = write_dataset(tmp_path / "datasets", splits)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"validate": DEFAULT_CONFIG}))
    before = snapshot(previous)
    report = tmp_path / "reports" / "validation.json"

    rc = main(["--candidate", str(candidate), "--validated", str(previous), "--report", str(report), "--params", str(params)])

    err = capsys.readouterr().err
    assert rc == 1
    assert "expect_column_values_to_be_in_set on column label" in err
    assert "Calculating Metrics" not in err  # no progress bars
    assert snapshot(previous) == before
    assert json.loads(report.read_text())["success"] is False


def test_cli_publishes_with_default_config_when_params_lack_the_section(tmp_path: Path, capsys):
    candidate = write_dataset(tmp_path / "datasets")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"dataset": {"split": {"train": 0.8}}}))
    validated = tmp_path / "validated"

    rc = main(["--candidate", str(candidate), "--validated", str(validated), "--report", str(tmp_path / "r.json"), "--params", str(params)])

    out, err = capsys.readouterr()
    assert rc == 0
    assert "no 'validate' section" in err and "default validation config" in err
    assert "dataset validation passed" in out
    assert snapshot(validated) == snapshot(candidate)


def test_cli_names_a_missing_candidate_file(tmp_path: Path, capsys):
    candidate = write_dataset(tmp_path / "datasets")
    (candidate / "validation.parquet").unlink()
    rc = main(
        ["--candidate", str(candidate), "--validated", str(tmp_path / "v"), "--report", str(tmp_path / "r.json"),
         "--params", str(tmp_path / "absent.yaml")]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "absent.yaml not found" in err
    assert str(candidate / "validation.parquet") in err
    assert not (tmp_path / "v").exists() and not (tmp_path / "r.json").exists()
