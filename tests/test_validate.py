"""The dataset validation gate: real Great Expectations suites over small contract-shaped datasets,
checked against the real contract (the feature service of feature_repo/definitions.py)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from common.params import load_params
from components.data.feature_store import apply_definitions, apply_step, open_store, relocate_local_files
from components.data.validate import (
    ValidationConfig,
    ValidationFailed,
    expected_contract,
    main,
    run_gate,
    short_report_path,
    validate_dataset,
    validate_step,
)
from components.data.validate.gate import publish
from feature_repo.settings import REPO_DIR, FeatureRepoSettings
from tests._frames import contract, make_splits, schema_dict, write_dataset

FILES = ("train.parquet", "validation.parquet", "test.parquet", "schema.json")
PARAMS = load_params()
CONFIG = ValidationConfig.from_dict(PARAMS["validate"])  # the knobs of params.yaml, as the gate runs them
CONTRACT = contract()


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

    report = run_gate(candidate, previous, report_path, CONTRACT, CONFIG)

    assert report.success and not report.failures
    assert snapshot(previous) == snapshot(candidate)  # the new dataset replaced the old one
    assert sorted(snapshot(previous)) == sorted(FILES)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".validated")]  # no staging left behind
    full = json.loads(report_path.read_text())
    assert full["success"] is True and full["failed"] == 0
    assert set(full["splits"]) == {"candidate", "train", "validation", "test", "all_splits"}
    assert full["files"].keys() == set(FILES)
    types = {r["expectation"] for r in full["splits"]["train"]["results"]}
    assert {
        "expect_table_columns_to_match_set",
        "expect_column_type_to_be",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_unique",
        "expect_column_values_to_be_finite",
        "expect_column_distinct_values_to_contain_set",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_mean_to_be_between",
        "expect_column_pair_values_to_be_equal",
    } <= types
    candidate_checks = {r["expectation"] for r in full["splits"]["candidate"]["results"]}
    assert candidate_checks == {"expect_schema_json_to_match_contract", "expect_candidate_files_to_match_set"}
    means = {r["column"]: r["observed"] for r in full["splits"]["train"]["results"] if r["expectation"] == "expect_column_mean_to_be_between"}
    assert means["missing_view__user_profile"] == pytest.approx(0.2)
    assert means["missing_view__request_context"] == 0
    assert short_report_path(report_path).read_text().startswith("dataset validation passed")


# ---------------------------------------------------------------------------------- failing


@dataclass
class Draft:
    """A candidate before it is written: its splits, its schema.json and any other files."""

    splits: dict[str, pd.DataFrame] = field(default_factory=make_splits)
    schema: dict = field(default_factory=schema_dict)
    extra: dict[str, str] = field(default_factory=dict)

    def write(self, folder: Path) -> Path:
        return write_dataset(folder, self.splits, self.schema, self.extra)


def drop_column(d: Draft):
    d.splits["train"] = d.splits["train"].drop(columns=["user_mean_rating_30d"])


def drop_feature_from_data_and_schema(d: Draft):
    """A consistent candidate without one feature (one no knob names): its schema.json agrees with its
    data, not with the contract."""
    for name in d.splits:
        d.splits[name] = d.splits[name].drop(columns=["occupation", "missing__occupation"])
    d.schema["features"] = [f for f in d.schema["features"] if f["name"] != "occupation"]
    d.schema["views"]["user_profile"]["features"].remove("occupation")


def label_of_two(d: Draft):
    d.splits["validation"].loc[3, "label"] = 2


def one_class_split(d: Draft):
    d.splits["test"]["label"] = np.int64(0)


def inf_in_a_feature(d: Draft):
    """+inf inside the range [0, null] of params.yaml: only a finiteness check catches it."""
    frame = d.splits["validation"]
    row = frame.index[frame["missing__user_events_7d"] == 0][0]
    frame.loc[row, "user_events_7d"] = np.inf


def hour_of_24(d: Draft):
    d.splits["train"].loc[2, "hour_of_day"] = 24


def extra_file(d: Draft):
    d.extra["notes.txt"] = "not part of the dataset"


def feature_from_the_future(d: Draft):
    frame = d.splits["train"]
    row = frame.index[frame["missing_view__item_stats"] == 0][0]
    frame.loc[row, "item_stats_ts"] = frame.loc[row, "event_timestamp"] + pd.Timedelta(hours=1)


def profile_mostly_missing(d: Draft):
    """80% of test rows lose their user profile, consistently (values, masks, timestamp)."""
    frame = d.splits["test"]
    rows = frame.index[: int(len(frame) * 0.8)]
    for f in CONTRACT.views["user_profile"]["features"]:
        frame.loc[rows, f] = None
        frame.loc[rows, f"missing__{f}"] = np.int8(1)
    frame.loc[rows, "user_profile_ts"] = pd.NaT
    frame.loc[rows, "missing_view__user_profile"] = np.int8(1)


def event_in_two_splits(d: Draft):
    d.splits["test"].loc[0, "event_id"] = d.splits["train"].loc[5, "event_id"]


def duplicate_event_in_a_split(d: Draft):
    d.splits["train"].loc[1, "event_id"] = d.splits["train"].loc[0, "event_id"]


def null_without_mask(d: Draft):
    frame = d.splits["train"]
    row = frame.index[frame["missing__region"] == 0][0]
    frame.loc[row, "region"] = None


CASES = {
    "dropped column": (drop_column, "expect_table_columns_to_match_set", "user_mean_rating_30d", ["train"]),
    "feature dropped from data and schema.json": (
        drop_feature_from_data_and_schema, "expect_schema_json_to_match_contract", "occupation", ["candidate"]
    ),
    "label of 2": (label_of_two, "expect_column_values_to_be_in_set", "label", ["validation"]),
    "one-class split": (one_class_split, "expect_column_distinct_values_to_contain_set", "label", ["test"]),
    "inf in a feature": (inf_in_a_feature, "expect_column_values_to_be_finite", "user_events_7d", ["validation"]),
    "hour out of range": (hour_of_24, "expect_column_values_to_be_between", "hour_of_day", ["train"]),
    "extra file": (extra_file, "expect_candidate_files_to_match_set", "notes.txt", ["candidate"]),
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
    draft = Draft()
    corrupt(draft)
    candidate = draft.write(tmp_path / "datasets")
    report_path = tmp_path / "reports" / "validation.json"
    before = snapshot(previous)

    with pytest.raises(ValidationFailed) as failed:
        run_gate(candidate, previous, report_path, CONTRACT, CONFIG)

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


def test_data_is_checked_against_the_contract_not_the_candidates_schema(tmp_path: Path):
    """The feature missing from data and schema.json alike is missing from every split's columns."""
    draft = Draft()
    drop_feature_from_data_and_schema(draft)
    report = validate_dataset(draft.write(tmp_path / "datasets"), CONTRACT, CONFIG)
    column_sets = {f.split: f.column for f in report.failures if f.expectation == "expect_table_columns_to_match_set"}
    assert column_sets == {s: "occupation, missing__occupation" for s in ("train", "validation", "test")}
    (schema_failure,) = [f for f in report.failures if f.split == "candidate"]
    assert schema_failure.observed["missing"] == ["occupation"]
    assert "missing: occupation" in report.short_text()


