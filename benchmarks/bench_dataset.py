"""Wall time and peak memory of building the training set by point-in-time join.

Feast's `get_historical_features` (DuckDB offline store, through the feature service) against a
plain DuckDB ASOF join of the same parquet tables with the same TTLs, the floor any point-in-time
join can hope for. Each measurement runs in a fresh process (peak RSS sampled over its process tree); the
two are measured side by side at each size, medians over repeats.

    python -m benchmarks.bench_dataset --sizes 100000 1000000 10000000 --repeats 3

With `--engine duckdb spark` it compares the two engines instead (`engine:` of params.yaml): the
feature jobs and the point-in-time join through the feature service, each timed in a fresh process
whose peak memory is that of its whole process tree (Spark's JVM included), sampled every 0.1 s.
The DuckDB join returns the joined frame in memory; the Spark one leaves it as Parquet, written by the
executors, which is what lets it grow past one machine's memory.

    python -m benchmarks.bench_dataset --engine duckdb spark --sizes 100000 1000000 10000000
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prepare(workdir: Path, n_events: int, seed: int = 7) -> None:
    """Synthetic log of the given size -> feature tables -> feast apply -> the events to join."""
    import shutil

    from components.data.dataset import labelled_events
    from components.data.feature_jobs import FeatureJobConfig, build_feature_tables, write_feature_tables
    from components.data.feature_store import apply_definitions, open_store
    from common.params import load_params
    from components.data.synthetic_log import SyntheticConfig, generate
    from feature_repo.settings import REPO_DIR, FeatureRepoSettings

    params = load_params()
    cfg = SyntheticConfig.from_dict(
        params["ingest"]["synthetic"], n_events=n_events, n_users=max(n_events // 40, 500), n_items=max(n_events // 200, 200), days=60, seed=seed
    )
    raw = generate(cfg)
    (workdir / "feature_repo").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_DIR / "feature_store.yaml", workdir / "feature_repo" / "feature_store.yaml")
    write_feature_tables(build_feature_tables(raw, FeatureJobConfig.from_dict(params["feature_jobs"])), workdir / "data" / "features")
    settings = FeatureRepoSettings.from_params(params, features_dir=str(workdir / "data" / "features"))
    apply_definitions(open_store(workdir / "feature_repo"), settings)
    labelled_events(raw.events, params["dataset"]["label_min_rating"]).to_parquet(workdir / "events.parquet", index=False)
    (workdir / "ttl_hours.json").write_text(json.dumps(settings.ttl_hours))


def run_feast(workdir: Path) -> int:
    import pandas as pd

    from components.data.dataset import point_in_time_join
    from components.data.feature_store import open_store

    joined = point_in_time_join(open_store(workdir / "feature_repo"), pd.read_parquet(workdir / "events.parquet"))
    return len(joined)


ASOF_SQL = """
SELECT e.event_id, e.user_id, e.item_id, e.event_timestamp, e.label,
       hour(e.event_timestamp) AS hour_of_day, isodow(e.event_timestamp) - 1 AS weekday,
       {columns}
