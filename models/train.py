"""Training: Adam on mini-batches, early stopping on validation AUC, CUDA with autocast when present.

Deterministic by seed on CPU: the shuffling, the forward-process noise and dropout all draw from
generators seeded from `TrainConfig.seed`.

Data-parallel under `torchrun`: when WORLD_SIZE > 1 the same `train` joins the process group (nccl on
CUDA, gloo on CPU), trains on its rank's shard with DistributedDataParallel (the per-rank batch is
`batch_size / world_size`, so the optimiser sees the same batch size as one process), and only rank 0
scores the validation split, keeps the best weights and tells the others when to stop.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Sequence

import pandas as pd
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from models.asymdiffrec import Recommender, build_model
from models.checkpoint import load_checkpoint, save_checkpoint  # noqa: F401  (re-exported)
from models.config import ModelConfig, TrainConfig
from models.metrics import auc, logloss
from models.predict import predict_batch
from models.schema import EncodedBatch, FeatureSchema


@dataclass
class TrainResult:
    best_epoch: int
    best_val_auc: float
    history: list[dict[str, float]] = field(default_factory=list)
    device: str = "cpu"
    seconds: float = 0.0
    samples_per_second: float = 0.0
    world_size: int = 1


def world() -> tuple[int, int]:
    """(rank, world size) of this process: torchrun's RANK / WORLD_SIZE, else (0, 1)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return world()[0] == 0


def _join_process_group(device: torch.device) -> torch.device:
    """Join torchrun's process group once per process; on CUDA each rank takes its LOCAL_RANK device."""
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


class _LossModule(torch.nn.Module):
    """DistributedDataParallel syncs gradients of what its forward computes: here, the training loss."""

    def __init__(self, model: Recommender):
        super().__init__()
        self.model = model

    def forward(self, batch: EncodedBatch, generator: torch.Generator) -> Any:
        return self.model.loss(batch, generator)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device is '{name}' but CUDA is not available; use 'auto' or 'cpu'")
    return device


def _autocast(device: torch.device, enabled: bool) -> tuple[Any, torch.amp.GradScaler | None]:
    """bfloat16 autocast where supported (no scaler needed), else float16 with a grad scaler."""
    if device.type != "cuda" or not enabled:
        return torch.autocast(device.type, enabled=False), None
    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16), None
    return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")


def _score(model: Recommender, data: EncodedBatch, batch_size: int) -> tuple[float, float]:
    p = predict_batch(model, data, batch_size)
    y = data.label.numpy()
    return auc(y, p), logloss(y, p)


class BatchSource(Protocol):
    """Training batches that are not one in-memory tensor set, e.g. `models.shards.ParquetShard`: it
    holds this rank's shard already and yields an epoch's batches, shuffled by `generator`."""

    def __len__(self) -> int: ...

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[EncodedBatch]: ...


def _in_memory_batches(data: EncodedBatch, batch_size: int, generator: torch.Generator) -> Iterator[EncodedBatch]:
    """One epoch over tensors: a seeded permutation, gathered once; each batch is then a slice (a view)."""
    shuffled = data.index(torch.randperm(len(data), generator=generator).to(data.mask.device))
    for lo in range(0, len(data), batch_size):
        yield shuffled.index(slice(lo, lo + batch_size))


