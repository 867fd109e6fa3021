"""Multi-node training as a Kubeflow Trainer TrainJob, without a cluster: the TrainJob the SDK would
create, and the launcher end to end against fake clients (one runs the nodes' real command on this
machine as a 2-node Gloo group, one plays back a failed job)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from components.lifecycle.trainjob import (
    EnvFrom, TrainerCluster, TrainJobError, TrainJobSpec, build_trainjob, require_object_store, submit_and_wait,
    train_on_trainjob,
)

MODEL = {"base": "dnn", "embed_dim": 8, "hidden": [32, 16], "denoiser_hidden": 32}
TRAIN = {"epochs": 1, "batch_size": 256, "seed": 0, "device": "cpu", "patience": 2}
S3_ENV = (
    EnvFrom("FEAST_S3_ENDPOINT_URL", "configMap", "asymdiffrec-feast", "FEAST_S3_ENDPOINT_URL"),
    EnvFrom("AWS_ACCESS_KEY_ID", "secret", "asymdiffrec-s3", "AWS_ACCESS_KEY_ID"),
)


def _render(trainer: Any, options: list, runtime: str = "torch-distributed") -> dict:
    """The TrainJob body the installed SDK's Kubernetes backend would POST, recorded instead of sent."""
    from kubernetes import client as k8s
    from kubeflow.common.types import KubernetesBackendConfig
    from kubeflow.trainer import Runtime, RuntimeKind, RuntimeTrainer, TrainerType
    from kubeflow.trainer.backends.kubernetes.backend import KubernetesBackend

    class Recorder:
        body: dict = {}

        def create_namespaced_custom_object(self, group, version, namespace, plural, body):
            Recorder.body = body

    config = k8s.Configuration(host="http://127.0.0.1:9")  # nothing listens: the version probe only warns
    config.retries = 0
    backend = KubernetesBackend(KubernetesBackendConfig(namespace="kubeflow", client_configuration=config))
    backend.custom_api = Recorder()
    runtime_obj = Runtime(
        name=runtime, kind=RuntimeKind.CLUSTER_TRAINING_RUNTIME,
        trainer=RuntimeTrainer(trainer_type=TrainerType.CUSTOM_TRAINER, framework="torch", image="pytorch/pytorch"),
    )
    backend.train(runtime=runtime_obj, trainer=trainer, options=options)
    return Recorder.body


