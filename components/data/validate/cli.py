"""The command line of the gate (`python -m components.data.validate`), as dvc.yaml runs it.

    python -m components.data.validate --candidate data/datasets --validated data/validated \\
        --report reports/validation.json --params params.yaml

The knobs come from the `validate:` section of params.yaml; the expected contract from the Feast
registry that `dvc repro feast_apply` wrote, through the config named by `feature_store.config`.
Exit status: 0 when the dataset passed and was published, 1 when an expectation failed (short
report on stderr), 2 when the inputs are unusable (a missing file or registry, a bad config)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

from common.params import load_params, section
from components.data.feature_store import pipeline_feast_config
from components.data.validate.config import ValidationConfig
from components.data.validate.gate import expected_contract, run_gate
from components.data.validate.report import ValidationFailed


def quiet_gx() -> None:
    """No progress bars or library chatter on the console: the short report is the output."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"great_expectations(\..*)?")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Validate a candidate dataset against the feature service's contract and publish it if it passes.")
    parser.add_argument("--candidate", type=Path, default=Path("data/datasets"))
    parser.add_argument("--validated", type=Path, default=Path("data/validated"))
    parser.add_argument("--report", type=Path, default=Path("reports/validation.json"))
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    quiet_gx()
    try:
        params = load_params(args.params)
        config = ValidationConfig.from_dict(section(params, "validate"))
        expected = expected_contract(pipeline_feast_config(params))
        report = run_gate(args.candidate, args.validated, args.report, expected, config)
    except ValidationFailed as e:
        sys.stderr.write(str(e))
        print(f"full report: {args.report}; {args.validated} left as it was", file=sys.stderr)
        return 1
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"validate: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 2
    sys.stdout.write(report.short_text())
    print(f"published {args.candidate} -> {args.validated}; full report: {args.report}")
    return 0