FROM read_parquet('{events}') e
{joins}
"""


def run_duckdb(workdir: Path) -> int:
    ttl = json.loads((workdir / "ttl_hours.json").read_text())
    return len(asof_join(workdir / "data" / "features", workdir / "events.parquet", ttl))


def asof_join(features_dir: Path, events: Path, ttl: dict[str, float]):
    """The same point-in-time join written by hand: latest row at or before the event, then the TTL."""
    import duckdb

    views = {
        "user_profile": ("user_id", ["age_bucket", "gender", "occupation", "region", "user_profile_ts"]),
        "user_activity": ("user_id", ["user_events_7d", "user_events_30d", "user_mean_rating_30d", "user_top_genres_30d", "user_activity_ts"]),
        "item_metadata": ("item_id", ["item_genres", "item_release_year", "item_metadata_ts"]),
        "item_stats": ("item_id", ["item_events_7d", "item_events_30d", "item_mean_rating_30d", "item_stats_ts"]),
    }
    columns, joins = [], []
    for i, (view, (key, cols)) in enumerate(views.items()):
        alias = f"v{i}"
        path = features_dir / f"{view}.parquet"
        joins.append(
            f"ASOF LEFT JOIN read_parquet('{path}') {alias} ON e.{key} = {alias}.{key} AND e.event_timestamp >= {alias}.event_timestamp"
        )
        fresh = f"{alias}.event_timestamp >= e.event_timestamp - INTERVAL {int(ttl[view])} HOUR"
        columns += [f"CASE WHEN {fresh} THEN {alias}.{c} END AS {c}" for c in cols]
    sql = ASOF_SQL.format(columns=",\n       ".join(columns), events=events, joins="\n".join(joins))
    return duckdb.connect().execute(sql).df()


def measure(kind: str, workdir: Path) -> dict:
    """Run one join in a fresh process: wall time inside it, peak RSS of its process tree."""
    from benchmarks.measure import run_measured

    code = (
        "import json,time; from pathlib import Path; from benchmarks.bench_dataset import run_feast, run_duckdb;"
        f"w=Path({str(workdir)!r}); t=time.perf_counter(); n=run_{kind}(w);"
        "print('RESULT', json.dumps({'rows': n, 'seconds': time.perf_counter()-t}))"
    )
    return run_measured(code, workdir / f"{kind}.log", f"{kind} join")


def prepare_raw(workdir: Path, n_events: int, seed: int = 7) -> None:
    """The synthetic log of `prepare`, written as the raw tables both engines' feature jobs read."""
    from common.params import load_params
    from components.data.synthetic_log import SyntheticConfig, generate

    params = load_params()
    cfg = SyntheticConfig.from_dict(
        params["ingest"]["synthetic"], n_events=n_events, n_users=max(n_events // 40, 500), n_items=max(n_events // 200, 200), days=60, seed=seed
    )
    generate(cfg).write(workdir / "raw")


def engine_features(workdir: Path, engine: str) -> int:
    """The features stage on `engine`: raw tables in, feature tables out; returns the rows written."""
    from common.params import load_params
    from components.data import engine as engines

    config = engines.local_config(engine)
    try:
        rows = engines.feature_jobs_step(engine, workdir / "raw", workdir / engine / "features", load_params()["feature_jobs"], config)
    finally:
        engines.stop_spark()
    return sum(rows.values())


def engine_join(workdir: Path, engine: str) -> int:
    """`feast apply` and the point-in-time join through the feature service on `engine`; returns the
    joined rows (checked against the events inside the join)."""
    from common.params import load_params
    from components.data import engine as engines
    from components.data.feature_store import apply_step, open_store

    params = load_params()
    config = engines.local_config(engine)
    registry = workdir / engine / "feast"
    spark = engines.spark_session_for(config, "asymdiffrec-bench") if engine == "spark" else None
    try:
        apply_step(str(workdir / engine / "features"), registry, params["feature_store"]["ttl_hours"], config)
        store = open_store(fs_yaml=config, work_dir=registry)
        min_rating = params["dataset"]["label_min_rating"]
        if engine == "spark":
            from components.data import spark_join

            events = spark.read.parquet(str(workdir / "raw" / "events.parquet"))
            entity = spark_join.labelled_events(events, min_rating)  # its sort is persisted
            return spark_join.join_to_parquet(store, entity, str(workdir / engine / "joined.parquet"))
        from components.data.dataset import labelled_events, point_in_time_join
        from components.data.raw import RawTables

        return len(point_in_time_join(store, labelled_events(RawTables.read(workdir / "raw").events, min_rating)))
    finally:
        engines.stop_spark()


def measure_tree(call: str, workdir: Path, engine: str) -> dict:
    """Run `call(workdir, engine)` in a fresh process; wall time inside it, peak RSS of its process tree."""
    from benchmarks.measure import run_measured

    code = (
        "import json,time; from pathlib import Path; from benchmarks.bench_dataset import engine_features, engine_join;"
        f"t=time.perf_counter(); n={call}(Path({str(workdir)!r}), {engine!r});"
        "print('RESULT', json.dumps({'rows': n, 'seconds': time.perf_counter()-t}))"
    )
    return run_measured(code, workdir / f"{call}-{engine}.log", f"{call} on {engine}")


def compare_engines(sizes: list[int], engines: list[str], out: Path) -> None:
    """Both engines' feature jobs and join at each size, side by side, one run each (the large sizes take minutes)."""
    results = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix=f"bench-engines-{n}-") as tmp:
            workdir = Path(tmp)
            t = time.perf_counter()
            prepare_raw(workdir, n)
            print(f"[{n:,} events] raw tables in {time.perf_counter() - t:.1f}s", flush=True)
            row: dict = {"events": n}
            for engine in engines:
                for step, call in (("features", "engine_features"), ("join", "engine_join")):
                    r = measure_tree(call, workdir, engine)
                    if step == "join" and r["rows"] != n:
                        raise RuntimeError(f"{engine} join returned {r['rows']:,} rows for {n:,} events")
                    row[f"{engine}_{step}_seconds"] = r["seconds"]
                    row[f"{engine}_{step}_peak_rss_mib"] = r["peak_rss_mib"]
                    print(f"  {engine} {step}: {r['seconds']:.1f}s, peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
            results.append(row)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    head = " | ".join(f"{e} {s} (s) | {e} {s} peak RSS (MiB)" for e in engines for s in ("features", "join"))
    print(f"\n| events | {head} |")
    print("|---:|" + "---:|" * (4 * len(engines)))
    for r in results:
        cells = " | ".join(
            f"{r[f'{e}_{s}_seconds']:.1f} | {r[f'{e}_{s}_peak_rss_mib']:,.0f}" for e in engines for s in ("features", "join")
        )
        print(f"| {r['events']:,} | {cells} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=3, help="per size; sizes >= 5M run once")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dataset.json")
    parser.add_argument("--engine", nargs="+", choices=["duckdb", "spark"], default=None,
                        help="compare these engines' feature jobs and join (writes engines.json) instead of Feast vs a plain ASOF join")
    args = parser.parse_args(argv)
    if args.engine:
        out = args.out if args.out != parser.get_default("out") else args.out.with_name("engines.json")
        compare_engines(args.sizes, args.engine, out)
        return
    results = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix=f"bench-{n}-") as tmp:
            workdir = Path(tmp)
            t = time.perf_counter()
            prepare(workdir, n)
            print(f"[{n:,} events] prepared in {time.perf_counter() - t:.1f}s", flush=True)
            runs: dict[str, list[dict]] = {"feast": [], "duckdb": []}
            for _ in range(args.repeats if n < 5_000_000 else 1):
                for kind in ("feast", "duckdb"):  # interleaved, so both see the same machine load
                    runs[kind].append(measure(kind, workdir))
            row = {"events": n}
            for kind, rs in runs.items():
                assert all(r["rows"] == n for r in rs), f"{kind} returned {[r['rows'] for r in rs]} rows for {n} events"
                row[f"{kind}_seconds"] = statistics.median(r["seconds"] for r in rs)
                row[f"{kind}_peak_rss_mib"] = statistics.median(r["peak_rss_mib"] for r in rs)
            row["time_ratio"] = row["feast_seconds"] / row["duckdb_seconds"]
            row["memory_ratio"] = row["feast_peak_rss_mib"] / row["duckdb_peak_rss_mib"]
            results.append(row)
            print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("\n| events | Feast join (s) | DuckDB ASOF (s) | time ratio | Feast peak RSS (MiB) | DuckDB peak RSS (MiB) | memory ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['events']:,} | {r['feast_seconds']:.2f} | {r['duckdb_seconds']:.2f} | {r['time_ratio']:.1f}x | "
            f"{r['feast_peak_rss_mib']:.0f} | {r['duckdb_peak_rss_mib']:.0f} | {r['memory_ratio']:.1f}x |"
        )


if __name__ == "__main__":
    main()
