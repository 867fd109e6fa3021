"""Multi-node data-parallel training as a Kubeflow Trainer (v2) TrainJob, built and submitted with the
`kubeflow` SDK (`kubeflow.trainer.TrainerClient`).

Each of `num_nodes` trainer pods runs the project's own training command under torchrun:

    python -m torch.distributed.run --nproc_per_node=<gpus per node, or 1> \
        -m components.lifecycle.train --data ... --out ... --params ... --dataset-hash ...

The runtime (ClusterTrainingRuntime `torch-distributed`) gives each pod PET_NNODES, PET_NODE_RANK,
PET_MASTER_ADDR and PET_MASTER_PORT, which torchrun reads, so the nodes form one DDP group; rank 0
writes the model, as in one pod.

How data gets in and the model gets out: through object storage (s3://...). The trainer pods cannot
see the pipeline step's local artefact paths, and nodes on different machines share no disk. A bucket
is already what this project's pods share (the Feast registry, the mirrored serving log) with the same
endpoint and keys (ConfigMap `asymdiffrec-feast`, Secret `asymdiffrec-s3`), and it needs no
ReadWriteMany storage class, which kind and minikube do not offer. So the launching step uploads the
dataset and the params under `<artifact_uri>/<job>/input/`, every node downloads them, node 0 uploads
the model to `<artifact_uri>/<job>/model/`, and the launching step downloads it. A file:// URI also
works where the same path is a ReadWriteMany volume mounted in the launching pod and in every trainer
pod (the tests use it on one machine); the pipeline mounts none, so it accepts only object storage.
"""
from __future__ import annotations

import json
import shlex
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

from components.lifecycle.checkpoints import SUMMARY
from components.lifecycle.object_store import download_folder, is_object_store, join, upload_folder

DEFAULT_RUNTIME = "torch-distributed"
TRAINER_NODE = "node"  # the runtime's replicated job and container that run the training command
COMPLETE, FAILED = "Complete", "Failed"  # TrainJob statuses (kubeflow.trainer.constants)
LOG_TAIL_LINES = 40


class TrainJobError(RuntimeError):
    """A TrainJob could not be submitted, failed, timed out, or returned no model."""


@dataclass(frozen=True)
class EnvFrom:
    """An environment variable the trainer pods read from a ConfigMap or a Secret, so no key is
    written into the TrainJob itself."""

    name: str
    kind: Literal["configMap", "secret"]
    source: str
    key: str

    def to_k8s(self) -> dict:
        ref = "configMapKeyRef" if self.kind == "configMap" else "secretKeyRef"
        return {"name": self.name, "valueFrom": {ref: {"name": self.source, "key": self.key, "optional": True}}}


@dataclass(frozen=True)
class TrainerCluster:
    """Where and how big the TrainJob runs: the cluster's facts, the same for every run."""

    image: str
    num_nodes: int
    gpus_per_node: int
    runtime: str = DEFAULT_RUNTIME
    cpu_per_node: str = "4"
    memory_per_node: str = "16G"
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict] = field(default_factory=list)
    env: tuple[EnvFrom, ...] = ()
    deadline_s: int | None = None  # the cluster stops the job after this long (activeDeadlineSeconds)

    def __post_init__(self) -> None:
        if self.num_nodes < 1:
            raise ValueError(f"num_nodes must be >= 1, got {self.num_nodes}")
        if self.gpus_per_node < 0:
            raise ValueError(f"gpus_per_node must be >= 0 (0 = train on the nodes' CPUs), got {self.gpus_per_node}")
        for label, value in (("image", self.image), ("runtime", self.runtime)):
            if not value:
                raise ValueError(f"the TrainJob's {label} is empty; set it (the pipeline's trainjob_{label})")
        if self.deadline_s is not None and self.deadline_s < 1:
            raise ValueError(f"deadline_s must be >= 1 second, got {self.deadline_s}")

    @property
    def nproc_per_node(self) -> int:
        """One process per GPU; one per node on CPUs."""
        return self.gpus_per_node or 1

    @property
    def resources_per_node(self) -> dict[str, Any]:
        resources: dict[str, Any] = {"cpu": self.cpu_per_node, "memory": self.memory_per_node}
        if self.gpus_per_node:
            resources["gpu"] = self.gpus_per_node
        return resources

    def describe(self) -> str:
        return f"runtime {self.runtime!r}, {self.num_nodes} node(s) x {self.gpus_per_node} GPU(s), image {self.image}"


