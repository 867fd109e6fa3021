"""Quality report: every model variant, several seeds, same data; JSON, Markdown and a plot.

    python -m models.quality --data data/dataset --out reports/ --seeds 0 1 2 3 4

Writes `quality.json` ({"seeds", "models": {name: {"natural", "by_missing_count", "robustness"}}},
each metric as {"mean", "std"}), `quality.md` (tables and a paired comparison of AsymDiffRec with
each baseline across seeds) and `robustness.png`.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from models.asymdiffrec import build_model
from models.config import VARIANTS, ModelConfig, ParamsSection, TrainConfig
from models.data import load_dataset
from common.jsonable import jsonable
from models.metrics import HIGHER_IS_BETTER, METRICS, ROBUSTNESS_RATES
from models.predict import evaluate
from models.schema import FeatureSchema
from models.train import train

REFERENCE = "asymdiffrec"


@dataclass
class QualityConfig(ParamsSection):
    """The params.yaml `quality:` section: which variants, over which seeds."""

    SECTION = "quality"
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    variants: tuple[str, ...] = tuple(VARIANTS)
    threads: int = 0  # torch CPU threads (0: torch's default)

    def validate(self) -> None:
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown or not self.variants or not self.seeds:
            raise ValueError(f"quality.variants and quality.seeds must be non-empty, variants among {sorted(VARIANTS)}; got {unknown or 'empty'}")


def run_quality(
    data_dir: str | Path,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    variants: Sequence[str] = tuple(VARIANTS),
    model_config: dict[str, Any] | None = None,
    train_config: dict[str, Any] | None = None,
    schema_options: dict[str, Any] | None = None,
    rates: Sequence[float] = ROBUSTNESS_RATES,
) -> dict[str, Any]:
    """Train and evaluate each variant with each seed; return the aggregated report."""
    data = load_dataset(data_dir)
    schema = FeatureSchema.fit(data.train, data.features, label=data.label, user_key=data.user_key, **(schema_options or {}))
    train_b, valid_b, test_b = (schema.encode(data.split(s), with_label=True) for s in ("train", "validation", "test"))
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for seed in seeds:
        for variant in variants:
            cfg = ModelConfig.from_dict({**(model_config or {}), "variant": variant})
            tcfg = TrainConfig.from_dict({**(train_config or {}), "seed": seed})
            model = build_model(schema, cfg, seed=seed)
            result = train(model, train_b, valid_b, tcfg)
            ev = evaluate(model, test_b, rates=tuple(rates), seed=seed)
            ev["train"] = {"best_epoch": result.best_epoch, "val_auc": result.best_val_auc, "seconds": result.seconds}
            runs[variant].append(ev)
            print(f"seed={seed} {variant:<20} test auc={ev['natural']['auc']:.4f} uauc={ev['natural']['uauc']:.4f} "
                  f"logloss={ev['natural']['logloss']:.4f} ({result.seconds:.1f}s, best epoch {result.best_epoch})", flush=True)
    report = {
        "seeds": list(seeds),
        "models": {v: aggregate(rs) for v, rs in runs.items()},
        "comparisons": compare(runs, REFERENCE) if REFERENCE in runs else {},
        "config": {
            "model": {**ModelConfig.from_dict(model_config or {}).to_dict(), "variant": None},
            "train": TrainConfig.from_dict(train_config or {}).to_dict(),
            "data": str(data_dir),
            "sizes": {s: len(data.split(s)) for s in ("train", "validation", "test")},
        },
        "runs": {v: [{"natural": r["natural"], "train": r["train"]} for r in rs] for v, rs in runs.items()},
    }
    return jsonable(report)


def _stats(values: list[float]) -> dict[str, float]:
    vals = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if not len(vals):
        return {"mean": float("nan"), "std": float("nan")}
    return {"mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0}


def _agg_metrics(items: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {m: _stats([it[m] for it in items]) for m in METRICS}
    out["n"] = int(np.mean([it["n"] for it in items]))
    return out


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over seeds of every metric in every section."""
    out: dict[str, Any] = {"natural": _agg_metrics([r["natural"] for r in runs])}
    for section in ("by_missing_count", "robustness"):
        keys = sorted({k for r in runs for k in r.get(section, {})}, key=float)
        out[section] = {k: _agg_metrics([r[section][k] for r in runs if k in r[section]]) for k in keys}
    return out


