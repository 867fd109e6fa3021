"""Train step: AsymDiffRec and its base model (same base network, same seed) on the validated dataset.

    python -m components.lifecycle.train --data data/validated --out data/models --params params.yaml [--nproc N]

Writes `<out>/asymdiffrec/` and `<out>/base/` (checkpoint folders: weights, schema, params) and
`<out>/train.json` (dataset hash, seeds, best epochs, validation AUC, device, seconds), all swapped
in at once, so a failed run leaves the previous models in place. With `--nproc N > 1` (default: the
number of visible CUDA devices when there are several) the command re-launches itself under
`torchrun --standalone --nproc_per_node N`; each process trains on its shard (torch DDP) and rank 0
writes the result.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from common.files import atomic_write_json, file_digest, replace_dir, staging_dir_for
from components.lifecycle.checkpoints import CANDIDATE, FOLDERS, SUMMARY
from common.params import PROJECT_ROOT, ParamsSection, load_params, section

def dataset_hash(dataset_dir: Path) -> str:
    """The md5 DVC gives the dataset folder (`<md5>.dir`, as in dvc.lock), or the md5 of a single file:
    recorded with the model, it names exactly which data trained it."""
    dataset_dir = Path(dataset_dir)
    if dataset_dir.is_file():
        return file_digest(dataset_dir)
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"dataset {dataset_dir} not found; pass the validated dataset folder (--data)")
    entries = [
        {"md5": file_digest(p), "relpath": p.relative_to(dataset_dir).as_posix()}
        for p in dataset_dir.rglob("*")
        if p.is_file()
    ]
    entries.sort(key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


LOADERS = ("memory", "parquet")


@dataclass(frozen=True)
class LoaderConfig(ParamsSection):
    """The params.yaml `train_loader:` section: how the train step reads the training split."""

    SECTION = "train_loader"
    kind: str = "memory"  # memory: the whole split as tensors | parquet: each rank streams its shard in chunks
    chunk_rows: int = 65_536

    def validate(self) -> None:
        if self.kind not in LOADERS:
            raise ValueError(f"train_loader.kind must be one of {list(LOADERS)}, got {self.kind!r}")
        if self.chunk_rows < 1:
            raise ValueError(f"train_loader.chunk_rows must be >= 1, got {self.chunk_rows}")


def training_data(dataset_dir: Path, loader: LoaderConfig) -> tuple[Any, Any, Any, dict[str, int]]:
    """(schema, training batches, validation batch or None, rows per split) as `loader` reads them:
    encoded tensors of the whole split, or this rank's `models.shards.ParquetShard` of train.parquet
    (the schema fitted column by column; validation, read by rank 0 only, stays in memory)."""
    from models import load_dataset
    from models.schema import FeatureSchema

    if loader.kind == "memory":
        data = load_dataset(dataset_dir)
        schema = FeatureSchema.fit(data.train, data.features, label=data.label, user_key=data.user_key)
        valid = schema.encode(data.validation, with_label=True) if len(data.validation) else None
        return schema, schema.encode(data.train, with_label=True), valid, {"train": len(data.train), "validation": len(data.validation)}
    from models.shards import ParquetShard, fit_schema_from_parquet
    from models.train import world

    data = load_dataset(dataset_dir, splits=("validation",))
    path = Path(dataset_dir) / "train.parquet"
    schema = fit_schema_from_parquet(path, data.features, chunk_rows=loader.chunk_rows, label=data.label, user_key=data.user_key)
    rank, world_size = world()
    shard = ParquetShard(path, schema, rank, world_size, loader.chunk_rows)
    valid = schema.encode(data.validation, with_label=True) if len(data.validation) and rank == 0 else None
    return schema, shard, valid, {"train": len(shard) * world_size, "validation": len(data.validation)}


def default_nproc() -> int:
    """Processes to train with: one per visible CUDA device when there are several, else one."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return count if count > 1 else 1


