"""Ingest step: read the configured source into the raw tables (events, users, items)."""
from __future__ import annotations

import argparse
from pathlib import Path

from components.data.movielens import load_movielens
from components.common.params import load_params, section
from components.data.raw import RawTables
from components.data.synthetic_log import SyntheticConfig, generate

SOURCES = ("movielens", "synthetic")


def ingest(source: str, synthetic: dict | None = None) -> RawTables:
    if source == "movielens":
        return load_movielens()
    if source == "synthetic":
        return generate(SyntheticConfig.from_dict(synthetic or {}))
    raise ValueError(f"ingest.source must be one of {SOURCES}, got '{source}'")


def ingest_step(source: str, synthetic: dict | None, out_dir: Path) -> dict[str, int]:
    """Ingest and write the raw tables; returns the row count of each table."""
    tables = ingest(source, synthetic)
    tables.write(out_dir)
    return {name: len(getattr(tables, name)) for name in ("events", "users", "items")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=None, help="params.yaml (default: the project's)")
    parser.add_argument("--out", type=Path, default=Path("data/raw"))
    args = parser.parse_args(argv)
    params = section(load_params(args.params), "ingest")
    rows = ingest_step(params["source"], params.get("synthetic"), args.out)
    print(f"ingest: {params['source']}: {rows['events']:,} events, {rows['users']:,} users, {rows['items']:,} items -> {args.out}")


if __name__ == "__main__":
    main()