@dataclass(frozen=True)
class TrainJobSpec:
    """One TrainJob: its name, the cluster it runs on, and where its data lives."""

    name: str
    cluster: TrainerCluster
    input_uri: str  # a folder holding dataset/ and params.yaml
    model_uri: str  # the folder node 0 writes the model to
    dataset_hash: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("the TrainJob's name is empty")


def new_job_name(prefix: str = "asymdiffrec-train") -> str:
    """A fresh TrainJob name (a DNS label: lower case, starts with a letter, short)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def torchrun_command(spec: TrainJobSpec, work: str = "$WORK") -> list[str]:
    """The training command each node runs: torchrun over `python -m components.lifecycle.train`.
    No --nnodes/--node_rank/--master_*: torchrun reads them from the runtime's PET_* variables."""
    return [
        "python", "-m", "torch.distributed.run", f"--nproc_per_node={spec.cluster.nproc_per_node}",
        "-m", "components.lifecycle.train", "--data", f"{work}/input/dataset", "--out", f"{work}/model",
        "--params", f"{work}/input/params.yaml", "--dataset-hash", spec.dataset_hash,
    ]


def node_script(spec: TrainJobSpec) -> str:
    """The trainer container's script: fetch the inputs, train under torchrun, node 0 uploads the model."""
    quoted = " ".join(_quote_keeping_work(a) for a in torchrun_command(spec))
    get = f"python -m components.lifecycle.object_store get {shlex.quote(spec.input_uri)} \"$WORK/input\""
    put = f"python -m components.lifecycle.object_store put \"$WORK/model\" {shlex.quote(spec.model_uri)}"
    return "\n".join([
        "set -euo pipefail",
        "WORK=$(mktemp -d)",
        get,
        quoted,
        f'if [ "${{PET_NODE_RANK:-0}}" = "0" ]; then {put}; fi',
    ])


def _quote_keeping_work(arg: str) -> str:
    """shlex.quote, but leave $WORK expandable."""
    if arg.startswith("$WORK"):
        return '"' + arg + '"'
    return shlex.quote(arg)


def build_trainjob(spec: TrainJobSpec) -> tuple[Any, list]:
    """The SDK objects of the TrainJob: a CustomTrainerContainer (image, nodes, resources per node)
    and the options (name, command, deadline, labels, and a runtime patch for node placement and the
    object-store settings). Submit them with TrainerClient.train(runtime=spec.cluster.runtime, ...)."""
    from kubeflow.trainer import CustomTrainerContainer
    from kubeflow.trainer.options import (
        ActiveDeadlineSeconds, ContainerPatch, JobSetSpecPatch, JobSetTemplatePatch, JobSpecPatch, JobTemplatePatch,
        Labels, Name, PodSpecPatch, PodTemplatePatch, ReplicatedJobPatch, RuntimePatch, TrainerCommand,
        TrainingRuntimeSpecPatch,
    )

    cluster = spec.cluster
    trainer = CustomTrainerContainer(
        image=cluster.image, num_nodes=cluster.num_nodes, resources_per_node=cluster.resources_per_node,
        env={"PYTHONUNBUFFERED": "1"},
    )
    options: list = [
        Name(spec.name),
        Labels({"app.kubernetes.io/part-of": "asymdiffrec", "app.kubernetes.io/component": "training"}),
        TrainerCommand(["bash", "-c", node_script(spec)]),
    ]
    if cluster.deadline_s:
        options.append(ActiveDeadlineSeconds(cluster.deadline_s))
    container = ContainerPatch(name=TRAINER_NODE, env=[e.to_k8s() for e in cluster.env] or None)
    pod = PodSpecPatch(
        node_selector=dict(cluster.node_selector) or None, tolerations=list(cluster.tolerations) or None,
        containers=[container] if container.env else None,
    )
    if pod.node_selector or pod.tolerations or pod.containers:
        node = ReplicatedJobPatch(
            name=TRAINER_NODE, template=JobTemplatePatch(spec=JobSpecPatch(template=PodTemplatePatch(spec=pod))),
        )
        options.append(RuntimePatch(training_runtime_spec=TrainingRuntimeSpecPatch(
            template=JobSetTemplatePatch(spec=JobSetSpecPatch(replicated_jobs=[node])),
        )))
    return trainer, options


