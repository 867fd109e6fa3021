"""The gate: validate, write the reports, and publish the validated files, or leave the validated
folder as it was. Also where the expected contract comes from: the applied Feast registry."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from common.files import atomic_write_text, file_digest, replace_dir, staging_dir_for
from components.data.contract import FEATURE_SERVICE, DatasetSchema, schema_from_store
from components.data.feature_store import is_uri, open_store, registry_path
from components.data.validate.candidate import CONTRACT_FILES
from components.data.validate.check import validate_dataset
from components.data.validate.config import ValidationConfig
from components.data.validate.report import ValidationFailed, ValidationReport


def expected_contract(fs_yaml: str, work_dir: Path | None = None) -> DatasetSchema:
    """The contract of the feature service in the applied registry (`work_dir`: where a pipeline run's
    apply step left it; None: where the Feast config points, data/feast/registry.db by default)."""
    store = open_store(fs_yaml=fs_yaml, work_dir=work_dir)
    hint = f"the gate checks the dataset against the feature service {FEATURE_SERVICE} it holds; run `dvc repro feast_apply` first"
    if not is_uri(store.config.registry.path) and not registry_path(store).exists():
        # checked first: Feast would create an empty registry on the first read
        raise FileNotFoundError(f"no applied Feast registry at {registry_path(store).resolve()}; {hint}")
    from feast.errors import FeatureServiceNotFoundException

    try:
        return schema_from_store(store)
    except FeatureServiceNotFoundException as e:
        raise FileNotFoundError(f"{e} (registry {store.config.registry.path}); {hint}") from e


def short_report_path(report_path: Path) -> Path:
    return Path(report_path).with_suffix(".txt")


def publish(candidate_dir: Path, validated_dir: Path, validated_hashes: dict[str, str]) -> None:
    """Copy exactly the contract files into a staging folder beside `validated_dir`, check the copies
    are the bytes that were validated, then swap the staging folder in. Nothing else in the candidate
    folder is copied. On any error the old folder stays as it was."""
    if set(validated_hashes) != set(CONTRACT_FILES):
        raise ValueError(f"publish needs the sha256 of exactly {list(CONTRACT_FILES)}, got {sorted(validated_hashes)}")
    candidate_dir, validated_dir = Path(candidate_dir), Path(validated_dir)
    staging = staging_dir_for(validated_dir)
    try:
        for name, digest in validated_hashes.items():
            shutil.copy2(candidate_dir / name, staging / name)
            if file_digest(staging / name, "sha256") != digest:
                raise RuntimeError(f"{candidate_dir / name} changed while it was being validated; nothing was published")
        replace_dir(staging, validated_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def run_gate(
    candidate_dir: Path, validated_dir: Path, report_path: Path, expected: DatasetSchema, config: ValidationConfig
) -> ValidationReport:
    """Validate the candidate against `expected`, write the full (JSON) and short (.txt) reports, and
    publish the dataset to `validated_dir` if it passed. Raises ValidationFailed (message: the short
    report) if it did not, leaving `validated_dir` as it was."""
    report = validate_dataset(candidate_dir, expected, config)
    report_path = Path(report_path)
    atomic_write_text(report.to_json(), report_path)
    atomic_write_text(report.short_text(), short_report_path(report_path))
    if not report.success:
        raise ValidationFailed(report)
    publish(candidate_dir, validated_dir, report.files)
    return report


def validate_step(
    candidate_dir: Path,
    registry_dir: Path | None,
    validated_dir: Path,
    report_path: Path,
    validation: dict[str, Any],
    fs_yaml: str,
) -> ValidationReport:
    """The validate stage of a pipeline run: the contract from the registry the apply step left in
    `registry_dir`, the knobs from `validation` (params.yaml's `validate:` section)."""
    config = ValidationConfig.from_dict(validation)
    return run_gate(candidate_dir, validated_dir, report_path, expected_contract(fs_yaml, registry_dir), config)
