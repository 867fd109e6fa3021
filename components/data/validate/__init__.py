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
from importlib import import_module
from typing import Any

# Exported lazily: importing the package must not import Great Expectations. `python -m
# components.data.validate` imports the package before __main__ is set up, and GX imports pyspark
# (when installed), whose Spark Connect check takes an import at that moment for a doctest run and
# exits 0 without a word.
_EXPORTS = {
    "ValidationConfig": "config",
    "ValidationFailed": "report",
    "ValidationReport": "report",
    "expected_contract": "gate",
    "main": "cli",
    "run_gate": "gate",
    "short_report_path": "gate",
    "validate_dataset": "check",
    "validate_step": "gate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
