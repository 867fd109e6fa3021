"""What the monitoring pipeline does when its monitor says retrain: start a run of the training pipeline.

The training pipeline is compiled from the code in the image that runs the monitor, so the run it starts
is the same version of the project; no pipeline needs to be uploaded first. A recurring run of the
monitoring pipeline (deploy/README.md) closes the loop: serve -> log -> monitor -> retrain -> promote.
"""
from __future__ import annotations

import inspect
import logging
from datetime import datetime, timezone
from typing import Any, Protocol

log = logging.getLogger(__name__)


class RunStarter(Protocol):
    """The part of `kfp.Client` used here."""

    def create_run_from_pipeline_func(self, pipeline_func: Any, arguments: dict | None = None, run_name: str | None = None,
                                      experiment_name: str | None = None, **kwargs: Any) -> Any: ...


def training_parameters() -> set[str]:
    """The training pipeline's parameter names."""
    from pipelines.asymdiffrec_pipeline import asymdiffrec_pipeline

    return set(inspect.signature(asymdiffrec_pipeline.pipeline_func).parameters)


def start_training_run(client: RunStarter, arguments: dict[str, Any], experiment: str, reasons: list[str]) -> str:
    """Submit the training pipeline with `arguments` (unknown names are refused before anything is sent);
    returns the run id. `reasons` (the monitor's) go to the log and the run's name says why it started."""
    from pipelines.asymdiffrec_pipeline import PIPELINE_NAME, asymdiffrec_pipeline

    unknown = sorted(set(arguments) - training_parameters())
    if unknown:
        raise ValueError(f"training_arguments names unknown parameter(s) {unknown}; the training pipeline takes {sorted(training_parameters())}")
    if not experiment:
        raise ValueError("experiment must name the KFP experiment the retraining runs go to")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    log.warning("starting a retraining run of %s: %s", PIPELINE_NAME, "; ".join(reasons) or "(no reason given)")
    result = client.create_run_from_pipeline_func(asymdiffrec_pipeline, arguments=dict(arguments),
                                                  run_name=f"{PIPELINE_NAME}-retrain-{stamp}", experiment_name=experiment)
    return str(result.run_id)
