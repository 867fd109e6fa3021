"""Peak memory and samples/s of the train step's two loaders as the training split grows.

    python -m benchmarks.bench_loader --sizes 1000000 10000000

`memory` (today's default) reads the split into pandas and encodes it whole; `parquet` fits the schema
column by column and streams this rank's shard of train.parquet in chunks (`models/shards.py`).
Each run is a fresh process doing what the train step does before and during training: prepare the
data (`components.lifecycle.train.training_data`), then train the base DNN for `--steps` steps at
batch 1024 on what the loader yields. Peak RSS is that process's own (from the kernel). The training
file is the toy dataset's shape (the contract's 17 fields), written with pandas' default row groups
as the dataset step writes it; the loaders run side by side at each size. Peak memory is sampled from
outside the process (`benchmarks/measure.py`).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIECE = 1_000_000


def prepare(folder: Path, rows: int) -> None:
    """train.parquet of `rows` rows (a million-row piece of the toy dataset written as often as needed:
    the vocabularies stay those of one piece), a small validation split, schema.json."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from models.toy_dataset import make_synthetic_dataset, write_synthetic_dataset

    write_synthetic_dataset(folder, n_events=20_000, n_users=5_000, n_items=2_000, seed=0)  # validation, test, schema.json
    piece = make_synthetic_dataset(n_events=int(min(rows, PIECE) / 0.7) + 1, n_users=5_000, n_items=2_000, seed=1).train
    table = pa.Table.from_pandas(piece.iloc[: min(rows, PIECE)], preserve_index=False)
    with pq.ParquetWriter(folder / "train.parquet", table.schema) as writer:
        for start in range(0, rows, PIECE):
            writer.write_table(table.slice(0, min(PIECE, rows - start)), row_group_size=1024 * 1024)  # pandas' default row group


def run(folder: Path, kind: str, steps: int, threads: int) -> dict:
    """In this process: the train step's data preparation, then `steps` training steps of the base DNN."""
    import torch

    from components.lifecycle.train import LoaderConfig, training_data
    from models.asymdiffrec import build_model
    from models.train import _in_memory_batches

    torch.set_num_threads(threads)
    t = time.perf_counter()
    schema, source, _, rows = training_data(folder, LoaderConfig(kind=kind))
    prepare_s = time.perf_counter() - t
    model = build_model(schema, {"variant": "base", "base": "dnn"}, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    batches = _in_memory_batches(source, 1024, gen) if kind == "memory" else source.batches(1024, gen)
    seen, t = 0, time.perf_counter()
    for step, batch in enumerate(batches):
        if step == steps:
            break
        loss, _ = model.loss(batch, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(batch)
    return {"rows": rows["train"], "prepare_s": prepare_s, "samples_per_s": seen / (time.perf_counter() - t)}


def measure(folder: Path, kind: str, steps: int, threads: int) -> dict:
    from benchmarks.measure import run_measured

    code = (
        "import json; from pathlib import Path; from benchmarks.bench_loader import run;"
        f"print('RESULT', json.dumps(run(Path({str(folder)!r}), {kind!r}, {steps}, {threads})))"
    )
    return run_measured(code, folder / f"{kind}.log", f"the {kind} loader")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--steps", type=int, default=300, help="training steps timed after the data is ready")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "loader.json")
    args = parser.parse_args(argv)
    results = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix=f"bench-loader-{n}-") as tmp:
            folder = Path(tmp)
            t = time.perf_counter()
            prepare(folder, n)
            print(f"[{n:,} rows] written in {time.perf_counter() - t:.0f}s", flush=True)
            row = {"rows": n}
            for kind in ("memory", "parquet"):
                r = measure(folder, kind, args.steps, args.threads)
                row.update({f"{kind}_{k}": v for k, v in r.items() if k != "rows"})
                print(f"  {kind}: ready in {r['prepare_s']:.1f}s, {r['samples_per_s']:,.0f} samples/s, peak RSS {r['peak_rss_mib']:,.0f} MiB", flush=True)
            results.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("\n| training rows | in memory: ready (s) | samples/s | peak RSS (MiB) | Parquet shard: ready (s) | samples/s | peak RSS (MiB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['rows']:,} | {r['memory_prepare_s']:.1f} | {r['memory_samples_per_s']:,.0f} | {r['memory_peak_rss_mib']:,.0f} | "
              f"{r['parquet_prepare_s']:.1f} | {r['parquet_samples_per_s']:,.0f} | {r['parquet_peak_rss_mib']:,.0f} |")


if __name__ == "__main__":
    main()
