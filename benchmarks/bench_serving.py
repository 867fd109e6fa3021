"""Latency and throughput of POST /rank, beside the bare Feast look-up of the same rows, in one run.

For 100 and 1,000 candidates, on the SQLite online store and a real Redis (a redis-server started on
loopback for the run), with and without the item cache: `bentoml serve` in its own process (the
params.yaml defaults: one worker per CPU) called by an aiohttp client at concurrency 1, 8 and 32. The
floors, measured in this process on the same requests:
  - `online_read`: the store reads the service makes when nothing is cached (the user's row of each user
    view, the candidates' rows of each item view), the "bare look-up of exactly the rows it reads";
  - `get_online_features`: Feast's usual API for the same entities, what a plain Feast client pays;
  - GET /livez on the same server: BentoML's HTTP stack for a request that does nothing.
And a profile of one request in process (user read, item rows, assembly, model) shows where the time goes.

Needs the materialized SQLite store and the validated dataset (`make pipeline`); trains a small model
into a temporary BentoML store.

    python -m benchmarks.bench_serving               # about 10 minutes on 2 cores
    python -m benchmarks.bench_serving --requests 100 --stores sqlite
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = (100, 1000)
CONCURRENCY = (1, 8, 32)


def _percentiles(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2), "n": len(ms)}


def _train_model(home: Path, data_dir: Path) -> tuple[str, Path]:
    import bentoml

    from components.lifecycle.model_store import bentoml_model_store, use_bentoml_home
    from models import fit, load_dataset, save_checkpoint

    use_bentoml_home(home)
    data = load_dataset(data_dir)
    features = [f if isinstance(f, dict) else f.__dict__ for f in data.features]
    model, schema, _ = fit(data.train, data.validation, features, {"variant": "asymdiffrec"}, {"epochs": 1, "progress": False})
    with bentoml.models.create("asymdiffrec", labels={"stage": "benchmark"}, _model_store=bentoml_model_store()) as ref:
        save_checkpoint(ref.path, model, schema)
    stored = bentoml.models.get(ref.tag, _model_store=bentoml_model_store())
    return str(stored.tag), Path(stored.path)


async def _load(url: str, bodies: list[bytes], concurrency: int) -> tuple[list[float], float, int]:
    """(latencies ms, wall seconds, errors) for posting every body, `concurrency` at a time. Above
    concurrency 1 each request opens its own connection, so the kernel spreads requests over the
    workers: kept-alive connections stay with the worker that accepted them, and all 8 can land on one."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while not queue.empty():
            body = queue.get_nowait()
            t = time.perf_counter()
            try:
                async with session.post(f"{url}/rank", data=body, headers={"Content-Type": "application/json"}) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            latencies.append((time.perf_counter() - t) * 1000)
            errors += not ok

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=concurrency > 1)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return latencies, time.perf_counter() - start, errors


async def _http_floor(url: str, n: int) -> list[float]:
    """Latencies of GET /livez on the same server and client: what BentoML's HTTP stack costs a request
    that does nothing (the floor under any endpoint)."""
    import aiohttp

    latencies = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            t = time.perf_counter()
            async with session.get(f"{url}/livez") as response:
                await response.read()
            latencies.append((time.perf_counter() - t) * 1000)
    return latencies