def test_schema_json_differing_from_the_contract_names_what_differs(tmp_path: Path):
    schema = schema_dict()
    schema["views"]["user_activity"]["ttl_hours"] = 48.0
    next(f for f in schema["features"] if f["name"] == "gender")["kind"] = "numeric"
    report = validate_dataset(write_dataset(tmp_path / "datasets", schema=schema), CONTRACT, CONFIG)
    (failure,) = report.failures
    assert failure.expectation == "expect_schema_json_to_match_contract" and failure.column == "gender, user_activity"
    assert failure.observed["different"] == [
        "gender: kind 'numeric' (contract 'categorical')",
        f"user_activity: ttl_hours 48.0 (contract {CONTRACT.views['user_activity']['ttl_hours']!r})",
    ]


def test_publish_copies_only_the_validated_contract_files(tmp_path: Path):
    candidate = write_dataset(tmp_path / "datasets", extra={"notes.txt": "unchecked"})
    (candidate / "stray").mkdir()
    hashes = {name: hashlib.sha256((candidate / name).read_bytes()).hexdigest() for name in FILES}
    publish(candidate, tmp_path / "validated", hashes)
    assert sorted(p.name for p in (tmp_path / "validated").iterdir()) == sorted(FILES)
    with pytest.raises(RuntimeError, match="changed while it was being validated"):
        publish(candidate, tmp_path / "validated", {**hashes, "train.parquet": "0" * 64})
    with pytest.raises(ValueError, match="exactly"):
        publish(candidate, tmp_path / "validated", {**hashes, "notes.txt": "0" * 64})
    assert sorted(p.name for p in (tmp_path / "validated").iterdir()) == sorted(FILES)


def test_failure_report_quotes_the_offending_values(tmp_path: Path):
    draft = Draft()
    label_of_two(draft)
    report = validate_dataset(draft.write(tmp_path / "datasets"), CONTRACT, CONFIG)
    (failure,) = report.failures
    assert failure.observed["unexpected_count"] == 1 and failure.observed["examples"] == ["2"]
    assert "1 unexpected row(s)" in report.short_text()


