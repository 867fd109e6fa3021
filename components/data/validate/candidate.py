"""Reading a candidate dataset folder, and the checks of the folder itself against the contract:
exactly the contract files, and a schema.json equal to the contract the feature service defines.
(GX validates dataframes, not folders; these two are plain Python that yield the same outcomes.)"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from common.files import file_digest
from components.data.contract import FEATURE_SERVICE, SCHEMA_FILE, SPLITS, DatasetSchema
from components.data.validate.report import CANDIDATE, ExpectationOutcome

CONTRACT_FILES = tuple(f"{s}.parquet" for s in SPLITS) + (SCHEMA_FILE,)
FILES_EXPECTATION = "expect_candidate_files_to_match_set"
SCHEMA_EXPECTATION = "expect_schema_json_to_match_contract"


@dataclass
class Candidate:
    schema: DatasetSchema  # what the candidate's schema.json says; never trusted as the contract
    frames: dict[str, pd.DataFrame]
    hashes: dict[str, str]  # contract file name -> sha256 of the bytes that were read
    other_files: list[str]  # anything in the folder besides the contract files


def read_candidate(candidate_dir: Path) -> Candidate:
    """The candidate's schema.json, splits and hashes. Raises FileNotFoundError naming the first absent
    contract file, ValueError for a file that cannot be read."""
    candidate_dir = Path(candidate_dir)
    for name in CONTRACT_FILES:
        if not (candidate_dir / name).is_file():
            raise FileNotFoundError(f"candidate dataset lacks {candidate_dir / name} (expected {', '.join(CONTRACT_FILES)})")
    hashes = {name: file_digest(candidate_dir / name, "sha256") for name in CONTRACT_FILES}
    schema_path = candidate_dir / SCHEMA_FILE
    try:
        schema = DatasetSchema.from_dict(json.loads(schema_path.read_text()), source=str(schema_path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{schema_path} is not valid JSON: {e}") from e
    frames = {}
    for split in SPLITS:
        path = candidate_dir / f"{split}.parquet"
        try:
            frames[split] = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for a corrupt file
            raise ValueError(f"cannot read {path}: {e}") from e
    other = sorted(p.name for p in candidate_dir.iterdir() if p.name not in CONTRACT_FILES)
    return Candidate(schema, frames, hashes, other)


def files_outcome(candidate: Candidate) -> ExpectationOutcome:
    """Only the contract files: anything else would be unchecked data beside the dataset."""
    return ExpectationOutcome(
        split=CANDIDATE,
        expectation=FILES_EXPECTATION,
        column=", ".join(candidate.other_files) or None,
        success=not candidate.other_files,
        observed={"unexpected": candidate.other_files},
        kwargs={"file_set": list(CONTRACT_FILES)},
    )


def schema_outcome(found: DatasetSchema, expected: DatasetSchema) -> ExpectationOutcome:
    """schema.json equals the contract; a failure names the features (or views) missing, extra or different."""
    diff, names = schema_differences(found, expected)
    return ExpectationOutcome(
        split=CANDIDATE,
        expectation=SCHEMA_EXPECTATION,
        column=", ".join(names) or None,
        success=found == expected,
        observed=diff,
        kwargs={"contract": f"feature service {FEATURE_SERVICE}"},
    )


def schema_differences(found: DatasetSchema, expected: DatasetSchema) -> tuple[dict[str, list[str]], list[str]]:
    """({"missing": [...], "unexpected": [...], "different": ["<name>: <what>", ...]}, the names involved)."""
    want, got = {f.name: f for f in expected.features}, {f.name: f for f in found.features}
    missing = [n for n in want if n not in got] + [f"view {v}" for v in expected.views if v not in found.views]
    unexpected = [n for n in got if n not in want] + [f"view {v}" for v in found.views if v not in expected.views]
    different: list[tuple[str, str]] = []
    for name in (n for n in want if n in got and got[n] != want[n]):
        a, b = asdict(got[name]), asdict(want[name])
        different.append((name, ", ".join(f"{k} {a[k]!r} (contract {b[k]!r})" for k in b if a[k] != b[k])))
    for attr in ("keys", "timestamp", "label"):
        if getattr(found, attr) != getattr(expected, attr):
            different.append((attr, f"{getattr(found, attr)!r} (contract {getattr(expected, attr)!r})"))
    agreed = {n for n in want if n in got and got[n].view == want[n].view}  # others are reported above
    for view in (v for v in expected.views if v in found.views):
        a, b = dict(found.views[view]), dict(expected.views[view])
        a["features"], b["features"] = ([f for f in d.get("features", []) if f in agreed] for d in (a, b))
        for key in (k for k in ("ttl_hours", "timestamp_column", "features") if a.get(k) != b.get(k)):
            different.append((view, f"{key} {a.get(key)!r} (contract {b.get(key)!r})"))
    if found != expected and not (missing or unexpected or different):
        different.append(("features", "listed in another order than the contract's"))
    names = list(dict.fromkeys([n.removeprefix("view ") for n in [*missing, *unexpected]] + [n for n, _ in different]))
    return {"missing": missing, "unexpected": unexpected, "different": [f"{n}: {d}" for n, d in different]}, names
