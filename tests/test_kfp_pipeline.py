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
def compiled(tmp_path_factory) -> tuple[dict, dict]:
    """kfp_compile.py run as a user runs it; returns the pipeline spec and the Kubernetes platform spec."""
    out = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    env = {**os.environ, "ASYMDIFFREC_IMAGE": "registry.example.com/asymdiffrec:test"}
    subprocess.run([sys.executable, "kfp_compile.py", "--output", str(out)], cwd=ROOT, env=env, check=True, capture_output=True)
    pipeline_spec, platform_spec = yaml.safe_load_all(out.read_text())
    return pipeline_spec, platform_spec


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
    assert {e["container"]["image"] for e in executors.values()} == {"registry.example.com/asymdiffrec:test"}


def test_compiled_training_asks_for_a_gpu_node(compiled):
    spec, platform = compiled
    train = spec["deploymentSpec"]["executors"]["exec-train-op"]["container"]["resources"]
    assert train["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert train["accelerator"]["resourceCount"] == "{{$.inputs.parameters['pipelinechannel--gpu_count']}}"
    assert train["resourceCpuRequest"] and train["resourceMemoryRequest"]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-op"]
    assert k8s["nodeSelector"]["nodeSelectorJson"]["componentInputParameter"] == "gpu_node_selector"
    assert k8s["tolerations"][0]["tolerationJson"]["componentInputParameter"] == "gpu_tolerations"
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
    assert root["train-op"]["cachingOptions"]["enableCache"] is True


def test_every_pipeline_parameter_defaults_to_params_yaml(compiled):
    spec, _ = compiled
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    defaults = {k: v.get("defaultValue") for k, v in spec["root"]["inputDefinitions"]["parameters"].items()}
    assert defaults["n_events"] == params["ingest"]["synthetic"]["n_events"]
    assert defaults["batch_failure_rate"] == params["feature_jobs"]["batch_failure_rate"]
    assert defaults["ttl_hours"] == params["feature_store"]["ttl_hours"]
    assert defaults["epochs"] == params["train"]["epochs"]
    assert json.loads(defaults["validation"]) == params["validate"]
    assert defaults["feast_config"] == "feature_store.yaml"


def test_whole_pipeline_runs_locally_and_promotes_a_model(tmp_path, monkeypatch):
    """The compiled graph, every step in a subprocess of this environment, on 15k synthetic events."""
    from kfp import local

    from pipelines.asymdiffrec_pipeline import asymdiffrec_pipeline

    home = tmp_path / "bentoml"
    monkeypatch.setenv("BENTOML_HOME", str(home))  # the subprocesses inherit it; also the run parameter below
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    asymdiffrec_pipeline(
        source="synthetic", n_events=15_000, n_users=600, n_items=300, days=30,
        epochs=1, seed=0, bentoml_home=str(home),
        # One epoch on 15k events proves the wiring, not the model: let any candidate through the gate
        # (the gate's own tests hold it to its real thresholds).
        promotion_thresholds=json.dumps({"min_gain_over_base": -1.0}),
    )

    from components.lifecycle.model_registry import production_tag

    tag = production_tag("asymdiffrec")
    assert tag, "no production model in the BentoML store after the pipeline"
    run = next((tmp_path / "root").iterdir())
    decision = json.loads((run / "promote-op" / "decision").read_text())
    assert decision["promoted"] is True and decision["production"] == tag
    evaluation = json.loads((run / "evaluate-op" / "evaluation").read_text())
    assert "auc" in json.dumps(evaluation)
    logged = json.loads((run / "evaluate-op" / "executor_output.json").read_text())["artifacts"]["metrics"]
    assert any("auc" in name for name in logged["artifacts"][0]["metadata"])
    assert (run / "package-op").exists()
