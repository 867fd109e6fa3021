"""KFP wrappers of the plain step functions in components/.

Each wrapper only hands its artefact paths and parameters to one plain function (imported inside
the body: KFP ships the body alone to the project image) and logs what that function returns.
Every step runs in the project image, which has this package installed. (No `from __future__ import
annotations` here: KFP reads the annotations as types.)
"""

from kfp import dsl
from typing import NamedTuple

from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from pipelines.image import PROJECT_IMAGE

component = dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)


@component
def ingest_op(ingest_config: str, source: str, n_events: int, raw: Output[Dataset]):
    """Raw tables (events, users, items) from MovieLens-100K or the synthetic generator.
    `ingest_config` is the params.yaml `ingest:` section as JSON; `source` and `n_events` override it."""
    import json
    from pathlib import Path

    from common.params import with_overrides
    from components.data.ingest import ingest_step

    config = json.loads(ingest_config)
    config = with_overrides(config, source=source, synthetic=with_overrides(config["synthetic"], n_events=n_events))
    for table, rows in ingest_step(config, Path(raw.path)).items():
        raw.metadata[f"{table}_rows"] = rows


@component
def feature_jobs_op(raw: Input[Dataset], feature_jobs_config: str, engine: str, feast_config: str, features: Output[Dataset]):
    """The batch feature jobs: each table stamped with the time its values became available.
    `feature_jobs_config` is the params.yaml `feature_jobs:` section as JSON; `engine` runs them in
    pandas (duckdb) or in the Spark session `feast_config` describes (spark)."""
    import json
    from pathlib import Path

    from components.data.engine import feature_jobs_step, stop_spark

    try:
        rows = feature_jobs_step(engine, Path(raw.path), Path(features.path), json.loads(feature_jobs_config), feast_config)
    finally:
        stop_spark()
    for table, count in rows.items():
        features.metadata[f"{table}_rows"] = count
    features.metadata["engine"] = engine


@component
def feast_apply_op(features: Input[Dataset], ttl_hours: dict, feast_config: str, registry: Output[Artifact]):
    """`feast apply`: the registry lands in this artefact (or where `feast_config` points it)."""
    from pathlib import Path

    from components.data.feature_store import apply_step

    apply_step(features.path, Path(registry.path), ttl_hours, feast_config)
    registry.metadata["feast_config"] = feast_config


@component
def materialize_op(features: Input[Dataset], registry: Input[Artifact], feast_config: str, online: Output[Artifact]):
    """Load the newest feature values into the online store (SQLite in this artefact, or Redis)."""
    from pathlib import Path

    from components.data.feature_store import materialize_step

    start, end = materialize_step(Path(features.path), Path(registry.path), Path(online.path), feast_config)
    online.metadata.update({"feast_config": feast_config, "start": start.isoformat(), "end": end.isoformat()})


@component
def dataset_op(
    raw: Input[Dataset],
    registry: Input[Artifact],
    dataset_config: str,
    feast_config: str,
    engine: str,
    dataset: Output[Dataset],
    reports: Output[Artifact],
    missingness: Output[Metrics],
):
    """Point-in-time join through the feature service, split by time, with missing-rate reports.
    `dataset_config` is the params.yaml `dataset:` section as JSON; views and TTLs come from the registry."""
    import json
    from pathlib import Path

    from components.data.dataset import dataset_step
    from components.data.engine import stop_spark

    try:
        report = dataset_step(
            Path(raw.path), Path(registry.path), Path(dataset.path), Path(reports.path), json.loads(dataset_config), feast_config,
            engine,
        )
    finally:
        stop_spark()
    for split_name, info in report.items():
        missingness.log_metric(f"{split_name}_rows", info["rows"])
        for view, rate in info["missing_rate"].items():
            missingness.log_metric(f"{split_name}_missing_{view}", rate)


@component
def validate_op(
    dataset: Input[Dataset],
    registry: Input[Artifact],
    validation: str,
    feast_config: str,
    validated: Output[Dataset],
    report: Output[Artifact],
):
    """The Great Expectations gate: a failing dataset fails the run, naming each broken expectation.
    The expected contract is the feature service in the apply step's `registry` (never the dataset's
    own schema.json); `validation` is the params.yaml `validate:` section as JSON."""
    import json
    from pathlib import Path

    from components.data.validate import validate_step

    outcome = validate_step(
        Path(dataset.path), Path(registry.path), Path(validated.path), Path(report.path) / "validation.json",
        json.loads(validation), feast_config,
    )
    validated.metadata.update({f"{split}_rows": rows for split, rows in outcome.rows.items()})


