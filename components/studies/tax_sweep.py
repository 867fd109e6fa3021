"""The missingness tax as the freshness gaps grow: the synthetic source, its sync delays, batch lag
and failure rate at several multiples of the configured ones, each through the project's own feature
jobs, Feast store and point-in-time join.

    python -m components.studies.tax_sweep --out reports --cache data/tax_sweep --params params.yaml

Scale 0 closes every gap: it is the fresh dataset, and its base model is every scale's reference.
At each other scale the base model and each method train on the natural data; the tax is
AUC(base, scale 0) - AUC(base, scale), and a method recovers (AUC(method) - AUC(base)) / tax of it,
paired by seed (models.quality does the arithmetic). Runs are cached under `--cache` by a digest of
the settings that decide them, so an interrupted sweep resumes where it stopped and a changed setting
re-runs only what it changes. The digest holds no code: after a change to the training code that
should change results, delete the cache folder before the next run.

Writes `tax_sweep.json` (per scale: the gap settings, missing rates, the tax, each method's paired gain
over the base and its recovered share, with 95% intervals) and `tax_sweep.png` (against the gap scale).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from common.files import atomic_write_json, staging_dir_for
from common.jsonable import jsonable
from common.params import ParamsSection, load_params, section
from components.data.dataset import write_dataset
from components.data.feature_jobs import FeatureJobConfig
from components.data.fresh import build_fresh_dataset, scaled_feature_config
from components.data.missingness import missingness_report
from components.data.synthetic_log import SyntheticConfig, generate
from models.config import VARIANTS
from models.quality import (EncodedDataset, check_same_events, encode_dataset, missing_slices, paired, recovered_share,
                            tax_report, train_runs)

METHODS_REQUIRE = "base"  # every share is measured against it


@dataclass
class TaxSweepConfig(ParamsSection):
    """The params.yaml `tax_sweep:` section."""

    SECTION = "tax_sweep"
    synthetic: dict = field(default_factory=dict)  # overrides of ingest.synthetic (n_events, ...)
    scales: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    variants: tuple[str, ...] = ("base", "dropout", "multimask", "asymdiffrec")
    train: dict = field(default_factory=dict)  # overrides of train: for the sweep's runs

    def validate(self) -> None:
        if 0.0 not in self.scales or len(self.scales) < 2:
            raise ValueError("tax_sweep.scales must hold 0 (the fresh reference) and at least one other scale")
        if any(s < 0 for s in self.scales):
            raise ValueError(f"tax_sweep.scales must be >= 0, got {list(self.scales)}")
        if METHODS_REQUIRE not in self.variants or set(self.variants) - set(VARIANTS):
            raise ValueError(f"tax_sweep.variants must include 'base' and be among {sorted(VARIANTS)}")
        if len(self.seeds) < 2:
            raise ValueError("tax_sweep.seeds needs at least 2 seeds for paired intervals")


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(jsonable(parts), sort_keys=True).encode()).hexdigest()[:16]


class RunCache:
    """One file per (scale, variant, seed) run: its metrics and test predictions, written whole."""

    def __init__(self, folder: Path, key: str):
        self.folder = Path(folder)
        self.key = key

    def _path(self, scale: float, variant: str, seed: int) -> Path:
        return self.folder / f"{self.key}-s{scale:g}-{variant}-{seed}.npz"

    def get(self, scale: float, variant: str, seed: int) -> dict[str, Any] | None:
        path = self._path(scale, variant, seed)
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as f:
            return {**json.loads(str(f["meta"])), "pred": f["pred"]}

    def put(self, scale: float, variant: str, seed: int, run: dict[str, Any]) -> None:
        path = self._path(scale, variant, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        meta = json.dumps(jsonable({k: v for k, v in run.items() if k != "pred"}))
        np.savez(tmp, meta=np.array(meta), pred=np.asarray(run["pred"], dtype=np.float64))
        tmp.replace(path)


def _runs(enc: EncodedDataset, cache: RunCache, scale: float, variants: Sequence[str], seeds: Sequence[int],
          model_config: dict, train_config: dict) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for seed in seeds:
        for variant in variants:
            run = cache.get(scale, variant, seed)
            if run is None:
                run = train_runs(enc, [seed], [variant], model_config, train_config, (), label=f"scale {scale:g} ")[variant][0]
                cache.put(scale, variant, seed, run)
            out[variant].append(run)
    return out


def run_sweep(params: dict, cache_dir: Path, only: Sequence[float] | None = None) -> dict[str, Any] | None:
    """Every scale: build its dataset, train (or read from the cache) its runs, measure the tax.

    `only` trains (or finds cached) the runs of those scales and the fresh reference, and returns no
    report: several processes or machines sharing `cache_dir` split a sweep this way, and a last run
    without `only` reads every run from the cache and writes the report."""
    config = TaxSweepConfig.from_dict(section(params, "tax_sweep"))
    order = run_order(config.scales)
    if only is not None:
        unknown = sorted(set(only) - set(config.scales))
        if unknown:
            raise ValueError(f"--only scales {unknown} are not in tax_sweep.scales {list(config.scales)}")
        order = [s for s in order if s == 0.0 or s in only]
    synthetic = SyntheticConfig.from_dict({**section(params, "ingest", "synthetic"), **config.synthetic})
    feature_jobs = section(params, "feature_jobs")
    model_config = {k: v for k, v in section(params, "model").items() if k != "variant"}
    train_config = {**section(params, "train"), **config.train, "progress": False}
    train_config.pop("seed", None)
    ttl, dataset = section(params, "feature_store", "ttl_hours"), section(params, "dataset")
    raw = generate(synthetic)
    print(f"tax sweep: synthetic source, {len(raw.events):,} events; scales {list(config.scales)}", flush=True)
    key = _digest(asdict(synthetic), feature_jobs, ttl, dataset, model_config, train_config)
    cache = RunCache(cache_dir, key)
    work = staging_dir_for(Path(cache_dir).resolve() / "datasets")
    scales: dict[str, Any] = {}
    try:
        fresh_enc, fresh_runs = None, None
        for scale in order:
            splits, schema = build_fresh_dataset(raw, feature_jobs, ttl, dataset, work / f"store-{scale:g}", gap_scale=scale)
            folder = work / f"dataset-{scale:g}"
            write_dataset(splits, schema, folder)
            enc = encode_dataset(folder, None)
            rates = {v: round(r, 4) for v, r in missingness_report(splits, list(schema.views))["test"]["missing_rate"].items()}
            gaps = {k: round(v, 4) for k, v in asdict(scaled_feature_config(FeatureJobConfig.from_dict(feature_jobs), scale)).items()
                    if k in ("profile_sync_delay_hours", "item_ingestion_delay_hours", "batch_lag_hours", "batch_failure_rate")}
            if scale == 0:
                fresh_enc = enc
                fresh_runs = _runs(enc, cache, scale, ["base"], config.seeds, model_config, train_config)["base"]
                scales[f"{scale:g}"] = {"gaps": gaps, "test_missing_rate": rates}
                continue
            check_same_events(enc.data, fresh_enc.data)
            runs = _runs(enc, cache, scale, config.variants, config.seeds, model_config, train_config)
            slices = missing_slices(enc.data)
            scales[f"{scale:g}"] = {
                "gaps": gaps, "test_missing_rate": rates,
                "tax": tax_report(runs["base"], fresh_runs, slices),
                "recovered": {v: recovered_share(rs, runs["base"], fresh_runs, slices) for v, rs in runs.items() if v != "base"},
                "gain_vs_base": {v: paired([r["natural"]["auc"] for r in rs], [b["natural"]["auc"] for b in runs["base"]])
                                 for v, rs in runs.items() if v != "base"},
                "paired_vs_dropout": ({v: paired([r["natural"]["auc"] for r in rs], [d["natural"]["auc"] for d in runs["dropout"]])
                                       for v, rs in runs.items() if v not in ("base", "dropout")} if "dropout" in runs else {}),
                "auc": {v: float(np.mean([r["natural"]["auc"] for r in rs])) for v, rs in runs.items()},
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if only is not None:
        return None
    ordered = {f"{s:g}": scales[f"{s:g}"] for s in sorted(config.scales)}
    return jsonable({"source": {"n_events": len(raw.events), **{k: v for k, v in asdict(synthetic).items() if k != "n_events"}},
                     "seeds": list(config.seeds), "variants": list(config.variants), "train": train_config, "scales": ordered})


def run_order(scales: Sequence[float]) -> list[float]:
    """The fresh reference first, then the configured gaps (scale 1), then the rest: an interrupted
    sweep has the most useful runs in its cache."""
    rest = sorted(s for s in scales if s not in (0.0, 1.0))
    return [0.0] + ([1.0] if 1.0 in scales else []) + rest


def plot_sweep(report: dict[str, Any], path: Path) -> None:
    """Left, in AUC: the tax (fresh base − natural base) and each method's gain over the natural base,
    with 95% intervals; a gain above the tax beats even the fresh store. Right: the recovered share,
    gain / tax, with Fieller's interval, only where the tax is distinguishable from zero."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(float(s), v) for s, v in report["scales"].items() if "tax" in v]
    xs = [s for s, _ in points]
    methods = sorted({m for _, v in points for m in v["recovered"]})
    colors = {m: f"C{i}" for i, m in enumerate(methods)}
    shift = {m: (i - (len(methods) - 1) / 2) * 0.04 * max(xs, default=1) for i, m in enumerate(methods)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))

    def bars(ax, x, mean, ci, **kw) -> None:
        lo = [m - c[0] if c[0] is not None else 0 for m, c in zip(mean, ci)]
        hi = [c[1] - m if c[1] is not None else 0 for m, c in zip(mean, ci)]
        ax.errorbar(x, mean, yerr=[lo, hi], capsize=3, **kw)

    bars(left, xs, [v["tax"]["auc"]["tax"] for _, v in points], [v["tax"]["auc"]["ci95"] for _, v in points],
         marker="s", color="black", lw=2, label="tax (fresh − natural)")
    for m in methods:
        gains = [v["gain_vs_base"][m] for _, v in points]
        bars(left, [x + shift[m] for x in xs], [g["mean_diff"] for g in gains], [g["ci95"] for g in gains],
             marker="o", color=colors[m], label=f"{m} − base")
    left.axhline(0, color="grey", lw=0.8)
    left.set(xlabel="freshness gaps (x the configured delays and failure rate)", ylabel="AUC difference",
             title="The tax and each method's gain")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    for m in methods:  # a share of a tax not distinguishable from zero is not a number to plot
        rec = [(x + shift[m], v["recovered"][m]["auc"]) for x, (_, v) in zip(xs, points) if v["tax"]["auc"]["ci95"][0] > 0]
        rec = [(x, r) for x, r in rec if r["ci95"][0] is not None]
        bars(right, [x for x, _ in rec], [r["mean"] for _, r in rec], [r["ci95"] for _, r in rec],
             marker="o", color=colors[m], label=m)
    unbounded = [f"{x:g}x" for x, (_, v) in zip(xs, points) if v["tax"]["auc"]["ci95"][0] <= 0]
    if unbounded:
        right.text(0.02, 0.02, f"no share at {', '.join(unbounded)}: the tax's interval holds zero",
                   transform=right.transAxes, fontsize=8, color="grey")
    right.set_xlim(left.get_xlim())
    right.axhline(0, color="grey", lw=0.8)
    right.axhline(1, color="grey", lw=0.8, ls=":")
    right.set(xlabel="freshness gaps (x the configured delays and failure rate)", ylabel="share of the AUC tax recovered",
              title=f"Recovered share of the AUC tax ({len(report['seeds'])} seeds)")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def tax_sweep_step(params: dict, out_dir: Path, cache_dir: Path) -> dict[str, Any]:
    report = run_sweep(params, cache_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(report, out / "tax_sweep.json")
    tmp = out / ".tax_sweep.tmp.png"
    plot_sweep(report, tmp)
    tmp.replace(out / "tax_sweep.png")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The missingness tax and recovered shares as the freshness gaps grow (synthetic source).")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--cache", type=Path, default=Path("data/tax_sweep"), help="finished runs, reused on a re-run")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--only", type=float, nargs="+", metavar="SCALE",
                        help="train only these scales' runs into the cache and write no report (split a sweep across processes)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        if args.only:
            run_sweep(load_params(args.params), args.cache, only=args.only)
            print(f"tax sweep: runs of scales {args.only} are in {args.cache} ({time.perf_counter() - start:.0f}s); "
                  "run without --only to write the report")
            return 0
        report = tax_sweep_step(load_params(args.params), args.out, args.cache)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"tax sweep: {e}", file=sys.stderr)
        return 2
    for scale, v in report["scales"].items():
        if "tax" in v:
            gains = ", ".join(f"{m} {g['mean_diff']:+.4f}" for m, g in v["gain_vs_base"].items())
            taxed = v["tax"]["auc"]["ci95"][0] > 0
            shares = ", ".join(f"{m} {r['auc']['mean']:.2f}" if taxed else f"{m} n/a" for m, r in v["recovered"].items())
            print(f"scale {scale}: AUC tax {v['tax']['auc']['tax']:+.4f}; gain over base {gains}; recovered share {shares}"
                  + ("" if taxed else " (the tax's interval holds zero)"))
    print(f"wrote {args.out / 'tax_sweep.json'}, {args.out / 'tax_sweep.png'} in {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
