"""Where a training step's time goes: the project's `train` against a plain PyTorch loop of the same shape.

    python -m benchmarks.bench_train_loop --fields 16 --rows 100000 --batch-size 512 --threads 2

The same data (categorical fields with random ids, 20% of them missing, and random labels), the same network (embedding 16 per
field, MLP 256-128, a linear head, Adam), the same batches, timed side by side and interleaved:

- `plain`: a bare loop: one embedding table, `ids + offsets`, flatten, MLP, BCE, Adam;
- `plain_with_missing`: the bare loop plus what the model must do for missing features: a learned
  missing embedding per field, substituted where the batch's mask says so;
- `model_in_plain_loop`: the project's base model (`models.asymdiffrec.build_model`) in that same loop,
  so the difference from `plain` is the model's own work (missing-field embeddings, field order);
- `train`: the project's `models.train.train` on that model (shuffling, batch gathering, progress, the
  loss module), one epoch, no validation;
- `asymdiffrec_train`: `train` on AsymDiffRec over the same base, whose step must also encode the noisy
  copy, run the denoiser and score both latents; its multiply-adds per sample are counted beside it.

Each figure is samples per second, the median over `--repeats` (interleaved, so drift in machine load
hits every variant alike). Ratios are against `plain`, and AsymDiffRec's against the base's `train`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from models.asymdiffrec import build_model
from models.config import TrainConfig
from models.schema import FeatureSchema
from models.train import train

ROOT = Path(__file__).resolve().parents[1]


def categorical_frame(rows: int, fields: int, cardinality: int, missing_rate: float = 0.2, seed: int = 0) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Random ids per field, `missing_rate` of them missing (null), random labels."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, cardinality, (rows, fields)).astype("float64")
    ids[rng.random((rows, fields)) < missing_rate] = np.nan
    frame = pd.DataFrame({f"f{i}": ids[:, i] for i in range(fields)})
    frame["label"] = rng.integers(0, 2, rows)
    frame["user_id"] = rng.integers(0, 1000, rows)
    return frame, [{"name": f"f{i}", "view": "v", "kind": "categorical"} for i in range(fields)]


class PlainDNN(nn.Module):
    def __init__(self, cards: list[int], dim: int, hidden: list[int], with_missing: bool = False):
        super().__init__()
        self.table = nn.Embedding(sum(cards), dim)
        self.register_buffer("offsets", torch.tensor([0, *cards[:-1]]).cumsum(0))
        layers, width = [], len(cards) * dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.mlp = nn.Sequential(*layers, nn.Linear(width, 1))

        self.missing = nn.Parameter(torch.zeros(len(cards), dim)) if with_missing else None

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        emb = self.table(ids + self.offsets)
        if self.missing is not None:
            emb = torch.where(mask.unsqueeze(-1), self.missing.unsqueeze(0), emb)
        return self.mlp(emb.flatten(1)).squeeze(-1)


def plain_epoch(model: PlainDNN, data, order: torch.Tensor, batch_size: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ids, mask, label = data.single, data.mask, data.label
    start = time.perf_counter()
    for step in range(0, len(order), batch_size):
        idx = order[step : step + batch_size]
        loss = nn.functional.binary_cross_entropy_with_logits(model(ids[idx], mask[idx] if model.missing is not None else None), label[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return len(order) / (time.perf_counter() - start)


def model_in_plain_loop(model, data, order: torch.Tensor, batch_size: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for step in range(0, len(order), batch_size):
        loss, _ = model.loss(data.index(order[step : step + batch_size]), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return len(order) / (time.perf_counter() - start)


def project_train(model, data, batch_size: int) -> float:
    cfg = TrainConfig(epochs=1, batch_size=batch_size, lr=1e-3, device="cpu", progress=False, seed=0)
    return train(model, data, None, cfg).samples_per_second


def macs_per_sample(model: nn.Module, batch) -> int:
    """Multiply-adds of the Linear layers in one training forward pass, per sample (embedding look-ups
    and element-wise work not counted): what the step must do, whatever the loop around it."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        total += inputs[0].numel() // inputs[0].shape[-1] * module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            model.loss(batch, torch.Generator().manual_seed(0))
    finally:
        for h in hooks:
            h.remove()
    return total // len(batch)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=16)
    parser.add_argument("--cardinality", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--missing-rate", type=float, default=0.2, help="share of field values missing")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_loop.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    frame, features = categorical_frame(args.rows, args.fields, args.cardinality, args.missing_rate)
    schema = FeatureSchema.fit(frame, features)
    data = schema.encode(frame, with_label=True)
    cards = [f.cardinality for f in schema.fields]
    shape = {"base": "dnn", "embed_dim": 16, "hidden": [256, 128], "dropout": 0.0, "embed_dropout": 0.0}
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    runs: dict[str, list[float]] = {k: [] for k in ("plain", "plain_with_missing", "model_in_plain_loop", "train", "asymdiffrec_train")}
    for repeat in range(args.repeats + 1):  # the first round warms up and is dropped
        torch.manual_seed(repeat)
        got = {
            "plain": plain_epoch(PlainDNN(cards, 16, [256, 128]), data, order, args.batch_size),
            "plain_with_missing": plain_epoch(PlainDNN(cards, 16, [256, 128], with_missing=True), data, order, args.batch_size),
            "model_in_plain_loop": model_in_plain_loop(build_model(schema, {**shape, "variant": "base"}, seed=0), data, order, args.batch_size),
            "train": project_train(build_model(schema, {**shape, "variant": "base"}, seed=0), data, args.batch_size),
            "asymdiffrec_train": project_train(build_model(schema, {**shape, "variant": "asymdiffrec"}, seed=0), data, args.batch_size),
        }
        if repeat:
            for k, v in got.items():
                runs[k].append(v)
    median = {k: statistics.median(v) for k, v in runs.items()}
    # each repeat's own ratio (its variants ran back to back): the spread says how far machine noise moves it
    paired = {k: sorted(a / p for a, p in zip(v, runs["plain"])) for k, v in runs.items() if k != "plain"}
    paired["asymdiffrec_step_vs_base"] = sorted(b / a for a, b in zip(runs["asymdiffrec_train"], runs["train"]))
    probe = data.index(slice(0, args.batch_size))
    macs = {name: macs_per_sample(build_model(schema, {**shape, "variant": name}, seed=0).train(), probe) for name in ("base", "asymdiffrec")}
    report = {
        "fields": args.fields, "rows": args.rows, "missing_rate": args.missing_rate, "batch_size": args.batch_size, "threads": args.threads, "repeats": args.repeats,
        "torch": torch.__version__, "samples_per_s": median,
        "ratio_to_plain": {k: v / median["plain"] for k, v in median.items()},
        "paired_ratio_range": {k: [v[0], statistics.median(v), v[-1]] for k, v in paired.items()},
        "asymdiffrec_step_vs_base_train": median["train"] / median["asymdiffrec_train"],
        "linear_macs_per_sample": macs, "asymdiffrec_macs_vs_base": macs["asymdiffrec"] / macs["base"],
    }
    print(f"{'loop':<22} {'samples/s':>12} {'vs plain':>9}  {'per repeat: min / median / max':>30}")
    for k, v in median.items():
        spread = " / ".join(f"{r:.2f}" for r in report["paired_ratio_range"][k]) if k in paired else ""
        print(f"{k:<22} {v:>12,.0f} {v / median['plain']:>8.2f}x  {spread:>30}")
    print(f"AsymDiffRec step: {report['asymdiffrec_step_vs_base_train']:.2f}x the base's time; "
          f"{macs['asymdiffrec']:,} vs {macs['base']:,} linear multiply-adds per sample ({report['asymdiffrec_macs_vs_base']:.2f}x)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