def paired(a: list[float], b: list[float], higher_is_better: bool = True) -> dict[str, float]:
    """Paired comparison a - b across seeds: mean, std, t statistic, wins."""
    d = np.array(a, dtype=np.float64) - np.array(b, dtype=np.float64)
    n = len(d)
    std = float(d.std(ddof=1)) if n > 1 else 0.0
    t = float(d.mean() / (std / math.sqrt(n))) if n > 1 and std > 0 else float("nan")
    wins = int((d > 0).sum() if higher_is_better else (d < 0).sum())
    return {"mean_diff": float(d.mean()), "std": std, "t": t, "wins": wins, "seeds": n}


def compare(runs: dict[str, list[dict[str, Any]]], reference: str) -> dict[str, Any]:
    """The reference variant against every other one, on natural metrics and the robustness curve's AUC."""
    out: dict[str, Any] = {}
    ref = runs[reference]
    for name, other in runs.items():
        if name == reference:
            continue
        res = {m: paired([r["natural"][m] for r in ref], [o["natural"][m] for o in other], HIGHER_IS_BETTER[m]) for m in METRICS}
        for rate in ref[0].get("robustness", {}):
            res[f"auc@{rate}"] = paired([r["robustness"][rate]["auc"] for r in ref], [o["robustness"][rate]["auc"] for o in other])
        out[name] = res
    return out


def _fmt(stat: dict[str, Any] | None, digits: int = 4) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def render_markdown(report: dict[str, Any]) -> str:
    models = report["models"]
    lines = [
        "# Quality report",
        "",
        f"Seeds: {report['seeds']}. Test split sizes: {report['config'].get('sizes')}. Mean ± std over seeds.",
        "",
        "## Natural missingness (test split)",
        "",
        "| model | AUC | UAUC | LogLoss |",
        "|---|---|---|---|",
    ]
    for name, m in models.items():
        nat = m["natural"]
        lines.append(f"| {name} | {_fmt(nat['auc'])} | {_fmt(nat['uauc'])} | {_fmt(nat['logloss'])} |")
    rates = list(next(iter(models.values())).get("robustness", {}))
    if rates:
        lines += ["", "## Robustness: AUC under extra random missingness", "",
                  "| model | " + " | ".join(rates) + " |", "|---" * (len(rates) + 1) + "|"]
        for name, m in models.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(m["robustness"][r]["auc"], 3) for r in rates) + " |")
    buckets = sorted({k for m in models.values() for k in m["by_missing_count"]}, key=int)
    buckets = [k for k in buckets if next(iter(models.values()))["by_missing_count"].get(k, {}).get("n", 0) >= 50]
    if buckets:
        lines += ["", "## AUC by number of missing fields (buckets with at least 50 test samples)", "",
                  "| model | " + " | ".join(f"k={k}" for k in buckets) + " |", "|---" * (len(buckets) + 1) + "|"]
        first = next(iter(models.values()))["by_missing_count"]
        lines.append("| n | " + " | ".join(str(first[k]["n"]) for k in buckets) + " |")
        for name, m in models.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(m["by_missing_count"].get(k, {}).get("auc"), 3) for k in buckets) + " |")
    comps = report.get("comparisons", {})
    if comps and rates:
        lines += ["", f"## Gap in AUC as features go missing: {REFERENCE} minus baseline, by extra missing rate", "",
                  "Mean paired difference across seeds (wins/seeds in brackets); rate 0.0 is the natural test split.", "",
                  "| baseline | " + " | ".join(rates) + " |", "|---" * (len(rates) + 1) + "|"]
        for name, res in comps.items():
            cells = [f"{res[f'auc@{k}']['mean_diff']:+.4f} ({res[f'auc@{k}']['wins']}/{res[f'auc@{k}']['seeds']})" for k in rates]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if comps:
        lines += ["", f"## Paired comparison: {REFERENCE} minus baseline, across seeds", "",
                  "Positive mean_diff favours AsymDiffRec (for LogLoss, negative does); wins count seeds where it is better.", "",
                  "| baseline | metric | mean diff | std | t | wins/seeds |", "|---|---|---|---|---|---|"]
        for name, res in comps.items():
            for metric, r in res.items():
                t = "n/a" if r["t"] is None else f"{r['t']:.2f}"
                lines.append(f"| {name} | {metric} | {r['mean_diff']:+.4f} | {r['std']:.4f} | {t} | {r['wins']}/{r['seeds']} |")
    runs = report.get("runs", {})
    if runs:
        lines += ["", "## Training (mean over seeds)", "", "| model | best epoch | validation AUC | seconds |", "|---|---|---|---|"]
        for name, rs in runs.items():
            tr = [r["train"] for r in rs]
            val = [t["val_auc"] for t in tr if t.get("val_auc") is not None]
            lines.append(f"| {name} | {np.mean([t['best_epoch'] for t in tr]):.1f} | "
                         f"{np.mean(val) if val else float('nan'):.4f} | {np.mean([t['seconds'] for t in tr]):.1f} |")
    cfg = report.get("config", {})
    if cfg.get("model") or cfg.get("train"):
        knobs = {**{k: v for k, v in (cfg.get("model") or {}).items() if v is not None},
                 **{k: v for k, v in (cfg.get("train") or {}).items() if k not in ("extra", "progress", "seed")}}
        lines += ["", "## Settings shared by every model", "", ", ".join(f"`{k}={v}`" for k, v in knobs.items())]
    lines.append("")
    return "\n".join(lines)


