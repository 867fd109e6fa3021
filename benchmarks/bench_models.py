"""Training throughput and inference latency: base model vs AsymDiffRec, side by side in one run.

    python benchmarks/bench_models.py --base dnn --out reports/bench_models.json

Training throughput is samples per second over `--steps` optimiser steps (after a warm-up);
inference latency is the time to score 1,000 samples in one batch, on encoded tensors and end to end
from a DataFrame. Each figure is the median over `--repeats`.

    python benchmarks/bench_models.py --compare-loops

runs `benchmarks/bench_train_loop.py` instead: the project's `train` against a plain PyTorch loop of the
same shape (16 categorical fields, embedding 16, MLP 256-128, batch 512, 2 threads), side by side.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.asymdiffrec import build_model  # noqa: E402
from models.data import load_dataset  # noqa: E402
from models.schema import FeatureSchema  # noqa: E402
from models.toy_dataset import make_synthetic_dataset  # noqa: E402
from models.train import resolve_device  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_train(model, data, batch_size: int, steps: int, device: torch.device, amp: bool) -> float:
    """Samples per second over `steps` optimiser steps."""
    model.train().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator(device=device).manual_seed(0)
    order = torch.randint(0, len(data), (steps, batch_size), generator=torch.Generator().manual_seed(0)).to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and amp else torch.autocast(device.type, enabled=False)
    _sync(device)
    start = time.perf_counter()
    for step in range(steps):
        with autocast:
            loss, _ = model.loss(data.index(order[step]), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return steps * batch_size / (time.perf_counter() - start)


@torch.no_grad()
def bench_infer(model, batch, device: torch.device, inner: int = 10) -> float:
    """Milliseconds to score one batch (median-friendly: averaged over `inner` calls)."""
    model.eval().to(device)
    batch = batch.to(device)
    model(batch)
    _sync(device)
    start = time.perf_counter()
    for _ in range(inner):
        model(batch)
    _sync(device)
    return (time.perf_counter() - start) / inner * 1000


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset folder (default: a synthetic dataset)")
    parser.add_argument("--n-events", type=int, default=50_000, help="synthetic dataset size")
    parser.add_argument("--base", default="dnn")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-amp", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", default="reports/bench_models.json")
    parser.add_argument("--compare-loops", action="store_true", help="the train-loop comparison (bench_train_loop.py, its defaults)")
    args = parser.parse_args(argv)
    if args.compare_loops:
        from benchmarks.bench_train_loop import main as compare_loops

        compare_loops([])
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    data = load_dataset(args.data) if args.data else make_synthetic_dataset(n_events=args.n_events, n_users=2000, n_items=1000)
    schema = FeatureSchema.fit(data.train, data.features)
    train_b = schema.encode(data.train).to(device)
    frame_1k = data.test.iloc[:1000]
    if len(frame_1k) < 1000:
        frame_1k = data.train.iloc[:1000]
    batch_1k = schema.encode(frame_1k)

    results = {}
    models = {name: build_model(schema, {"variant": name, "base": args.base}, seed=0) for name in ("base", "asymdiffrec")}
    for name, model in models.items():
        bench_train(model, train_b, args.batch_size, 5, device, not args.no_amp)  # warm-up
    train_tp = {n: [] for n in models}
    infer_ms = {n: [] for n in models}
    e2e_ms = {n: [] for n in models}
    for _ in range(args.repeats):  # interleaved so drift in machine load hits both alike
        for name, model in models.items():
            train_tp[name].append(bench_train(model, train_b, args.batch_size, args.steps, device, not args.no_amp))
            infer_ms[name].append(bench_infer(model, batch_1k, device))
            start = time.perf_counter()
            with torch.no_grad():
                model.eval()(schema.encode(frame_1k, with_label=False).to(device))
            _sync(device)
            e2e_ms[name].append((time.perf_counter() - start) * 1000)
    for name, model in models.items():
        results[name] = {
            "train_samples_per_s": statistics.median(train_tp[name]),
            "infer_ms_per_1k": statistics.median(infer_ms[name]),
            "infer_ms_per_1k_from_frame": statistics.median(e2e_ms[name]),
            "parameters": sum(p.numel() for p in model.parameters()),
        }
    base, asym = results["base"], results["asymdiffrec"]
    report = {
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "base_model": args.base,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "train_rows": len(train_b),
        "models": results,
        "overhead": {
            "train_time_ratio": base["train_samples_per_s"] / asym["train_samples_per_s"],
            "infer_latency_ratio": asym["infer_ms_per_1k"] / base["infer_ms_per_1k"],
            "infer_latency_ratio_from_frame": asym["infer_ms_per_1k_from_frame"] / base["infer_ms_per_1k_from_frame"],
        },
    }
    print(f"{'model':<12} {'train samples/s':>16} {'infer ms/1k':>12} {'from frame ms/1k':>17} {'params':>9}")
    for name, r in results.items():
        print(f"{name:<12} {r['train_samples_per_s']:>16,.0f} {r['infer_ms_per_1k']:>12.3f} {r['infer_ms_per_1k_from_frame']:>17.2f} {r['parameters']:>9,}")
    o = report["overhead"]
    print(f"AsymDiffRec overhead: training time x{o['train_time_ratio']:.2f}, inference latency x{o['infer_latency_ratio']:.2f} "
          f"(x{o['infer_latency_ratio_from_frame']:.2f} from a frame) on {report['device']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
