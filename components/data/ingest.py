"""Ingest step: read the configured source into the raw tables (events, users, items)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from components.data.movielens import load_movielens
from common.params import ParamsSection, load_params, section
from components.data.raw import RawTables
from components.data.synthetic_log import SyntheticConfig, generate

SOURCES = ("movielens", "synthetic")


@dataclass(frozen=True)
class IngestConfig(ParamsSection):
    """The params.yaml `ingest:` section."""

    SECTION = "ingest"
    source: str  # movielens | synthetic
    synthetic: dict  # the synthetic source's knobs (SyntheticConfig), used when source is synthetic

    def validate(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"ingest.source must be one of {SOURCES}, got '{self.source}'")


def ingest(config: IngestConfig) -> RawTables:
    if config.source == "movielens":
        return load_movielens()
    return generate(SyntheticConfig.from_dict(config.synthetic))


def ingest_step(config: dict, out_dir: Path) -> dict[str, int]:
    """Ingest the source the `ingest:` section names and write the raw tables; returns the row count of each table."""
    tables = ingest(IngestConfig.from_dict(config))
    tables.write(out_dir)
    return {name: len(getattr(tables, name)) for name in ("events", "users", "items")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=None, help="params.yaml (default: the project's)")
    parser.add_argument("--out", type=Path, default=Path("data/raw"))
    args = parser.parse_args(argv)
    params = section(load_params(args.params), "ingest")
    rows = ingest_step(params, args.out)
    print(f"ingest: {params['source']}: {rows['events']:,} events, {rows['users']:,} users, {rows['items']:,} items -> {args.out}")


if __name__ == "__main__":
    main()
