"""Latency and throughput of POST /rank with 100 candidates, beside the bare Feast online look-up.

One run, side by side: `bentoml serve` in its own process called by an async HTTP client at
concurrency 1 and 8, and `FeatureStore.get_online_features` for the same entities in this
process (the floor: what any service pays to read the features). Needs a materialized online
store (`dvc repro materialize`) and a validated dataset (`dvc repro validate`); trains a small
model into a temporary BentoML store.

    python -m benchmarks.bench_serving --requests 300
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _percentiles(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "n": len(ms)}


def _train_model(home: Path, data_dir: Path) -> str:
    import bentoml
    from bentoml._internal.configuration.containers import BentoMLContainer

    from models import fit, load_dataset, save_checkpoint

    BentoMLContainer.bentoml_home.set(str(home))
    data = load_dataset(data_dir)
    features = [f if isinstance(f, dict) else f.__dict__ for f in data.features]
    model, schema, _ = fit(data.train, data.validation, features, {"variant": "asymdiffrec"}, {"epochs": 1, "progress": False})
    with bentoml.models.create("asymdiffrec", labels={"stage": "benchmark"}) as ref:
        save_checkpoint(ref.path, model, schema)
    return str(ref.tag)


async def _load(url: str, payloads: list[dict], concurrency: int) -> tuple[list[float], float]:
    import httpx

    latencies: list[float] = []
    queue: asyncio.Queue = asyncio.Queue()
    for p in payloads:
        queue.put_nowait(p)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            payload = queue.get_nowait()
            t = time.perf_counter()
            response = await client.post(f"{url}/rank", json=payload)
            latencies.append((time.perf_counter() - t) * 1000)
            response.raise_for_status()

    async with httpx.AsyncClient(timeout=60) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return latencies, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="per concurrency level")
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "validated")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serving.json")
    args = parser.parse_args(argv)

    import pandas as pd

    from components.data.feature_store import ONLINE_REGISTRY, open_store
    from feature_repo.definitions import FEATURE_SERVICE, REQUEST_TIME_FIELD
    from serving.process import ServeProcess

    test = pd.read_parquet(args.data / "test.parquet", columns=["user_id", "item_id", "event_timestamp"])
    rng = np.random.default_rng(0)
    users = rng.choice(test["user_id"].unique(), args.requests)
    items = test["item_id"].unique()
    when = test["event_timestamp"].median().to_pydatetime()
    payloads = [
        {"user_id": int(u), "item_ids": [int(i) for i in rng.choice(items, args.candidates, replace=False)], "context": {"request_time": when.isoformat()}}
        for u in users
    ]
    results: dict = {"candidates": args.candidates, "requests": args.requests}

    store = open_store(registry=ONLINE_REGISTRY)
    service = store.get_feature_service(FEATURE_SERVICE)
    feast_ms = []
    for p in payloads:
        rows = [{"user_id": p["user_id"], "item_id": i, REQUEST_TIME_FIELD: int(when.timestamp())} for i in p["item_ids"]]
        t = time.perf_counter()
        store.get_online_features(features=service, entity_rows=rows).to_dict()
        feast_ms.append((time.perf_counter() - t) * 1000)
    results["feast_online_lookup"] = _percentiles(feast_ms)

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "bentoml"
        tag = _train_model(home, args.data)
        fs_yaml = ROOT / "feature_repo" / "feature_store.yaml"
        with ServeProcess(Path(tmp), home, tag, fs_yaml) as server:
            asyncio.run(_load(server.url, payloads[:20], 2))  # warm-up
            for concurrency in (1, 8):
                ms, seconds = asyncio.run(_load(server.url, payloads, concurrency))
                results[f"rank_c{concurrency}"] = {**_percentiles(ms), "throughput_rps": len(ms) / seconds}
    results["ratio_rank_c1_p50_to_feast_p50"] = results["rank_c1"]["p50_ms"] / results["feast_online_lookup"]["p50_ms"]
    results["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    f = results["feast_online_lookup"]
    print(f"| what | p50 (ms) | p99 (ms) | throughput (req/s) |\n|---|---:|---:|---:|")
    print(f"| Feast online look-up, {args.candidates} entities (in process) | {f['p50_ms']:.1f} | {f['p99_ms']:.1f} | — |")
    for c in (1, 8):
        r = results[f"rank_c{c}"]
        print(f"| POST /rank, {args.candidates} candidates, concurrency {c} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['throughput_rps']:.1f} |")
    print(f"\nrank p50 at concurrency 1 / Feast look-up p50: {results['ratio_rank_c1_p50_to_feast_p50']:.2f}x")


if __name__ == "__main__":
    main()