def _payloads(test, items: np.ndarray, n_requests: int, candidates: int, when: datetime, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    users = rng.choice(test["user_id"].unique(), n_requests)
    return [
        {"user_id": int(u), "item_ids": [int(i) for i in rng.choice(items, candidates, replace=False)], "context": {"request_time": when.isoformat()}}
        for u in users
    ]


def _floors(fs_yaml: Path, payloads: list[dict], when: datetime) -> dict:
    """The bare store reads for the same requests, in this process."""
    from components.data.feature_store import ONLINE_REGISTRY, open_store
    from feature_repo.definitions import FEATURE_SERVICE, REQUEST_TIME_FIELD
    from serving.online_store import OnlineReader

    store = open_store(fs_yaml=str(fs_yaml), registry=ONLINE_REGISTRY)
    reader = OnlineReader(store, check_seconds=3600, reconnect_seconds=1)
    by_key = {key: [v.name for v in reader.views.values() if key in v.join_keys] for key in ("user_id", "item_id")}
    service = store.get_feature_service(FEATURE_SERVICE)
    read_ms, api_ms = [], []
    for p in payloads:
        t = time.perf_counter()
        for view in by_key["user_id"]:
            reader.read(view, "user_id", [p["user_id"]])
        for view in by_key["item_id"]:
            reader.read(view, "item_id", p["item_ids"])
        read_ms.append((time.perf_counter() - t) * 1000)
        rows = [{"user_id": p["user_id"], "item_id": i, REQUEST_TIME_FIELD: int(when.timestamp())} for i in p["item_ids"]]
        t = time.perf_counter()
        store.get_online_features(features=service, entity_rows=rows).to_dict()
        api_ms.append((time.perf_counter() - t) * 1000)
    return {"online_read": _percentiles(read_ms), "get_online_features": _percentiles(api_ms)}


def _profile(checkpoint: Path, fs_yaml: Path, payloads: list[dict], when: datetime) -> dict:
    """Where one request's milliseconds go, in process, item cache warm (medians over the payloads)."""
    import torch

    from components.data.feature_store import ONLINE_REGISTRY, open_store
    from serving.ranker import Ranker

    torch.set_num_threads(1)
    ranker = Ranker(checkpoint, open_store(fs_yaml=str(fs_yaml), registry=ONLINE_REGISTRY), "profile")
    online = ranker.online
    for p in payloads:  # warm the cache
        ranker.score(p["user_id"], p["item_ids"], when)
    parts: dict[str, list[float]] = {"user_rows": [], "item_rows": [], "assemble": [], "model": []}
    unix_s = int(when.timestamp())
    for p in payloads:
        users = np.full(len(p["item_ids"]), p["user_id"], np.int64)
        items = np.asarray(p["item_ids"], np.int64)
        t0 = time.perf_counter()
        user_rows = online._user_rows(users, [])
        t1 = time.perf_counter()
        item_rows = online._item_rows(items, [])
        t2 = time.perf_counter()
        samples = online.assemble(user_rows, item_rows, np.full(len(items), unix_s, np.int64))
        t3 = time.perf_counter()
        with torch.inference_mode():
            torch.sigmoid(ranker.model(samples.batch).float()).double().numpy()
        t4 = time.perf_counter()
        for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[name].append(seconds * 1000)
    medians = {name: round(float(np.median(ms)), 3) for name, ms in parts.items()}
    medians["total"] = round(sum(medians.values()), 3)
    return medians


def _start_redis(folder: Path) -> tuple[subprocess.Popen, int]:
    import redis

    from serving.process import free_port

    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server), or pass --stores sqlite")
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(200):
        try:
            client.ping()
            return proc, port
        except redis.RedisError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def _redis_config(tmp: Path, port: int) -> Path:
    """The project's Feast config with Redis as the online store, its online registry in `tmp`."""
    from components.data.feature_store import materialize_all, prepare_online_store

    config = yaml.safe_load((ROOT / "feature_repo" / "feature_store.yaml").read_text())
    config["registry"] = str((ROOT / "feature_repo" / config["registry"]).resolve())
    config["online_registry"] = str(tmp / "redis-registry.db")
    config["online_store"] = {"type": "redis", "connection_string": f"127.0.0.1:{port}"}
    path = tmp / "feature_store.redis.yaml"
    path.write_text(yaml.safe_dump(config))
    materialize_all(prepare_online_store(ROOT / "feature_repo", fs_yaml=str(path)), ROOT / "data" / "features")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="per run with 100 candidates (a third of it with 1,000)")
    parser.add_argument("--stores", nargs="+", default=["sqlite", "redis"], choices=["sqlite", "redis"])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "validated")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serving.json")
    args = parser.parse_args(argv)

    import pandas as pd

    from components.data.feature_store import feature_time_range
    from serving.config import ServingConfig
    from serving.process import ServeProcess

    test = pd.read_parquet(args.data / "test.parquet", columns=["user_id", "item_id"])
    items = np.unique(pd.read_parquet(args.data / "train.parquet", columns=["item_id"])["item_id"].to_numpy())
    # Just after the newest feature run, so most stored values are fresh (not TTL-blanked).
    when = (feature_time_range(ROOT / "data" / "features")[1] + timedelta(hours=1)).astimezone(timezone.utc)
    payloads = {n: _payloads(test, items, args.requests if n == 100 else max(30, args.requests // 3), n, when, seed=n) for n in CANDIDATES}
    bodies = {n: [json.dumps(p).encode() for p in ps] for n, ps in payloads.items()}
    config = ServingConfig.load()
    results: dict = {"workers": config.worker_count, "requests_per_run": {str(n): len(p) for n, p in payloads.items()},
                     "request_time": when.isoformat(), "stores": {}}

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        tag, checkpoint = _train_model(tmp / "bentoml", args.data)
        redis_proc = None
        try:
            for store_name in args.stores:
                if store_name == "redis":
                    redis_proc, port = _start_redis(tmp)
                    fs_yaml = _redis_config(tmp, port)
                else:
                    fs_yaml = ROOT / "feature_repo" / "feature_store.yaml"
                out = results["stores"][store_name] = {}
                for n in CANDIDATES:
                    out[f"{n}_candidates"] = {"floor": _floors(fs_yaml, payloads[n], when),
                                              "profile_in_process": _profile(checkpoint, fs_yaml, payloads[n][:50], when)}
                for cache in (True, False):
                    overrides = {} if cache else {"item_cache_size": 0}
                    with ServeProcess(tmp, tmp / "bentoml", tag, fs_yaml, serving=overrides) as server:
                        for n in CANDIDATES:  # warm-up: every request once, spread over the workers (each has its own cache)
                            asyncio.run(_load(server.url, bodies[n], 2))
                        floor = _percentiles(asyncio.run(_http_floor(server.url, len(bodies[100]))))
                        out[f"http_livez_c1_{'cache' if cache else 'no_cache'}"] = floor
                        print(f"{store_name:6} GET /livez (HTTP floor) c1  p50 {floor['p50_ms']:7.1f} ms  p99 {floor['p99_ms']:7.1f} ms", flush=True)
                        for n in CANDIDATES:
                            for concurrency in CONCURRENCY:
                                ms, seconds, errors = asyncio.run(_load(server.url, bodies[n], concurrency))
                                run = {**_percentiles(ms), "throughput_rps": round(len(ms) / seconds, 1), "errors": errors}
                                out[f"{n}_candidates"][f"rank_c{concurrency}_{'cache' if cache else 'no_cache'}"] = run
                                print(f"{store_name:6} {n:5} candidates  cache={'on ' if cache else 'off'} c{concurrency:<2}  "
                                      f"p50 {run['p50_ms']:7.1f} ms  p99 {run['p99_ms']:7.1f} ms  {run['throughput_rps']:6.1f} req/s  errors {errors}", flush=True)
        finally:
            if redis_proc is not None:
                redis_proc.terminate()
                redis_proc.wait(timeout=10)

    results["targets"] = _targets(results)
    results["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(_table(results))
    print("\n" + "\n".join(f"{'met    ' if ok else 'NOT MET'}  {name}" for name, ok in results["targets"].items()))


def _targets(results: dict) -> dict[str, bool]:
    """The issue's targets, for each store, read from the cache-on runs."""
    targets = {}
    for store, out in results["stores"].items():
        r100, r1000 = out["100_candidates"], out["1000_candidates"]
        c1 = r100["rank_c1_cache"]
        targets[f"{store}: 100 candidates, c1 p50 <= 8 ms"] = c1["p50_ms"] <= 8
        targets[f"{store}: 100 candidates, c1 p99 <= 15 ms"] = c1["p99_ms"] <= 15
        targets[f"{store}: 100 candidates, c1 p99 <= 1.5x the bare look-up p99"] = c1["p99_ms"] <= 1.5 * r100["floor"]["online_read"]["p99_ms"]
        c8 = r100["rank_c8_cache"]
        targets[f"{store}: 100 candidates, c8 >= 150 req/s, p99 <= 100 ms, no errors"] = c8["throughput_rps"] >= 150 and c8["p99_ms"] <= 100 and c8["errors"] == 0
        targets[f"{store}: 1,000 candidates, c1 p99 <= 50 ms"] = r1000["rank_c1_cache"]["p99_ms"] <= 50
    return targets


def _table(results: dict) -> str:
    lines = ["| store | candidates | what | p50 (ms) | p99 (ms) | req/s | errors |", "|---|---:|---|---:|---:|---:|---:|"]
    for store, out in results["stores"].items():
        f = out["http_livez_c1_cache"]
        lines.append(f"| {store} | — | GET /livez c1 (BentoML's HTTP floor) | {f['p50_ms']:.1f} | {f['p99_ms']:.1f} | — | — |")
        for n in CANDIDATES:
            r = out[f"{n}_candidates"]
            for floor, name in (("online_read", "bare look-up (`online_read`, in process)"), ("get_online_features", "`get_online_features` (in process)")):
                f = r["floor"][floor]
                lines.append(f"| {store} | {n} | {name} | {f['p50_ms']:.1f} | {f['p99_ms']:.1f} | — | — |")
            for cache in ("cache", "no_cache"):
                for c in CONCURRENCY:
                    run = r[f"rank_c{c}_{cache}"]
                    what = f"/rank c{c}, item cache {'on' if cache == 'cache' else 'off'}"
                    lines.append(f"| {store} | {n} | {what} | {run['p50_ms']:.1f} | {run['p99_ms']:.1f} | {run['throughput_rps']:.0f} | {run['errors']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
