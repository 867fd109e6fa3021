"""Validation gate of the dataset stage.

A candidate dataset folder (train/validation/test.parquet and schema.json) is checked against the
project's contract, the Feast feature service `asymdiffrec_v1` as the applied registry holds it, never
against the candidate's own schema.json (which must equal the contract), with Great Expectations suites
tuned by the `validate:` section of params.yaml. Only a dataset that passes every expectation is
published: its contract files, whose hashes were validated, are copied to a staging folder and swapped
in; a failing dataset leaves the previous validated folder untouched.

    config.py        ValidationConfig, the `validate:` knobs
    candidate.py     reading the candidate; its files and schema.json against the contract
    expectations.py  the GX suites
    gx_results.py    running a suite, GX results -> ExpectationOutcome
    report.py        ExpectationOutcome, ValidationReport (JSON and short text), ValidationFailed
    check.py         validate_dataset: all of the above, writing nothing
    gate.py          the contract from the registry, run_gate, publish, validate_step (pipeline)
    cli.py           `python -m components.data.validate ...`
"""
from components.data.validate.check import validate_dataset
from components.data.validate.cli import main
from components.data.validate.config import ValidationConfig
from components.data.validate.gate import expected_contract, run_gate, short_report_path, validate_step
from components.data.validate.report import ValidationFailed, ValidationReport

__all__ = [
    "ValidationConfig",
    "ValidationFailed",
    "ValidationReport",
    "expected_contract",
    "main",
    "run_gate",
    "short_report_path",
    "validate_dataset",
    "validate_step",
]
