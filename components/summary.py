"""The headline numbers of a pipeline run, as DVC metrics small enough for `dvc metrics show` and
`dvc exp show` to fit a terminal.

    python -m components.summary --missingness reports/missingness.json \\
        --validation reports/validation.json --out metrics/data_summary.json
    python -m components.summary --evaluation metrics/evaluate.json \\
        --promotion metrics/promotion.json --out metrics/model_summary.json

The full reports (hundreds of keys) stay plain outputs; DVC would otherwise flatten every one of
their keys into a column. Each input is optional so the data stages get their summary as soon as
the data gate passed, without waiting for a trained model.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from common.files import atomic_write_json
from common.names import METRICS, SPLITS


def _read(path: Path | None) -> dict[str, Any] | None:
    return None if path is None else json.loads(Path(path).read_text())


def data_summary(missingness: dict[str, Any] | None, validation: dict[str, Any] | None) -> dict[str, Any]:
    """Missing rate per view per split (the first thing that moves when a feature job breaks) and
    the data gate's verdict."""

    out: dict[str, Any] = {}
    if missingness is not None:
        absent = [s for s in SPLITS if s not in missingness]
        if absent:
            raise KeyError(f"the missingness report lacks split(s) {absent}; it has {sorted(missingness)}")
        out["missing_rate"] = {s: dict(missingness[s]["missing_rate"]) for s in SPLITS}
    if validation is not None:
        out["validation"] = {"success": bool(validation["success"]), "failed": int(validation["failed"])}
    return out


def model_summary(evaluation: dict[str, Any] | None, promotion: dict[str, Any] | None) -> dict[str, Any]:
    """Test metrics (natural split) of every model the evaluation compared (candidate, base and,
    once there is one, champion) and the promotion gate's verdict."""

    out: dict[str, Any] = {}
    if evaluation is not None:
        out["test"] = {
            name: {m: result["natural"].get(m) for m in METRICS} for name, result in evaluation["models"].items()
        }
    if promotion is not None:
        out["promotion"] = {"promoted": bool(promotion["promoted"]), "tag": promotion.get("tag")}
    return out


def summarize(
    out_path: Path,
    missingness: Path | None = None,
    validation: Path | None = None,
    evaluation: Path | None = None,
    promotion: Path | None = None,
) -> dict[str, Any]:
    """Write the summary of whichever reports are given to out_path; returns it."""
    summary: dict[str, Any] = {}
    if missingness is not None or validation is not None:
        summary.update(data_summary(_read(missingness), _read(validation)))
    if evaluation is not None or promotion is not None:
        summary.update(model_summary(_read(evaluation), _read(promotion)))
    if not summary:
        raise ValueError("nothing to summarize: pass at least one of --missingness, --validation, --evaluation, --promotion")
    atomic_write_json(summary, Path(out_path))
    return summary


def count_columns(node: Any) -> int:
    """How many columns `dvc metrics show` gives a metrics file: its leaves, as DVC flattens them."""
    if isinstance(node, dict):
        return sum(count_columns(v) for v in node.values())
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the headline metrics of the pipeline's reports.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--missingness", type=Path, help="reports/missingness.json of the dataset step")
    parser.add_argument("--validation", type=Path, help="reports/validation.json of the validate step")
    parser.add_argument("--evaluation", type=Path, help="metrics/evaluate.json of the evaluate step")
    parser.add_argument("--promotion", type=Path, help="metrics/promotion.json of the promote step")
    args = parser.parse_args(argv)
    try:
        summary = summarize(args.out, args.missingness, args.validation, args.evaluation, args.promotion)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"summary: {e}", file=sys.stderr)
        return 2
    print(f"summary: {count_columns(summary)} metrics -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