@component
def train_op(
    dataset: Input[Dataset],
    model_config: str,
    train_config: str,
    loader_config: str,
    epochs: int,
    seed: int,
    embed_dim: int,
    model: Output[Model],
    training: Output[Metrics],
) -> str:
    """Train AsymDiffRec and its base model on the validated dataset: torch DDP via torchrun when the
    node has several GPUs, one GPU or the CPU otherwise. `model_config` / `train_config` are the
    params.yaml `model:` / `train:` sections as JSON; the scalars override their keys; `loader_config`
    is the `train_loader:` section (in memory, or each rank streaming its Parquet shard). Returns the
    model's URI, which the pipeline imports whichever training branch ran."""
    import json
    from pathlib import Path

    from common.params import with_overrides
    from components.lifecycle.train import dataset_hash, launch_train

    result = launch_train(
        Path(dataset.path),
        Path(model.path),
        with_overrides(json.loads(model_config), embed_dim=embed_dim),
        with_overrides(json.loads(train_config), epochs=epochs, seed=seed),
        dataset_hash(Path(dataset.path)),
        loader=json.loads(loader_config),
    )
    for name, value in result.get("metrics", {}).items():
        training.log_metric(name, value)
    return model.uri


@component
def trainjob_train_op(
    dataset: Input[Dataset],
    model_config: str,
    train_config: str,
    loader_config: str,
    epochs: int,
    seed: int,
    embed_dim: int,
    num_nodes: int,
    gpus_per_node: int,
    runtime: str,
    image: str,
    artifact_uri: str,
    timeout_s: int,
    node_selector: dict,
    tolerations: list,
    cpu_per_node: str,
    memory_per_node: str,
    pod_env: str,
    model: Output[Model],
    training: Output[Metrics],
) -> str:
    """The same training on `num_nodes` pods of a Kubeflow Trainer TrainJob (runtime `runtime`; `gpus_per_node`,
    `cpu_per_node` and `memory_per_node` each; in `image`; placed by `node_selector` and `tolerations`).
    This step stages the dataset under `artifact_uri` (object storage: the trainer pods cannot see this
    pod's files), submits the job, waits up to `timeout_s` and downloads the model into its `model`
    output. `pod_env` (JSON list) names the ConfigMap and Secret keys the trainer pods read the object
    store's endpoint and keys from. Returns the model's URI, as train_op does."""
    import json
    from pathlib import Path

    from kubeflow.trainer import TrainerClient

    from common.params import with_overrides
    from components.lifecycle.train import dataset_hash
    from components.lifecycle.trainjob import EnvFrom, TrainerCluster, require_object_store, train_on_trainjob

    cluster = TrainerCluster(
        image=image, num_nodes=num_nodes, gpus_per_node=gpus_per_node, runtime=runtime,
        node_selector=node_selector, tolerations=tolerations, cpu_per_node=cpu_per_node, memory_per_node=memory_per_node,
        env=tuple(EnvFrom(**e) for e in json.loads(pod_env)), deadline_s=timeout_s,
    )
    result = train_on_trainjob(
        TrainerClient(),
        Path(dataset.path),
        Path(model.path),
        with_overrides(json.loads(model_config), embed_dim=embed_dim),
        with_overrides(json.loads(train_config), epochs=epochs, seed=seed),
        dataset_hash(Path(dataset.path)),
        cluster,
        require_object_store(artifact_uri),
        timeout_s,
        loader=json.loads(loader_config),
    )
    for name, value in result.get("metrics", {}).items():
        training.log_metric(name, value)
    model.metadata.update({"world_size": int(result.get("world_size", 0)), "num_nodes": num_nodes})
    return model.uri


@component
def evaluate_op(
    dataset: Input[Dataset],
    model: Input[Model],
    model_name: str,
    bentoml_home: str,
    evaluation_config: str,
    evaluation: Output[Artifact],
    plots: Output[Artifact],
    metrics: Output[Metrics],
    roc: Output[ClassificationMetrics],
    report: Output[Markdown],
):
    """Score the candidate, its base model and the current champion on the same test split.
    `evaluation_config` is the params.yaml `evaluate:` section (rates, seed) as JSON, read as the CLI reads it."""
    import json
    from pathlib import Path

    from components.lifecycle.evaluate import run_evaluate

    summary = run_evaluate(
        Path(dataset.path), Path(model.path), Path(evaluation.path), Path(plots.path), json.loads(evaluation_config),
        model_name, bentoml_home=bentoml_home,
    )["summary"]
    for name, value in summary["metrics"].items():
        metrics.log_metric(name, value)
    roc.log_roc_curve(summary["roc"]["fpr"], summary["roc"]["tpr"], summary["roc"]["thresholds"])
    Path(report.path).write_text(summary["markdown"])


