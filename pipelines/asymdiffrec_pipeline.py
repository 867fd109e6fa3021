"""The AsymDiffRec pipeline for Kubeflow Pipelines v2: ingest to package, one DAG.

Every knob is a pipeline parameter whose default comes from params.yaml, so a run with no
arguments is `dvc repro` on a cluster. The function below only wires the steps (pipelines/kfp_steps.py)
and says where they run: the GPU node pool for training, the model-store volume for the steps that
read or write BentoML models, the Feast settings (ConfigMap and Secret) for the steps that use the
feature store. Caching is off for the steps with effects outside their artefacts.

Training runs in one pod (`num_nodes` 1, the default: torchrun over that pod's `gpu_count` GPUs) or,
with `num_nodes` > 1, as a Kubeflow Trainer TrainJob of that many pods with `gpus_per_node` each
(components/lifecycle/trainjob.py). Each branch returns its model's URI and one importer turns
whichever ran into the `model` that evaluate and promote read (kfp.local cannot run dsl.OneOf over
artifacts, but it can over parameters).
"""

import json

from kfp import dsl, kubernetes

from common.params import load_params
from pipelines import kfp_steps as c
from pipelines.image import PROJECT_IMAGE

PIPELINE_NAME = "asymdiffrec"
P = load_params()

# Where the pods find the cluster's services (deploy/README.md creates these; both optional, so the
# embedded SQLite config runs without them).
FEAST_CONFIG_MAP = "asymdiffrec-feast"
FEAST_CONFIG_KEYS = {
    "FEAST_REGISTRY_URI": "FEAST_REGISTRY_URI",
    "REDIS_CONNECTION_STRING": "REDIS_CONNECTION_STRING",
    "FEAST_S3_ENDPOINT_URL": "FEAST_S3_ENDPOINT_URL",
    # engine=spark with feature_store.spark-cluster.yaml: its SQL registry and where its Spark runs
    "FEAST_REGISTRY_SQL_URL": "FEAST_REGISTRY_SQL_URL",
    "SPARK_IMAGE": "SPARK_IMAGE",
    "SPARK_NAMESPACE": "SPARK_NAMESPACE",
}
S3_SECRET = "asymdiffrec-s3"
S3_SECRET_KEYS = {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"}
MODEL_STORE_MOUNT = "/bentoml"  # the image's BENTOML_HOME

GPU_NODE_SELECTOR = {"asymdiffrec.io/pool": "gpu"}
GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]

TRAIN_CPU_REQUEST = "4"
TRAIN_MEMORY_REQUEST = "16G"

# Multi-node training (Kubeflow Trainer v2): its runtime, and where the launching step and the trainer
# pods hand the dataset and the model over (a bucket both reach; deploy/README.md creates it).
TRAINJOB_RUNTIME = "torch-distributed"
TRAINJOB_ARTIFACT_URI = "s3://asymdiffrec/trainjobs"
TRAINJOB_TIMEOUT_S = 6 * 3600
# What the trainer pods read the object store's endpoint and keys from: the same ConfigMap and Secret.
TRAINJOB_POD_ENV = [
    {"name": "FEAST_S3_ENDPOINT_URL", "kind": "configMap", "source": FEAST_CONFIG_MAP, "key": "FEAST_S3_ENDPOINT_URL"},
    *({"name": env, "kind": "secret", "source": S3_SECRET, "key": key} for env, key in S3_SECRET_KEYS.items()),
]