def test_validate_dataset_writes_nothing(tmp_path: Path):
    candidate = write_dataset(tmp_path / "datasets")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    validate_dataset(candidate, CONTRACT, CONFIG)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


# ---------------------------------------------------------------------------------- config


def test_config_comes_whole_from_params_and_round_trips():
    assert ValidationConfig.from_dict(CONFIG.to_dict()) == CONFIG
    assert CONFIG.to_dict() == yaml.safe_load(yaml.safe_dump(CONFIG.to_dict()))  # plain YAML/JSON values
    assert CONFIG.missing_rate_bands["user_profile"] == (0.0, 0.8) and CONFIG.ranges["user_events_7d"] == (0.0, None)
    with pytest.raises(ValueError, match="lacks key.*min_rows.*add them to params.yaml"):
        ValidationConfig.from_dict({k: v for k, v in PARAMS["validate"].items() if k != "min_rows"})
    cfg = ValidationConfig.from_dict({**PARAMS["validate"], "missing_rate_bands": {"user_profile": [0.1, 0.3]}})
    assert cfg.missing_rate_bands == {"user_profile": (0.1, 0.3)} and cfg.ranges == CONFIG.ranges


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"missing_rate": {}}, "unknown key"),
        ({"missing_rate_bands": {"user_profile": [0.6, 0.2]}}, "min > max"),
        ({"missing_rate_bands": {"user_profile": [0.0, 1.5]}}, "within [0, 1]"),
        ({"missing_rate_bands": [0.0, 1.0]}, "validate.missing_rate_bands must be a mapping"),
        ({"ranges": {"weekday": [0]}}, "[min, max] pair"),
        ({"ranges": {"weekday": ["0", 6]}}, "validate.ranges.weekday must hold numbers or null"),
        ({"value_sets": {"gender": []}}, "non-empty list"),
        ({"min_rows": -1}, "min_rows"),
        ({"max_examples": True}, "max_examples"),
        ({"check_mask_consistency": "yes"}, "check_mask_consistency must be true or false"),
    ],
)
def test_bad_config_is_rejected(bad: dict, words: str):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        ValidationConfig.from_dict({**PARAMS["validate"], **bad})


def test_config_naming_unknown_columns_is_rejected(tmp_path: Path):
    candidate = write_dataset(tmp_path / "datasets")
    with pytest.raises(ValueError, match="user_rating_mean"):
        validate_dataset(candidate, CONTRACT, ValidationConfig.from_dict({**PARAMS["validate"], "ranges": {"user_rating_mean": [1, 5]}}))


def test_tighter_band_from_config_fails(tmp_path: Path):
    candidate = write_dataset(tmp_path / "datasets")
    cfg = ValidationConfig.from_dict({**PARAMS["validate"], "missing_rate_bands": {"item_stats": [0.0, 0.1]}})
    report = validate_dataset(candidate, CONTRACT, cfg)
    assert {(f.split, f.column) for f in report.failures} == {
        (s, "missing_view__item_stats") for s in ("train", "validation", "test")
    }
    # the same failure in three splits is one line of the short report
    assert report.short_text().count("missing_view__item_stats") == 1


# ---------------------------------------------------------------------------------- CLI


def feast_config_in(folder: Path) -> Path:
    """The project's Feast config with its registry and online store under `folder`."""
    raw = yaml.safe_load((REPO_DIR / "feature_store.yaml").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "feature_store.yaml"
    path.write_text(yaml.safe_dump(relocate_local_files(raw, folder)))
    return path


def params_file(folder: Path, feast_config: Path, **sections) -> Path:
    """params.yaml as the project's, pointing feature_store.config at `feast_config`."""
    params = {**PARAMS, "feature_store": {**PARAMS["feature_store"], "config": str(feast_config)}, **sections}
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="module")
def applied(tmp_path_factory) -> Path:
    """A Feast config whose registry holds the applied definitions, as `dvc repro feast_apply` leaves it."""
    config = feast_config_in(tmp_path_factory.mktemp("feast"))
    apply_definitions(open_store(fs_yaml=str(config)), FeatureRepoSettings.from_params(PARAMS, features_dir="data/features"))
    return config


@pytest.fixture
def cli_env(monkeypatch):
    monkeypatch.delenv("FEAST_FS_YAML", raising=False)


def test_the_tests_contract_is_the_applied_registrys(applied: Path, cli_env):
    assert expected_contract(str(applied)) == CONTRACT