def plot_robustness(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, m in report["models"].items():
        rates = [float(r) for r in m["robustness"]]
        means = [m["robustness"][r]["auc"]["mean"] for r in m["robustness"]]
        stds = [m["robustness"][r]["auc"]["std"] or 0.0 for r in m["robustness"]]
        ax.errorbar(rates, means, yerr=stds, label=name, marker="o", ms=3, capsize=2)
    ax.set_xlabel("extra missing rate")
    ax.set_ylabel("test AUC")
    ax.set_title(f"Robustness to missing features ({len(report['seeds'])} seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "quality.json", "md": out / "quality.md", "plot": out / "robustness.png"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["md"].write_text(render_markdown(report))
    plot_robustness(report, paths["plot"])
    return paths


def _read_params(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    import yaml

    if not Path(path).exists():
        raise FileNotFoundError(f"--params {path} not found")
    return yaml.safe_load(Path(path).read_text()) or {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder: train/validation/test.parquet and schema.json")
    parser.add_argument("--out", default="reports", help="output folder")
    parser.add_argument(
        "--params", help="a YAML file whose model:, train: and quality: sections give the defaults (the project's params.yaml)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="default: quality.seeds, else 0 1 2 3 4")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="default: quality.variants, else all")
    parser.add_argument("--model-config", default="{}", help="JSON dict of ModelConfig knobs shared by all variants")
    parser.add_argument("--train-config", default="{}", help="JSON dict of TrainConfig knobs")
    parser.add_argument("--epochs", type=int, help="shortcut for train-config epochs")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: quality.threads, else torch's default)")
    args = parser.parse_args(argv)
    params = _read_params(args.params)
    quality = QualityConfig.from_dict(params.get("quality"))
    seeds = args.seeds or list(quality.seeds)
    variants = args.variants or list(quality.variants)
    threads = args.threads if args.threads is not None else quality.threads

    import torch

    if threads:
        torch.set_num_threads(threads)
    model_config = {k: v for k, v in (params.get("model") or {}).items() if k != "variant"}
    model_config.update(json.loads(args.model_config))
    train_config = {"progress": False, **(params.get("train") or {}), **json.loads(args.train_config)}
    train_config.pop("seed", None)  # the quality report sets the seed of each run
    if args.epochs:
        train_config["epochs"] = args.epochs
    start = time.perf_counter()
    report = run_quality(args.data, seeds, variants, model_config, train_config)
    paths = write_report(report, args.out)
    print(f"wrote {', '.join(str(p) for p in paths.values())} in {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