def uses_feature_store(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Feast settings of the cluster config (feature_store.cluster.yaml) from a ConfigMap and a Secret."""
    kubernetes.use_config_map_as_env(task, FEAST_CONFIG_MAP, FEAST_CONFIG_KEYS, optional=True)
    kubernetes.use_secret_as_env(task, S3_SECRET, S3_SECRET_KEYS, optional=True)
    return task


def uses_model_store(task: dsl.PipelineTask, pvc: str) -> dsl.PipelineTask:
    """The BentoML model store: a volume at the image's BENTOML_HOME, shared by the runs and the service."""
    kubernetes.mount_pvc(task, pvc_name=pvc, mount_path=MODEL_STORE_MOUNT)
    return task


def no_cache(task: dsl.PipelineTask) -> dsl.PipelineTask:
    task.set_caching_options(enable_caching=False)
    return task


@dsl.pipeline(name=PIPELINE_NAME, description="Feature jobs, Feast, Great Expectations gate, AsymDiffRec training, evaluation, promotion and packaging.")
def asymdiffrec_pipeline(
    # Each params.yaml section travels as JSON (KFP dicts would turn integers into floats and cannot
    # hold nulls); the scalars after a section override its most-changed keys.
    ingest_config: str = json.dumps(P["ingest"]),
    source: str = P["ingest"]["source"],
    n_events: int = P["ingest"]["synthetic"]["n_events"],
    feature_jobs_config: str = json.dumps(P["feature_jobs"]),
    engine: str = P["engine"],  # duckdb | spark: where the feature jobs and the join run (spark: a Spark feast_config)
    feast_config: str = P["feature_store"]["config"],
    ttl_hours: dict = P["feature_store"]["ttl_hours"],
    dataset_config: str = json.dumps(P["dataset"]),
    validation: str = json.dumps(P["validate"]),
    model_config: str = json.dumps(P["model"]),
    train_config: str = json.dumps(P["train"]),
    loader_config: str = json.dumps(P["train_loader"]),
    embed_dim: int = P["model"]["embed_dim"],
    epochs: int = P["train"]["epochs"],
    seed: int = P["train"]["seed"],
    evaluation_config: str = json.dumps(P["evaluate"]),
    promotion_thresholds: str = json.dumps(P["promote"]),
    model_name: str = P["serving"]["model_name"],
    # where training runs and where models live: the cluster's, not params.yaml's
    gpu_count: int = 1,
    gpu_node_selector: dict = GPU_NODE_SELECTOR,
    gpu_tolerations: list = GPU_TOLERATIONS,
    # multi-node training: num_nodes > 1 runs a Kubeflow Trainer TrainJob of that many pods instead of one pod
    num_nodes: int = 1,
    gpus_per_node: int = 1,
    trainjob_runtime: str = TRAINJOB_RUNTIME,
    trainjob_image: str = PROJECT_IMAGE,
    trainjob_artifact_uri: str = TRAINJOB_ARTIFACT_URI,
    trainjob_timeout_s: int = TRAINJOB_TIMEOUT_S,
    bentoml_home: str = "",
    model_store_pvc: str = "asymdiffrec-model-store",
    # the service's serving log, mirrored to object storage (s3://...): shadow the candidate on it ("" = no shadow)
    serving_log_uri: str = "",
):
    raw = c.ingest_op(ingest_config=ingest_config, source=source, n_events=n_events).set_display_name("ingest")
    features = c.feature_jobs_op(
        raw=raw.outputs["raw"], feature_jobs_config=feature_jobs_config, engine=engine, feast_config=feast_config,
    ).set_display_name("feature jobs")
    uses_feature_store(features)  # engine=spark: the Spark session the Feast config describes
    apply = c.feast_apply_op(features=features.outputs["features"], ttl_hours=ttl_hours, feast_config=feast_config)
    uses_feature_store(no_cache(apply.set_display_name("feast apply")))  # may write a shared registry
    online = c.materialize_op(features=features.outputs["features"], registry=apply.outputs["registry"], feast_config=feast_config)
    uses_feature_store(no_cache(online.set_display_name("materialize")))  # writes the online store
    dataset = c.dataset_op(
        raw=raw.outputs["raw"], registry=apply.outputs["registry"], dataset_config=dataset_config, feast_config=feast_config,
        engine=engine,
    )
    uses_feature_store(dataset.set_display_name("point-in-time dataset"))
    validated = c.validate_op(
        dataset=dataset.outputs["dataset"], registry=apply.outputs["registry"], validation=validation, feast_config=feast_config,
    )
    uses_feature_store(validated.set_display_name("validate"))  # reads the contract from the registry

    with dsl.If(num_nodes == 1, name="one-pod"):
        train = c.train_op(
            dataset=validated.outputs["validated"], model_config=model_config, train_config=train_config, loader_config=loader_config,
            epochs=epochs, seed=seed, embed_dim=embed_dim,
        ).set_display_name("train")
        train.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(gpu_count)
        train.register_pipeline_channels([gpu_count])  # so the branch passes gpu_count down to the limit's placeholder
        train.set_cpu_request(TRAIN_CPU_REQUEST).set_memory_request(TRAIN_MEMORY_REQUEST)
        kubernetes.add_node_selector_json(train, gpu_node_selector)
        kubernetes.add_toleration_json(train, gpu_tolerations)
    with dsl.Else(name="trainjob"):
        trainjob = c.trainjob_train_op(
            dataset=validated.outputs["validated"], model_config=model_config, train_config=train_config, loader_config=loader_config,
            epochs=epochs, seed=seed, embed_dim=embed_dim, num_nodes=num_nodes, gpus_per_node=gpus_per_node,
            runtime=trainjob_runtime, image=trainjob_image, artifact_uri=trainjob_artifact_uri,
            timeout_s=trainjob_timeout_s, node_selector=gpu_node_selector, tolerations=gpu_tolerations,
            cpu_per_node=TRAIN_CPU_REQUEST, memory_per_node=TRAIN_MEMORY_REQUEST, pod_env=json.dumps(TRAINJOB_POD_ENV),
        )
        uses_feature_store(trainjob.set_display_name("train (TrainJob)"))  # the object store's endpoint and keys
    model = dsl.importer(
        artifact_uri=dsl.OneOf(train.outputs["Output"], trainjob.outputs["Output"]), artifact_class=dsl.Model, reimport=False,
    ).set_display_name("model")

    evaluate = c.evaluate_op(
        dataset=validated.outputs["validated"], model=model.output, model_name=model_name, bentoml_home=bentoml_home,
        evaluation_config=evaluation_config,
    )
    uses_model_store(no_cache(evaluate.set_display_name("evaluate")), model_store_pvc)  # reads the current champion
    promote = c.promote_op(
        dataset=validated.outputs["validated"], features=features.outputs["features"], model=model.output,
        evaluation=evaluate.outputs["evaluation"], thresholds=promotion_thresholds, model_name=model_name,
        bentoml_home=bentoml_home, serving_log_uri=serving_log_uri,
    )
    uses_feature_store(uses_model_store(no_cache(promote.set_display_name("promote")), model_store_pvc))  # S3 endpoint and keys for the log
    with dsl.If(promote.outputs["Output"] == True, name="promoted"):  # noqa: E712 (a KFP condition, not a Python test)
        package = c.package_op(model_name=model_name, bentoml_home=bentoml_home)
        uses_model_store(no_cache(package.set_display_name("package")), model_store_pvc)
