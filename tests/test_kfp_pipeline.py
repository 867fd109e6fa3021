"""The Kubeflow pipeline: the compiled YAML, and the real graph run end to end with kfp.local."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STEPS = {
    "ingest-op", "feature-jobs-op", "feast-apply-op", "materialize-op", "dataset-op",
    "validate-op", "train-op", "evaluate-op", "promote-op", "package-op",
}


@pytest.fixture(scope="module")
def compiled_files(tmp_path_factory) -> tuple[Path, Path]:
    """kfp_compile.py run as a user runs it: the training and the monitoring pipeline."""
    folder = tmp_path_factory.mktemp("kfp")
    out, monitoring = folder / "pipeline.yaml", folder / "monitoring.yaml"
    env = {**os.environ, "ASYMDIFFREC_IMAGE": "registry.example.com/asymdiffrec:test"}
    subprocess.run([sys.executable, "kfp_compile.py", "--output", str(out), "--monitoring-output", str(monitoring)],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    return out, monitoring


@pytest.fixture(scope="module")
def compiled(compiled_files) -> tuple[dict, dict]:
    """The training pipeline's spec and its Kubernetes platform spec."""
    pipeline_spec, platform_spec = yaml.safe_load_all(compiled_files[0].read_text())
    return pipeline_spec, platform_spec


def test_compiled_monitoring_pipeline_starts_training_only_when_the_monitor_says_so(compiled_files):
    spec, platform = yaml.safe_load_all(compiled_files[1].read_text())
    root = spec["root"]["dag"]["tasks"]
    assert {"monitor-op", "importer"} <= set(root) and "retrain-op" not in root
    gates = [t for t in root.values() if "condition" in t.get("triggerPolicy", {})]
    assert len(gates) == 1
    condition = gates[0]["triggerPolicy"]["condition"]
    assert "monitor-op-retrain" in condition and "== true" in condition
    inner = spec["components"][gates[0]["componentRef"]["name"]]["dag"]["tasks"]
    assert set(inner) == {"retrain-op"}
    inputs = inner["retrain-op"]["inputs"]["parameters"]
    assert inputs["reasons"]["componentInputParameter"] == "pipelinechannel--monitor-op-reasons"
    assert inputs["serving_log_uri"]["componentInputParameter"] == "pipelinechannel--serving_log_uri"  # the retraining shadows on it
    defaults = {k: v.get("defaultValue") for k, v in spec["root"]["inputDefinitions"]["parameters"].items()}
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert json.loads(defaults["monitor_config"]) == params["monitor"]
    assert defaults["model_name"] == params["serving"]["model_name"]
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e} == {"registry.example.com/asymdiffrec:test"}
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-monitor-op"]
    assert k8s["pvcMount"][0]["mountPath"] == "/bentoml"  # the production model's schema comes from the model store