def test_the_trainjob_has_the_requested_nodes_gpus_image_command_and_placement():
    cluster = TrainerCluster(
        image="registry.example.com/asymdiffrec:1", num_nodes=3, gpus_per_node=4, node_selector={"asymdiffrec.io/pool": "gpu"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}], env=S3_ENV, deadline_s=3600,
    )
    spec = TrainJobSpec("asymdiffrec-train-abc", cluster, "s3://b/jobs/x/input", "s3://b/jobs/x/model", "d41d8.dir")
    body = _render(*build_trainjob(spec))

    assert body["kind"] == "TrainJob" and body["metadata"]["name"] == "asymdiffrec-train-abc"
    job = body["spec"]
    assert job["runtimeRef"] == {"name": "torch-distributed", "kind": "ClusterTrainingRuntime"}
    assert job["activeDeadlineSeconds"] == 3600
    trainer = job["trainer"]
    assert trainer["numNodes"] == 3 and trainer["image"] == "registry.example.com/asymdiffrec:1"
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == 4
    assert trainer["resourcesPerNode"]["requests"]["cpu"] == "4"
    assert trainer["command"][:2] == ["bash", "-c"]
    script = trainer["command"][2]
    assert ("python -m torch.distributed.run --nproc_per_node=4 -m components.lifecycle.train" in script)  # one process per GPU
    assert "--dataset-hash d41d8.dir" in script and "get s3://b/jobs/x/input" in script
    assert 'if [ "${PET_NODE_RANK:-0}" = "0" ]; then' in script and "put \"$WORK/model\" s3://b/jobs/x/model" in script
    assert "--nnodes" not in script  # torchrun takes nodes, rank and master from the runtime's PET_* variables

    (patch,) = job["runtimePatches"]
    (node,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = node["template"]["spec"]["template"]["spec"]
    assert node["name"] == "node" and pod["nodeSelector"] == {"asymdiffrec.io/pool": "gpu"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    (container,) = pod["containers"]
    env = {e["name"]: e["valueFrom"] for e in container["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "asymdiffrec-s3", "key": "AWS_ACCESS_KEY_ID", "optional": True}}
    assert "configMapKeyRef" in env["FEAST_S3_ENDPOINT_URL"]  # keys come from the Secret, never written into the job


def test_cpu_nodes_ask_for_no_gpu_and_run_one_process_each():
    spec = TrainJobSpec("j", TrainerCluster(image="img", num_nodes=2, gpus_per_node=0), "s3://b/i", "s3://b/m")
    trainer, options = build_trainjob(spec)
    assert trainer.num_nodes == 2 and "gpu" not in trainer.resources_per_node
    body = _render(trainer, options)
    assert "--nproc_per_node=1 " in body["spec"]["trainer"]["command"][2]
    assert "runtimePatches" not in body["spec"] or not body["spec"]["runtimePatches"]  # nothing to place or inject


@pytest.mark.parametrize("bad, field_name", [
    ({"num_nodes": 0}, "num_nodes"), ({"gpus_per_node": -1}, "gpus_per_node"), ({"image": ""}, "image"),
    ({"runtime": ""}, "runtime"), ({"deadline_s": 0}, "deadline_s"),
])
def test_a_bad_cluster_setting_names_the_field(bad, field_name):
    with pytest.raises(ValueError, match=field_name):
        TrainerCluster(**{"image": "img", "num_nodes": 2, "gpus_per_node": 1, **bad})


def test_the_pipeline_accepts_only_object_storage_for_the_handover():
    assert require_object_store("s3://asymdiffrec/trainjobs") == "s3://asymdiffrec/trainjobs"
    for local in ("/tmp/trainjobs", "file:///mnt/shared"):
        with pytest.raises(ValueError, match=r"trainjob_artifact_uri=.*s3://"):
            require_object_store(local)


# --- the launcher end to end, the SDK client replaced by fakes ------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalNodesTrainer:
    """A TrainerClient that runs the submitted job's command as its nodes, here: one process per node with
    the PET_* variables the torch runtime sets, so the nodes form one Gloo group over localhost."""

    submitted: list[dict] = field(default_factory=list)
    logs: dict[str, list[str]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)

    def train(self, runtime=None, initializer=None, trainer=None, options=None) -> str:
        from kubeflow.trainer.options import Name, TrainerCommand

        name = next(o.name for o in options if isinstance(o, Name))
        command = next(o.command for o in options if isinstance(o, TrainerCommand))
        self.submitted.append({"name": name, "runtime": runtime, "trainer": trainer, "command": command})
        return name

    def wait_for_job_status(self, name, status=frozenset(), timeout=600, polling_interval=2, callbacks=None):
        job = next(j for j in self.submitted if j["name"] == name)
        nodes = job["trainer"].num_nodes
        env = {
            **os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
            "PET_NNODES": str(nodes), "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(_free_port()),
        }
        procs = [
            subprocess.Popen(job["command"], env={**env, "PET_NODE_RANK": str(rank)}, cwd=Path(__file__).resolve().parents[2],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for rank in range(nodes)
        ]
        outputs = [p.communicate(timeout=timeout)[0] for p in procs]
        self.logs[name] = outputs[0].splitlines()
        self.status[name] = "Complete" if all(p.returncode == 0 for p in procs) else "Failed"
        job = SimpleNamespace(name=name, status=self.status[name])
        for callback in callbacks or []:
            callback(job)
        return job

    def get_job_logs(self, name, step="node-0", follow=False) -> Iterator[str]:
        yield from self.logs.get(name, [])

    def get_job_events(self, name) -> list:
        return []

    def delete_job(self, name) -> None:
        raise AssertionError("a finished job is kept for inspection")


@dataclass
class PlaybackTrainer:
    """A TrainerClient that plays back a job's end: its status, node-0's log and its events."""

    status: str = "Failed"
    log: tuple[str, ...] = ()
    events: tuple = ()
    submit_error: Exception | None = None
    wait_error: Exception | None = None
    submitted: list[dict] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def train(self, runtime=None, initializer=None, trainer=None, options=None) -> str:
        if self.submit_error:
            raise self.submit_error
        self.submitted.append({"runtime": runtime, "trainer": trainer, "options": options})
        return "asymdiffrec-train-played"

    def wait_for_job_status(self, name, status=frozenset(), timeout=600, polling_interval=2, callbacks=None):
        if self.wait_error:
            raise self.wait_error
        return SimpleNamespace(name=name, status=self.status)

    def get_job_logs(self, name, step="node-0", follow=False) -> Iterator[str]:
        yield from self.log

    def get_job_events(self, name) -> list:
        return list(self.events)

    def delete_job(self, name) -> None:
        self.deleted.append(name)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from models.toy_dataset import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("data") / "validated", n_events=3000, n_users=150, n_items=100, seed=0)


def test_the_launcher_trains_on_two_nodes_and_brings_the_model_back(dataset, tmp_path):
    from models import load_checkpoint

    client = LocalNodesTrainer()
    artifacts = (tmp_path / "bucket").as_uri()  # a shared folder stands in for the bucket both sides reach
    out = tmp_path / "model"
    reported: list[str] = []
    summary = train_on_trainjob(
        client, dataset, out, MODEL, TRAIN, "h.dir", TrainerCluster(image="img", num_nodes=2, gpus_per_node=0),
        artifacts, timeout_s=600, report=reported.append,
    )

    (job,) = client.submitted
    assert job["runtime"] == "torch-distributed" and job["trainer"].num_nodes == 2 and job["trainer"].image == "img"
    assert client.status[job["name"]] == "Complete", "\n".join(client.logs[job["name"]])
    assert summary["world_size"] == 2 and summary["dataset_hash"] == "h.dir"  # both nodes trained, one DDP group
    assert json.loads((out / "train.json").read_text()) == summary
    for folder in ("asymdiffrec", "base"):
        assert load_checkpoint(out / folder).model is not None
    staged = tmp_path / "bucket" / job["name"]
    assert (staged / "input" / "dataset" / "train.parquet").is_file() and (staged / "model" / "train.json").is_file()
    assert f"TrainJob {job['name']}: Complete" in reported and any("node-0" in line for line in reported)


def test_a_failed_trainjob_is_a_clear_error_with_its_log_and_events(dataset, tmp_path):
    client = PlaybackTrainer(
        status="Failed", log=("epoch 1", "RuntimeError: NCCL error: unhandled system error"),
        events=(SimpleNamespace(involved_object_name="asymdiffrec-train-played-node-0-0", reason="BackoffLimitExceeded",
                                message="Job has reached the specified backoff limit"),),
    )
    out = tmp_path / "model"
    with pytest.raises(TrainJobError) as failed:
        train_on_trainjob(client, dataset, out, MODEL, TRAIN, "h.dir", TrainerCluster(image="img", num_nodes=2, gpus_per_node=1),
                          (tmp_path / "bucket").as_uri(), timeout_s=60, report=lambda _: None)
    message = str(failed.value)
    assert "asymdiffrec-train-played ended Failed" in message and "'torch-distributed', 2 node(s) x 1 GPU(s)" in message
    assert "NCCL error" in message and "BackoffLimitExceeded" in message and "kubectl logs" in message
    assert not out.exists() and client.deleted == []  # no model, and the failed job stays to be inspected


def test_a_trainjob_that_cannot_start_or_finish_or_returns_nothing_says_what_to_do(dataset, tmp_path):
    spec = TrainJobSpec("j", TrainerCluster(image="img", num_nodes=2, gpus_per_node=1, runtime="torch-gpu"), "s3://b/i", "s3://b/m")
    missing = PlaybackTrainer(submit_error=RuntimeError("Failed to get ClusterTrainingRuntime: torch-gpu"))
    with pytest.raises(TrainJobError, match=r"could not submit TrainJob j .*torch-gpu.*kubectl get clustertrainingruntimes"):
        submit_and_wait(missing, spec, timeout_s=60, report=lambda _: None)

    slow = PlaybackTrainer(wait_error=TimeoutError("Timeout waiting for TrainJob"))
    with pytest.raises(TrainJobError, match=r"did not finish within 60s.*trainjob_timeout_s"):
        submit_and_wait(slow, spec, timeout_s=60, report=lambda _: None)
    assert slow.deleted == ["asymdiffrec-train-played"]  # a stuck job does not keep its nodes

    empty = PlaybackTrainer(status="Complete")
    with pytest.raises(TrainJobError, match=r"completed but left no model"):
        train_on_trainjob(empty, dataset, tmp_path / "m", MODEL, TRAIN, "", TrainerCluster(image="img", num_nodes=2, gpus_per_node=0),
                          (tmp_path / "bucket").as_uri(), timeout_s=60, report=lambda _: None)