class TrainerClientLike(Protocol):
    """The part of kubeflow.trainer.TrainerClient this module uses (a fake in the tests)."""

    def train(self, runtime: Any = None, initializer: Any = None, trainer: Any = None, options: list | None = None) -> str: ...

    def wait_for_job_status(self, name: str, status: set[str] = ..., timeout: int = ..., polling_interval: int = ...,
                            callbacks: list | None = None) -> Any: ...

    def get_job_logs(self, name: str, step: str = ..., follow: bool | None = ...) -> Iterator[str]: ...

    def get_job_events(self, name: str) -> list: ...

    def delete_job(self, name: str) -> None: ...


@dataclass
class TrainJobOutcome:
    name: str
    status: str
    log_tail: list[str]


def submit_and_wait(
    client: TrainerClientLike, spec: TrainJobSpec, timeout_s: int, poll_s: int = 10,
    report: Callable[[str], None] = print,
) -> TrainJobOutcome:
    """Submit the TrainJob and wait until it completes, printing node 0's log. Raises TrainJobError
    naming the job, the runtime and what to look at when it cannot be submitted, fails or times out
    (a timed-out job is deleted so it frees its nodes)."""
    if timeout_s < 2:
        raise ValueError(f"timeout_s must be >= 2 seconds, got {timeout_s}")
    trainer, options = build_trainjob(spec)
    where = spec.cluster.describe()
    try:
        name = client.train(runtime=spec.cluster.runtime, trainer=trainer, options=options)
    except (RuntimeError, ValueError, TimeoutError) as e:
        raise TrainJobError(
            f"could not submit TrainJob {spec.name} ({where}): {_cause(e)}. Check that Kubeflow Trainer is installed, "
            f"that the ClusterTrainingRuntime {spec.cluster.runtime!r} exists (kubectl get clustertrainingruntimes) and that "
            f"this pod's service account may create trainjobs (deploy/README.md)"
        ) from e
    report(f"submitted TrainJob {name} ({where}); waiting up to {timeout_s}s")
    seen: list[str] = []

    def on_poll(job: Any) -> None:  # one line per status change, not per poll
        status = str(getattr(job, "status", "Unknown"))
        if not seen or seen[-1] != status:
            seen.append(status)
            report(f"TrainJob {name}: {status}")

    try:
        job = client.wait_for_job_status(
            name, status={COMPLETE, FAILED}, timeout=timeout_s, polling_interval=max(1, min(poll_s, timeout_s // 2)),
            callbacks=[on_poll],
        )
    except TimeoutError as e:
        _delete_quietly(client, name)
        raise TrainJobError(
            f"TrainJob {name} did not finish within {timeout_s}s ({where}); it was deleted. Raise the timeout "
            f"(the pipeline's trainjob_timeout_s) or see why its pods wait: kubectl describe trainjob {name}"
        ) from e
    except RuntimeError as e:
        raise TrainJobError(f"lost track of TrainJob {name}: {_cause(e)}; kubectl get trainjob {name}") from e
    tail = _log_tail(client, name)
    for line in tail:
        report(f"[{name} node-0] {line}")
    status = str(getattr(job, "status", "Unknown"))
    if status != COMPLETE:
        events = _events(client, name)
        raise TrainJobError(
            f"TrainJob {name} ended {status} ({where}). Last lines of node-0's log:\n  "
            + ("\n  ".join(tail) or "(none)")
            + ("\nEvents:\n  " + "\n  ".join(events) if events else "")
            + f"\nMore: kubectl logs -l jobset.sigs.k8s.io/jobset-name={name} --all-containers"
        )
    report(f"TrainJob {name} completed")
    return TrainJobOutcome(name=name, status=status, log_tail=tail)


def train_on_trainjob(
    client: TrainerClientLike,
    dataset_dir: Path,
    out_dir: Path,
    model_params: dict,
    train_params: dict,
    dataset_hash: str,
    cluster: TrainerCluster,
    artifact_uri: str,
    timeout_s: int,
    poll_s: int = 10,
    report: Callable[[str], None] = print,
    loader: dict | None = None,
) -> dict:
    """Upload the dataset and the params under `artifact_uri`, train on a TrainJob on `cluster`, and
    download the model it wrote into `out_dir` (the same folders as `train_step`); returns train.json.
    `loader`: the `train_loader:` section the pods train with (default: in memory)."""
    from components.lifecycle.train import training_params

    name = new_job_name()
    root = join(artifact_uri, name)
    input_uri, model_uri = join(root, "input"), join(root, "model")
    spec = TrainJobSpec(name, cluster, input_uri, model_uri, dataset_hash)
    with tempfile.TemporaryDirectory(prefix="trainjob-input-") as tmp:
        staged = Path(tmp)
        (staged / "params.yaml").write_text(yaml.safe_dump(training_params(model_params, train_params, loader)))
        upload_folder(staged, input_uri)
    upload_folder(Path(dataset_dir), join(input_uri, "dataset"))
    report(f"staged the dataset and params at {input_uri}")
    submit_and_wait(client, spec, timeout_s, poll_s, report)
    try:
        download_folder(model_uri, Path(out_dir))
    except (FileNotFoundError, ValueError) as e:
        raise TrainJobError(
            f"TrainJob {name} completed but left no model at {model_uri} ({e}); node 0 uploads it after training, "
            f"so look at node-0's log for the upload step"
        ) from e
    summary_file = Path(out_dir) / SUMMARY
    if not summary_file.is_file():
        raise TrainJobError(f"TrainJob {name}'s model at {model_uri} has no {SUMMARY}: not a finished training run")
    return json.loads(summary_file.read_text())


def require_object_store(uri: str, field_name: str = "trainjob_artifact_uri") -> str:
    """The pipeline's check: a URI every trainer pod can reach (a path is only this pod's disk)."""
    if not is_object_store(uri):
        raise ValueError(
            f"{field_name}={uri!r} is not object storage: the TrainJob's pods cannot see this pod's files. "
            f"Set it to s3://<bucket>/<prefix> (MinIO: the bucket from deploy/README.md, e.g. s3://asymdiffrec/trainjobs)"
        )
    return uri


def _cause(error: BaseException) -> str:
    """The error and the one it wraps (the SDK wraps API errors in RuntimeError)."""
    inner = error.__cause__
    return f"{error}" + (f" ({type(inner).__name__}: {inner})" if inner else "")


def _log_tail(client: TrainerClientLike, name: str) -> list[str]:
    try:
        lines = [str(line).rstrip("\n") for line in client.get_job_logs(name, step=f"{TRAINER_NODE}-0")]
    except (RuntimeError, TimeoutError, ValueError) as e:
        return [f"(could not read the log: {e})"]
    return lines[-LOG_TAIL_LINES:]


def _events(client: TrainerClientLike, name: str) -> list[str]:
    try:
        events: Iterable = client.get_job_events(name)
    except (RuntimeError, TimeoutError, NotImplementedError):
        return []
    return [f"{getattr(e, 'involved_object_name', '?')}: {getattr(e, 'reason', '')} {getattr(e, 'message', '')}" for e in events]


def _delete_quietly(client: TrainerClientLike, name: str) -> None:
    try:
        client.delete_job(name)
    except (RuntimeError, TimeoutError):
        pass
