"""The monitoring pipeline for Kubeflow Pipelines v2: served traffic vs training, and retraining when it drifted.

    monitor (serving log vs the production model's training split)
      └─ if retrain: start a run of the training pipeline (pipelines/retrain.py)

Run it on a schedule (a KFP recurring run, deploy/README.md): each run reads the service's serving log,
which the deployment mirrors to object storage (`serving_log_uri`), and the validated dataset the
production model was trained on (its artefact URI, through an importer). The decision's reasons land in
the run's report artefact; the training run it starts gets the same `serving_log_uri`, so its promote
step shadows the challenger against the champion on that logged traffic before anything ships.
"""

import json

from kfp import dsl

from common.params import load_params
from pipelines import kfp_steps as c
from pipelines.asymdiffrec_pipeline import uses_feature_store, uses_model_store

MONITORING_PIPELINE_NAME = "asymdiffrec-monitoring"
P = load_params()


@dsl.pipeline(name=MONITORING_PIPELINE_NAME, description="Served missingness, PSI and ages vs training; starts retraining when they drift.")
def monitoring_pipeline(
    serving_log_uri: str = "s3://asymdiffrec/serving-log",
    reference_dataset_uri: str = "",
    monitor_config: str = json.dumps(P["monitor"]),
    model_name: str = P["serving"]["model_name"],
    training_arguments: str = "{}",
    experiment: str = "asymdiffrec",
    kfp_host: str = "http://ml-pipeline.kubeflow:8888",
    bentoml_home: str = "",
    model_store_pvc: str = "asymdiffrec-model-store",
):
    reference = dsl.importer(artifact_uri=reference_dataset_uri, artifact_class=dsl.Dataset, reimport=False)
    reference.set_display_name("training dataset")
    monitor = c.monitor_op(
        reference=reference.output, serving_log_uri=serving_log_uri, monitor_config=monitor_config,
        model_name=model_name, bentoml_home=bentoml_home,
    )
    uses_feature_store(uses_model_store(monitor.set_display_name("monitor"), model_store_pvc))  # the model's schema; S3 for the log
    monitor.set_caching_options(enable_caching=False)  # the log under the same URI grows between runs
    with dsl.If(monitor.outputs["retrain"] == True, name="drifted"):  # noqa: E712 (a KFP condition, not a Python test)
        retrain = c.retrain_op(reasons=monitor.outputs["reasons"], training_arguments=training_arguments,
                               serving_log_uri=serving_log_uri, experiment=experiment, kfp_host=kfp_host)
        retrain.set_display_name("start training run").set_caching_options(enable_caching=False)