def test_cli_fails_with_the_short_report_on_stderr(tmp_path: Path, previous: Path, applied: Path, cli_env, capsys):
    draft = Draft()
    label_of_two(draft)
    candidate = draft.write(tmp_path / "datasets")
    before = snapshot(previous)
    report = tmp_path / "reports" / "validation.json"

    rc = main(["--candidate", str(candidate), "--validated", str(previous), "--report", str(report),
               "--params", str(params_file(tmp_path, applied))])

    err = capsys.readouterr().err
    assert rc == 1
    assert "expect_column_values_to_be_in_set on column label" in err
    assert "Calculating Metrics" not in err  # no progress bars
    assert snapshot(previous) == before
    assert json.loads(report.read_text())["success"] is False


def test_cli_publishes_a_valid_dataset(tmp_path: Path, applied: Path, cli_env, capsys):
    candidate = write_dataset(tmp_path / "datasets")
    validated = tmp_path / "validated"

    rc = main(["--candidate", str(candidate), "--validated", str(validated), "--report", str(tmp_path / "r.json"),
               "--params", str(params_file(tmp_path, applied))])

    out, _ = capsys.readouterr()
    assert rc == 0
    assert "dataset validation passed" in out
    assert snapshot(validated) == snapshot(candidate)


def test_cli_refuses_params_without_the_validate_section(tmp_path: Path, applied: Path, cli_env, capsys):
    candidate = write_dataset(tmp_path / "datasets")
    params = params_file(tmp_path, applied)
    params.write_text(yaml.safe_dump({k: v for k, v in yaml.safe_load(params.read_text()).items() if k != "validate"}))

    rc = main(["--candidate", str(candidate), "--validated", str(tmp_path / "v"), "--report", str(tmp_path / "r.json"),
               "--params", str(params)])

    assert rc == 2
    assert "params.yaml lacks 'validate'" in capsys.readouterr().err
    assert not (tmp_path / "v").exists() and not (tmp_path / "r.json").exists()


def test_cli_without_an_applied_registry_says_to_run_feast_apply(tmp_path: Path, cli_env, capsys):
    candidate = write_dataset(tmp_path / "datasets")
    config = feast_config_in(tmp_path / "feast")

    rc = main(["--candidate", str(candidate), "--validated", str(tmp_path / "v"), "--report", str(tmp_path / "r.json"),
               "--params", str(params_file(tmp_path, config))])

    err = capsys.readouterr().err
    assert rc == 2
    assert "no applied Feast registry" in err and "dvc repro feast_apply" in err
    assert not (tmp_path / "feast" / "registry.db").exists()  # looking did not create an empty one
    assert not (tmp_path / "v").exists() and not (tmp_path / "r.json").exists()


def test_cli_names_a_missing_candidate_file(tmp_path: Path, applied: Path, cli_env, capsys):
    candidate = write_dataset(tmp_path / "datasets")
    (candidate / "validation.parquet").unlink()
    rc = main(
        ["--candidate", str(candidate), "--validated", str(tmp_path / "v"), "--report", str(tmp_path / "r.json"),
         "--params", str(params_file(tmp_path, applied))]
    )
    assert rc == 2
    assert str(candidate / "validation.parquet") in capsys.readouterr().err
    assert not (tmp_path / "v").exists() and not (tmp_path / "r.json").exists()


def test_cli_names_an_absent_params_file(tmp_path: Path, capsys):
    rc = main(["--candidate", str(tmp_path / "datasets"), "--params", str(tmp_path / "absent.yaml")])
    assert rc == 2
    assert "absent.yaml not found" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- pipeline step


def test_pipeline_step_reads_the_contract_from_the_apply_steps_registry(tmp_path: Path, cli_env):
    """validate_op's function: the registry folder of the apply step, the validate section as a dict."""
    registry = tmp_path / "registry"
    apply_step("data/features", registry, PARAMS["feature_store"]["ttl_hours"], PARAMS["feature_store"]["config"])
    draft = Draft()
    drop_feature_from_data_and_schema(draft)
    candidate = draft.write(tmp_path / "dataset")
    with pytest.raises(ValidationFailed, match="expect_schema_json_to_match_contract on column occupation"):
        validate_step(candidate, registry, tmp_path / "validated", tmp_path / "report" / "validation.json",
                      PARAMS["validate"], PARAMS["feature_store"]["config"])
    assert not (tmp_path / "validated").exists()
    with pytest.raises(FileNotFoundError, match="dvc repro feast_apply"):
        validate_step(candidate, tmp_path / "no-registry", tmp_path / "validated", tmp_path / "r.json",
                      PARAMS["validate"], PARAMS["feature_store"]["config"])


def test_the_gate_runs_as_a_module_with_pyspark_installed():
    """`python -m components.data.validate` (what DVC runs) must reach its CLI: importing Great
    Expectations while the package loads, before __main__ is set up, made pyspark exit 0 silently."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    pytest.importorskip("pyspark")
    out = subprocess.run([sys.executable, "-m", "components.data.validate", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "--candidate" in out.stdout, out.stderr