def train_step(
    dataset_dir: Path, out_dir: Path, model_params: dict, train_params: dict, dataset_hash: str = "", loader: dict | None = None,
) -> dict:
    """Train AsymDiffRec and its base model (same base, same seed) on the validated dataset.
    Writes out_dir/"asymdiffrec"/ and out_dir/"base"/ (models.save_checkpoint: weights, schema, params)
    and out_dir/"train.json" (summary: dataset_hash, seeds, best epochs, val AUC, device, seconds). Returns the summary.
    Under torchrun every rank trains; only rank 0 writes. `loader`: the `train_loader:` section (default: in memory)."""
    from models import ModelConfig, TrainConfig, build_model, save_checkpoint, train
    from common.jsonable import jsonable
    from models.train import is_main_process

    model_params = {k: v for k, v in dict(model_params).items() if k != "variant"}
    tcfg = TrainConfig.from_dict({"progress": False, **dict(train_params)})
    ModelConfig.from_dict(model_params)  # fail on a bad model: section before any work
    loader_cfg = LoaderConfig.from_dict(dict(loader or {}))
    start = time.perf_counter()
    schema, train_b, valid_b, rows = training_data(Path(dataset_dir), loader_cfg)

    trained, runs = {}, {}
    for folder, variant in FOLDERS.items():
        cfg = ModelConfig.from_dict({**model_params, "variant": variant})
        model = build_model(schema, cfg, seed=tcfg.seed)
        result = train(model, train_b, valid_b, tcfg)
        trained[folder] = (model, result)
        runs[folder] = {
            "variant": variant, "best_epoch": result.best_epoch, "val_auc": jsonable(result.best_val_auc),
            "epochs_run": len(result.history), "seconds": round(result.seconds, 3),
            "samples_per_second": round(result.samples_per_second, 1),
        }
    summary: dict[str, Any] = {
        "dataset_hash": dataset_hash,
        "seed": tcfg.seed,
        "models": runs,
        "device": trained[CANDIDATE][1].device,
        "world_size": trained[CANDIDATE][1].world_size,
        "rows": rows,
        "loader": loader_cfg.kind,
        "seconds": round(time.perf_counter() - start, 3),
        "metrics": {f"{name}_val_auc": run["val_auc"] for name, run in runs.items() if run["val_auc"] is not None},
    }
    if not is_main_process():
        return summary
    staged = staging_dir_for(Path(out_dir))
    try:
        for folder, (model, result) in trained.items():
            save_checkpoint(
                staged / folder, model, schema, tcfg,
                {"val_auc": runs[folder]["val_auc"], "best_epoch": result.best_epoch, "dataset_hash": dataset_hash},
            )
        atomic_write_json(summary, staged / SUMMARY)
        replace_dir(staged, Path(out_dir))
    finally:
        if staged.exists():
            import shutil

            shutil.rmtree(staged, ignore_errors=True)
    return summary


def training_params(model_params: dict, train_params: dict, loader: dict | None = None) -> dict:
    """The params file a training process elsewhere (torchrun workers, TrainJob pods) reads."""
    return {"model": dict(model_params), "train": dict(train_params), **({LoaderConfig.SECTION: dict(loader)} if loader else {})}


def launch_train(
    dataset_dir: Path, out_dir: Path, model_params: dict, train_params: dict, dataset_hash: str = "",
    nproc: int | None = None, loader: dict | None = None,
) -> dict:
    """train_step in this process (nproc 1), or under torchrun with nproc processes (DDP); returns the summary."""
    nproc = default_nproc() if nproc is None else nproc
    if nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {nproc}")
    if nproc == 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return train_step(Path(dataset_dir), Path(out_dir), model_params, train_params, dataset_hash, loader)
    with tempfile.TemporaryDirectory(prefix="train-params-") as tmp:
        params_file = Path(tmp) / "params.yaml"
        params_file.write_text(yaml.safe_dump(training_params(model_params, train_params, loader)))
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "components.lifecycle.train", "--data", str(dataset_dir), "--out", str(out_dir),
            "--params", str(params_file), "--dataset-hash", dataset_hash,
        ]  # no --nproc for the children (torchrun would take it for its own): they see WORLD_SIZE
        proc = subprocess.run(cmd, cwd=PROJECT_ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"torchrun with {nproc} processes failed (exit {proc.returncode}); see the log above")
    return json.loads((Path(out_dir) / SUMMARY).read_text())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train AsymDiffRec and its base model on the validated dataset.")
    parser.add_argument("--data", type=Path, default=Path("data/validated"))
    parser.add_argument("--out", type=Path, default=Path("data/models"))
    parser.add_argument("--params", default="params.yaml", help="reads its model:, train: and train_loader: sections")
    parser.add_argument("--nproc", type=int, default=None, help="DDP processes (default: CUDA devices if > 1, else 1)")
    parser.add_argument("--dataset-hash", default=None, help="default: the DVC md5 of --data")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    model_params, train_params = section(params, "model"), section(params, "train")
    digest = args.dataset_hash if args.dataset_hash is not None else dataset_hash(args.data)
    try:
        summary = launch_train(args.data, args.out, model_params, train_params, digest, args.nproc, params.get(LoaderConfig.SECTION))
    except (FileNotFoundError, ValueError) as e:
        print(f"train: {e}", file=sys.stderr)
        return 2
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if "WORLD_SIZE" not in os.environ:  # the launching process reports, not each torchrun worker
        runs = ", ".join(f"{k} val_auc={v['val_auc']} (epoch {v['best_epoch']})" for k, v in summary["models"].items())
        print(f"trained on {summary['device']} x{summary['world_size']} in {summary['seconds']:.0f}s: {runs} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