def train(
    model: Recommender,
    train_data: EncodedBatch | BatchSource,
    valid_data: EncodedBatch | None = None,
    config: TrainConfig | dict[str, Any] | None = None,
) -> TrainResult:
    """Train in place; on return the model holds the weights of the best validation epoch.
    `train_data`: encoded tensors (sharded here under DDP), or a `BatchSource` streaming its rank's shard."""
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config or {})
    in_memory = isinstance(train_data, EncodedBatch)
    if in_memory and train_data.label is None:
        raise ValueError("training needs labels; encode the training frame with its label column")
    device = resolve_device(cfg.device)
    rank, world_size = world()
    if world_size > 1:
        device = _join_process_group(device)
        if in_memory:
            n_shard = len(train_data) // world_size  # equal shards: every rank takes the same number of steps
            train_data = train_data.index(slice(rank * n_shard, (rank + 1) * n_shard))
    batch_size = max(1, cfg.batch_size // world_size)
    torch.manual_seed(cfg.seed + rank)  # dropout layers draw from the global generator
    shuffle_gen = torch.Generator().manual_seed(cfg.seed)
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1 + rank)
    model.to(device)
    data = train_data.to(device) if in_memory else train_data
    loss_fn: Any = _LossModule(model)
    if world_size > 1:  # broadcasts rank 0's initial weights, then averages gradients
        loss_fn = torch.nn.parallel.DistributedDataParallel(loss_fn, find_unused_parameters=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    autocast, scaler = _autocast(device, cfg.amp)
    if rank != 0:
        valid_data = None

    n = len(data)
    steps = math.ceil(n / batch_size)
    best = {"score": -math.inf, "epoch": -1, "auc": float("nan"), "state": None}
    history: list[dict[str, float]] = []
    bad_epochs, seen, start = 0, 0, time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        batches = _in_memory_batches(data, batch_size, shuffle_gen) if in_memory else data.batches(batch_size, shuffle_gen)
        bar = tqdm(batches, total=steps, desc=f"epoch {epoch}", disable=not cfg.progress or rank != 0, leave=False)
        running = 0.0
        for step, batch in enumerate(bar):
            batch = batch if in_memory else batch.to(device)
            with autocast:
                loss, parts = loss_fn(batch, noise_gen)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            seen += len(batch)
            if step % 20 == 0 or step == steps - 1:
                value = float(loss.detach())
                running = value if step == 0 else 0.9 * running + 0.1 * value
                bar.set_postfix(loss=f"{running:.4f}")
        record = {"epoch": epoch, "train_loss": running}
        if valid_data is not None:
            val_auc, val_ll = _score(model, valid_data, cfg.eval_batch_size)
            record.update(val_auc=val_auc, val_logloss=val_ll)
            score = val_auc if not math.isnan(val_auc) else -val_ll
            if score > best["score"] + cfg.min_delta:
                best.update(score=score, epoch=epoch, auc=val_auc, state=copy.deepcopy(model.state_dict()))
                bad_epochs = 0
            else:
                bad_epochs += 1
        history.append(record)
        if cfg.progress and rank == 0:
            tqdm.write(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
        stop = valid_data is not None and bad_epochs >= cfg.patience
        if world_size > 1:  # rank 0 decides; the others follow so every rank runs the same steps
            flag = torch.tensor([float(stop)], device=device)
            dist.broadcast(flag, src=0)
            stop = bool(flag.item())
        if stop:
            break
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    else:
        best["epoch"] = len(history) - 1
    seconds = time.perf_counter() - start
    return TrainResult(
        best["epoch"], float(best["auc"]), history, str(device), seconds, seen * world_size / max(seconds, 1e-9), world_size
    )


def fit(
    train_frame: pd.DataFrame,
    valid_frame: pd.DataFrame | None,
    features: Sequence[dict[str, str]],
    model_config: ModelConfig | dict[str, Any] | None = None,
    train_config: TrainConfig | dict[str, Any] | None = None,
    schema_options: dict[str, Any] | None = None,
    schema: FeatureSchema | None = None,
) -> tuple[Recommender, FeatureSchema, TrainResult]:
    """Frames in, trained model out: fit the schema, encode, build, train."""
    tcfg = train_config if isinstance(train_config, TrainConfig) else TrainConfig.from_dict(train_config or {})
    schema = schema or FeatureSchema.fit(train_frame, features, **(schema_options or {}))
    train_data = schema.encode(train_frame, with_label=True)
    valid_data = schema.encode(valid_frame, with_label=True) if valid_frame is not None and len(valid_frame) else None
    model = build_model(schema, model_config, seed=tcfg.seed)
    result = train(model, train_data, valid_data, tcfg)
    return model, schema, result