def _all_tasks(spec: dict) -> dict[str, dict]:
    """Every task of the root DAG and of the nested condition DAGs, by name."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def test_compiled_yaml_holds_every_step_in_the_project_image(compiled):
    spec, _ = compiled
    tasks = _all_tasks(spec)
    assert STEPS <= set(tasks)
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values() if "container" in e} == {"registry.example.com/asymdiffrec:test"}
    assert {name for name, e in executors.items() if "container" not in e} == {"exec-importer"}  # the model of either training branch


def test_compiled_training_asks_for_a_gpu_node(compiled):
    spec, platform = compiled
    train = spec["deploymentSpec"]["executors"]["exec-train-op"]["container"]["resources"]
    assert train["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert train["accelerator"]["resourceCount"] == "{{$.inputs.parameters['pipelinechannel--gpu_count']}}"
    assert train["resourceCpuRequest"] and train["resourceMemoryRequest"]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-op"]
    assert k8s["nodeSelector"]["nodeSelectorJson"]["componentInputParameter"] == "pipelinechannel--gpu_node_selector"
    assert k8s["tolerations"][0]["tolerationJson"]["componentInputParameter"] == "pipelinechannel--gpu_tolerations"
    branch = next(c for c in spec["components"].values() if "train-op" in c.get("dag", {}).get("tasks", {}))
    assert "pipelinechannel--gpu_count" in branch["inputDefinitions"]["parameters"]  # the limit's value reaches the branch
    defaults = spec["root"]["inputDefinitions"]["parameters"]
    assert defaults["gpu_node_selector"]["defaultValue"] == {"asymdiffrec.io/pool": "gpu"}
    assert defaults["gpu_tolerations"]["defaultValue"][0]["key"] == "nvidia.com/gpu"


def test_compiled_promote_and_package_run_only_on_the_gate(compiled):
    spec, _ = compiled
    root = spec["root"]["dag"]["tasks"]
    gates = [t for t in root.values() if "condition" in t.get("triggerPolicy", {})]
    assert len(gates) == 1
    condition = gates[0]["triggerPolicy"]["condition"]
    assert "promote-op-Output" in condition and "== true" in condition
    inner = spec["components"][gates[0]["componentRef"]["name"]]["dag"]["tasks"]
    assert set(inner) == {"package-op"}
    assert "promote-op" in root and "package-op" not in root
    for name in ("materialize-op", "promote-op", "package-op", "evaluate-op"):
        assert _all_tasks(spec)[name].get("cachingOptions", {}).get("enableCache", False) is False
    assert _all_tasks(spec)["train-op"]["cachingOptions"]["enableCache"] is True


def test_compiled_training_is_one_pod_or_a_trainjob_by_num_nodes_and_both_feed_evaluate_and_promote(compiled):
    spec, platform = compiled
    components, root = spec["components"], spec["root"]["dag"]["tasks"]
    branches = components[root["condition-branches-1"]["componentRef"]["name"]]["dag"]
    by_condition = {
        t["triggerPolicy"]["condition"]: set(components[t["componentRef"]["name"]]["dag"]["tasks"])
        for t in branches["tasks"].values()
    }
    assert by_condition == {
        "int(inputs.parameter_values['pipelinechannel--num_nodes']) == 1": {"train-op"},
        "!(int(inputs.parameter_values['pipelinechannel--num_nodes']) == 1)": {"trainjob-train-op"},
    }
    # whichever branch ran, its model URI becomes the one model evaluate and promote read
    oneof = next(iter(branches["outputs"]["parameters"].values()))["valueFromOneof"]["parameterSelectors"]
    assert {s["outputParameterKey"] for s in oneof} == {"pipelinechannel--train-op-Output", "pipelinechannel--trainjob-train-op-Output"}
    importer = root["importer"]
    assert importer["inputs"]["parameters"]["uri"]["taskOutputParameter"]["producerTask"] == "condition-branches-1"
    for step in ("evaluate-op", "promote-op"):
        assert root[step]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == "importer", step

    launch = _all_tasks(spec)["trainjob-train-op"]["inputs"]["parameters"]
    for arg, param in {
        "num_nodes": "num_nodes", "gpus_per_node": "gpus_per_node", "runtime": "trainjob_runtime", "image": "trainjob_image",
        "artifact_uri": "trainjob_artifact_uri", "timeout_s": "trainjob_timeout_s", "node_selector": "gpu_node_selector",
        "tolerations": "gpu_tolerations", "epochs": "epochs", "train_config": "train_config",
    }.items():
        assert launch[arg]["componentInputParameter"] == f"pipelinechannel--{param}", arg
    pod_env = json.loads(launch["pod_env"]["runtimeValue"]["constant"])
    assert {e["name"]: (e["kind"], e["source"]) for e in pod_env} == {
        "FEAST_S3_ENDPOINT_URL": ("configMap", "asymdiffrec-feast"),
        "AWS_ACCESS_KEY_ID": ("secret", "asymdiffrec-s3"), "AWS_SECRET_ACCESS_KEY": ("secret", "asymdiffrec-s3"),
    }
    executor = spec["deploymentSpec"]["executors"]["exec-trainjob-train-op"]["container"]
    assert "accelerator" not in executor.get("resources", {})  # the launching pod only submits and waits
    assert "train_on_trainjob" in executor["command"][-1] and "TrainerClient" in executor["command"][-1]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-trainjob-train-op"]
    assert k8s["secretAsEnv"][0]["secretName"] == "asymdiffrec-s3"  # it uploads the dataset and downloads the model


# Every pipeline parameter and where its default comes from: a params.yaml section (as JSON), one
# params.yaml key, or the cluster (not a params.yaml knob).
SECTIONS = {
    "ingest_config": "ingest", "feature_jobs_config": "feature_jobs", "dataset_config": "dataset", "validation": "validate",
    "model_config": "model", "train_config": "train", "loader_config": "train_loader", "evaluation_config": "evaluate", "promotion_thresholds": "promote",
}
KEYS = {
    "source": "ingest.source", "n_events": "ingest.synthetic.n_events", "engine": "engine", "feast_config": "feature_store.config",
    "ttl_hours": "feature_store.ttl_hours", "embed_dim": "model.embed_dim", "epochs": "train.epochs", "seed": "train.seed",
    "model_name": "serving.model_name",
}
CLUSTER = {
    "gpu_count": 1, "gpu_node_selector": {"asymdiffrec.io/pool": "gpu"},
    "gpu_tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "bentoml_home": "", "model_store_pvc": "asymdiffrec-model-store", "serving_log_uri": "",
    "num_nodes": 1, "gpus_per_node": 1, "trainjob_runtime": "torch-distributed",
    "trainjob_image": "registry.example.com/asymdiffrec:test", "trainjob_artifact_uri": "s3://asymdiffrec/trainjobs",
    "trainjob_timeout_s": 6 * 3600,
}


def _dotted(params: dict, key: str):
    for part in key.split("."):
        params = params[part]
    return params


def test_every_pipeline_parameter_defaults_to_params_yaml(compiled):
    spec, _ = compiled
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    defaults = {k: v.get("defaultValue") for k, v in spec["root"]["inputDefinitions"]["parameters"].items()}
    assert set(defaults) == set(SECTIONS) | set(KEYS) | set(CLUSTER), "a pipeline parameter without a known default"
    for name, section in SECTIONS.items():
        assert json.loads(defaults[name]) == params[section], name
    for name, key in KEYS.items():
        assert defaults[name] == _dotted(params, key), name
    for name, value in CLUSTER.items():
        assert defaults[name] == value, name
    # DVC only: the studies of the model's case (quality report, selection on validation, gap sweep), and the
    # replayed traffic that stands in for a service on one machine; monitor: the monitoring pipeline's (its test checks that default)
    sections = {k for k in params if isinstance(params[k], dict)} - {"quality", "selection", "tax_sweep", "replay", "monitor"}
    covered = set(SECTIONS.values()) | {k.split(".")[0] for k in KEYS.values()}
    assert sections <= covered, f"params.yaml sections the pipeline cannot set: {sections - covered}"


def test_whole_pipeline_runs_locally_and_promotes_a_model(tmp_path, monkeypatch):
    """The compiled graph, every step in a subprocess of this environment, on 15k synthetic events;
    then the evaluate step run as DVC runs it, on the same inputs, gives the same metrics."""
    import bentoml
    from kfp import local

    from pipelines.asymdiffrec_pipeline import asymdiffrec_pipeline

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    ingest = params["ingest"]
    ingest["synthetic"].update(n_users=600, n_items=300, days=30)
    home = tmp_path / "bentoml"
    monkeypatch.setenv("BENTOML_HOME", str(home))  # the subprocesses inherit it; also the run parameter below
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    asymdiffrec_pipeline(
        ingest_config=json.dumps(ingest), source="synthetic", n_events=15_000, epochs=1, seed=0, bentoml_home=str(home),
        # One epoch on 15k events proves the wiring, not the model: let any candidate through the gate
        # (the gate's own tests hold it to its real thresholds).
        promotion_thresholds=json.dumps({**params["promote"], "min_gain_over_base": -1.0}),
    )

    from components.lifecycle.model_registry import production_tag

    tag = production_tag("asymdiffrec")
    assert tag, "no production model in the BentoML store after the pipeline"
    run = next((tmp_path / "root").iterdir())
    validated = json.loads((run / "validate-op" / "executor_output.json").read_text())["artifacts"]["validated"]["artifacts"][0]
    assert sum(validated["metadata"][f"{s}_rows"] for s in ("train", "validation", "test")) == 15_000
    decision = json.loads((run / "promote-op" / "decision").read_text())
    assert decision["promoted"] is True and decision["production"] == tag
    evaluation = json.loads((run / "evaluate-op" / "evaluation").read_text())
    assert set(evaluation["models"]) == {"candidate", "base"}  # no champion before the first promotion
    assert evaluation["rates"] == params["evaluate"]["rates"]  # the evaluate section reached the KFP step
    for model in evaluation["models"].values():
        assert 0.0 < model["natural"]["auc"] < 1.0 and model["weights_md5"]
    logged = json.loads((run / "evaluate-op" / "executor_output.json").read_text())["artifacts"]["metrics"]
    assert 0.0 < logged["artifacts"][0]["metadata"]["candidate_auc"] < 1.0
    package = json.loads((run / "package-op" / "executor_output.json").read_text())["artifacts"]["bento"]["artifacts"][0]
    bento = bentoml.bentos.get(package["metadata"]["bento"], _bento_store=_bento_store(home))
    assert {str(m.tag) for m in bento.info.all_models} == {tag}, "the Bento serves the promoted model"

    # The same step through its CLI (DVC's command) on the KFP run's artefacts: the same numbers.
    out = tmp_path / "cli"
    subprocess.run(
        [sys.executable, "-m", "components.lifecycle.evaluate", "--data", str(run / "validate-op" / "validated"),
         "--models", str(run / "train-op" / "model"), "--metrics", str(out / "evaluate.json"), "--plots", str(out / "plots"),
         "--params", str(ROOT / "params.yaml"), "--no-champion"],
        cwd=ROOT, check=True, capture_output=True,
    )
    cli = json.loads((out / "evaluate.json").read_text())
    assert _without_paths(cli) == _without_paths(evaluation)


def _without_paths(evaluation: dict) -> dict:
    return {**evaluation, "models": {n: {k: v for k, v in m.items() if k != "checkpoint"} for n, m in evaluation["models"].items()}}


def _bento_store(home: Path):
    from bentoml._internal.bento import BentoStore

    return BentoStore(str(home / "bentos"))
