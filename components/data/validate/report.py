"""What the gate found: one outcome per expectation and split, the full JSON report and the short text."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from components.data.contract import SPLITS
from common.jsonable import jsonable

ALL_SPLITS = "all_splits"  # checks over the three splits together
CANDIDATE = "candidate"  # checks of the candidate folder itself: its files and schema.json


@dataclass
class ExpectationOutcome:
    split: str  # a split, ALL_SPLITS or CANDIDATE
    expectation: str
    column: str | None
    success: bool
    observed: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def describe(self) -> str:
        """One line: what was found, and what was expected where it helps."""
        if self.error:
            return f"error: {self.error}"
        obs = self.observed
        if isinstance(obs, dict) and "unexpected_count" in obs:
            text = f"{obs['unexpected_count']} unexpected row(s)"
            if obs.get("unexpected_percent") is not None:
                text += f" ({obs['unexpected_percent']:.3g}%)"
            if obs.get("examples"):
                text += f", e.g. {', '.join(map(str, obs['examples']))}"
            return text
        if isinstance(obs, dict) and {"missing", "unexpected", "different"} & set(obs):
            return "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in obs.items() if v)
        return f"observed {obs!r}, expected {self._expected()}"

    def _expected(self) -> str:
        kw = self.kwargs
        if kw.get("min_value") is not None or kw.get("max_value") is not None:
            lo, hi = kw.get("min_value"), kw.get("max_value")
            return f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        for key in ("type_", "value_set", "type_list"):
            if key in kw:
                return repr(kw[key])
        return "see the full report"


@dataclass
class ValidationReport:
    candidate_dir: str
    results: list[ExpectationOutcome]
    rows: dict[str, int]
    files: dict[str, str] = field(default_factory=dict)  # contract file name -> sha256 of what was validated
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
            entry["results"].append({k: v for k, v in asdict(r).items() if k != "split"})
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
        return json.dumps(jsonable(self.to_dict()), indent=2) + "\n"

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


class ValidationFailed(RuntimeError):
    """The candidate dataset broke at least one expectation; the message is the short report."""

    def __init__(self, report: ValidationReport):
        super().__init__(report.short_text())
        self.report = report