@component
def promote_op(
    dataset: Input[Dataset],
    features: Input[Dataset],
    model: Input[Model],
    evaluation: Input[Artifact],
    thresholds: str,
    model_name: str,
    bentoml_home: str,
    serving_log_uri: str,
    decision: Output[Artifact],
) -> bool:
    """The gate against the champion: a passing model becomes the production model in the BentoML
    store; a failing one stays a candidate, and the decision says why. `thresholds` is the params.yaml
    `promote:` section as JSON. With a `serving_log_uri` (the folder the service's log is mirrored to;
    "" = none), the candidate and the champion are also shadowed on the logged requests, whose rows
    come from this run's `features`. Returns whether it promoted: the one output the package condition reads."""
    import json
    import tempfile
    from pathlib import Path

    from pipelines.remote import fetch_folder
    from components.lifecycle.promote import CardInputs, ShadowInputs, run_promote

    with tempfile.TemporaryDirectory(prefix="serving-log-") as tmp:
        shadow = None
        if serving_log_uri:
            log_dir = fetch_folder(serving_log_uri, Path(tmp) / "log")
            shadow = ShadowInputs(log_dir, Path(features.path), Path(dataset.path) / "schema.json", log_dir / "outcomes.jsonl")
        outcome = run_promote(
            Path(model.path), Path(evaluation.path), json.loads(thresholds), model_name, Path(decision.path),
            Path(dataset.path), bentoml_home, shadow, CardInputs(Path(dataset.path)),
        )
    decision.metadata.update({"promoted": bool(outcome["promoted"]), "tag": str(outcome.get("tag") or "")})
    return bool(outcome["promoted"])


@component
def package_op(model_name: str, bentoml_home: str, bento: Output[Artifact]):
    """Build the Bento of the serving service around the production model."""
    from pathlib import Path

    from components.lifecycle.package import package_step

    result = package_step(model_name, Path(bento.path), bentoml_home=bentoml_home)
    bento.metadata.update({k: v for k, v in result.items() if isinstance(v, (str, int, float, bool))})


@component
def monitor_op(
    reference: Input[Dataset],
    serving_log_uri: str,
    monitor_config: str,
    model_name: str,
    bentoml_home: str,
    report: Output[Artifact],
    summary: Output[Metrics],
) -> NamedTuple("Decision", [("retrain", bool), ("reasons", str)]):
    """Served traffic (the serving log folder at `serving_log_uri`, with `outcomes.jsonl` beside its files
    once labels have joined) against the training split of `reference` (the validated dataset the production model was trained on),
    both encoded by the production model's feature schema. `monitor_config` is the params.yaml `monitor:`
    section as JSON. Returns the decision and its reasons (a JSON list): the retrain condition reads them."""
    import json
    import tempfile
    from collections import namedtuple
    from pathlib import Path

    from pipelines.remote import fetch_folder
    from components.lifecycle.model_registry import champion_checkpoint
    from components.lifecycle.model_store import use_bentoml_home
    from components.monitor.monitor import MonitorConfig, monitor_step
    from components.monitor.monitor import summary as headline

    use_bentoml_home(bentoml_home)
    checkpoint = champion_checkpoint(model_name)
    if checkpoint is None:
        raise ValueError(f"no production model {model_name!r} in the model store: nothing is being served to monitor")
    with tempfile.TemporaryDirectory(prefix="serving-log-") as tmp:
        log_dir = fetch_folder(serving_log_uri, Path(tmp) / "log")
        result = monitor_step(log_dir, Path(reference.path), checkpoint, Path(report.path), None,
                              MonitorConfig.from_dict(json.loads(monitor_config)), log_dir / "outcomes.jsonl")
    for name, value in headline(result).items():
        summary.log_metric(name, float(value))
    report.metadata.update({"retrain": bool(result["retrain"]), "reasons": "; ".join(result["reasons"])})
    decision = namedtuple("Decision", ["retrain", "reasons"])
    return decision(bool(result["retrain"]), json.dumps(result["reasons"]))


@component
def retrain_op(reasons: str, training_arguments: str, serving_log_uri: str, experiment: str, kfp_host: str) -> str:
    """Start a run of the training pipeline (the image's own version of it) with `training_arguments`
    (JSON: its parameters; {} = params.yaml's defaults) and the monitored `serving_log_uri`, which its
    promote step shadows the challenger on; returns the run id."""
    import json

    import kfp

    from pipelines.retrain import start_training_run

    arguments = {"serving_log_uri": serving_log_uri, **json.loads(training_arguments)}
    return start_training_run(kfp.Client(host=kfp_host or None), arguments, experiment, json.loads(reasons))
