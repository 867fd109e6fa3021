"""`validate_dataset`: every check of a candidate against the expected contract, writing nothing."""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from components.data.contract import SPLITS, DatasetSchema
from components.data.validate.candidate import files_outcome, read_candidate, schema_outcome
from components.data.validate.config import ValidationConfig
from components.data.validate.expectations import (
    check_config_against_contract,
    cross_split_expectations,
    mask_expectations,
    mask_frame,
    split_expectations,
)
from components.data.validate.gx_results import batch_definition, for_gx, run_suite, suite
from components.data.validate.report import ALL_SPLITS, ExpectationOutcome, ValidationReport


def validate_dataset(candidate_dir: Path, expected: DatasetSchema, config: ValidationConfig) -> ValidationReport:
    """Check a candidate dataset folder against `expected`, the contract of the feature service (never
    the candidate's own schema.json, which must equal it), and the knobs in `config`. Raises
    FileNotFoundError / ValueError when the inputs are unusable; every data problem is an outcome."""
    candidate_dir = Path(candidate_dir)
    check_config_against_contract(expected, config)
    candidate = read_candidate(candidate_dir)
    results: list[ExpectationOutcome] = [files_outcome(candidate), schema_outcome(candidate.schema, expected)]
    definition = batch_definition()
    split_suite = suite("dataset_split", split_expectations(expected, config))
    columns, examples = expected.columns, config.max_examples
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for split in SPLITS:
            frame = candidate.frames[split]
            results += run_suite(definition, for_gx(frame, expected), split_suite, split, columns, examples)
            if config.check_mask_consistency:
                masks = mask_frame(frame, expected)
                mask_suite = suite(f"dataset_masks_{split}", mask_expectations(expected, masks.columns))
                results += run_suite(definition, masks, mask_suite, split, columns, examples)
        key = expected.keys[0]
        if all(key in candidate.frames[s].columns for s in SPLITS):
            keys = pd.concat([candidate.frames[s][[key]] for s in SPLITS], ignore_index=True)
            cross_suite = suite("dataset_all_splits", cross_split_expectations(expected))
            results += run_suite(definition, keys, cross_suite, ALL_SPLITS, columns, examples)
    rows = {s: len(candidate.frames[s]) for s in SPLITS}
    rows[ALL_SPLITS] = sum(rows.values())
    return ValidationReport(str(candidate_dir), results, rows, files=candidate.hashes, config=config.to_dict())
