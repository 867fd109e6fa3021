"""Quality report: every model variant, several seeds, same data; the missingness tax and the share
of it each method recovers; JSON, Markdown and a plot.

    python -m models.quality --data data/validated --fresh data/fresh --out reports/ --params params.yaml

The missingness tax is what the missing features cost: the base model trained and tested on the
dataset a perfectly fresh feature store would have served (`--fresh`: the same events, every feature
as of the event time) minus the base model on the natural dataset. A method recovers
(AUC(method) - AUC(base)) / tax of it; both are measured per seed and paired by seed, with 95%
intervals (Student-t for differences, Fieller for the recovered share). The tax is also broken down by
which view is missing and by how many fields are, on the natural test split's own masks, so a reader
sees where it is paid and where each method wins it back.

Writes `quality.json` ({"seeds", "tax", "models": {name: {"natural", "validation", "recovered", ...}},
"comparisons": {baseline: {"paired", "robustness"}}, "bases", "runs"}), `quality.md` and `robustness.png`.
The test split is read here only: choices are made on validation (models/README.md, "Selection").
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from models.asymdiffrec import build_model
from models.config import VARIANTS, ModelConfig, ParamsSection, TrainConfig
from models.data import Dataset, load_dataset
from common.files import atomic_write_json, atomic_write_text
from common.jsonable import jsonable
from models.metrics import HIGHER_IS_BETTER, METRICS, ROBUSTNESS_RATES, auc
from models.predict import evaluate, predict_batch
from models.schema import FeatureSchema
from models.stats import paired_difference, ratio_of_means
from models.train import train

REFERENCE = "asymdiffrec"
TAX_METRICS = ("auc", "uauc")
MIN_SLICE_ROWS = 200  # a view or missing-count slice of the test split smaller than this is not reported


@dataclass
class QualityConfig(ParamsSection):
    """The params.yaml `quality:` section: which variants, over which seeds, on which bases."""

    SECTION = "quality"
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    variants: tuple[str, ...] = tuple(VARIANTS)
    second_base: str | None = None  # another base model the headline comparison is repeated on (model-agnostic)
    second_base_variants: tuple[str, ...] = ("base", "dropout", "asymdiffrec")
    threads: int = 0  # torch CPU threads (0: torch's default)

    def validate(self) -> None:
        unknown = sorted((set(self.variants) | set(self.second_base_variants)) - set(VARIANTS))
        if unknown or not self.variants or not self.seeds:
            raise ValueError(f"quality.variants and quality.seeds must be non-empty, variants among {sorted(VARIANTS)}; got {unknown or 'empty'}")
        if "base" not in self.variants:
            raise ValueError("quality.variants must include 'base': every method is measured against it")
        if len(self.seeds) < 2:
            raise ValueError("quality.seeds needs at least 2 seeds for a paired interval")


@dataclass
class EncodedDataset:
    """A dataset fitted and encoded once, shared by every variant and seed."""

    data: Dataset
    schema: FeatureSchema
    batches: dict[str, Any]


def encode_dataset(data_dir: str | Path, schema_options: dict[str, Any] | None) -> EncodedDataset:
    data = load_dataset(data_dir)
    schema = FeatureSchema.fit(data.train, data.features, label=data.label, user_key=data.user_key, **(schema_options or {}))
    return EncodedDataset(data, schema, {s: schema.encode(data.split(s), with_label=True) for s in ("train", "validation", "test")})


def train_runs(enc: EncodedDataset, seeds: Sequence[int], variants: Sequence[str], model_config: dict[str, Any] | None,
               train_config: dict[str, Any] | None, rates: Sequence[float], label: str = "") -> dict[str, list[dict[str, Any]]]:
    """Train and evaluate each variant with each seed; every run keeps its test predictions."""
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for seed in seeds:
        for variant in variants:
            cfg = ModelConfig.from_dict({**(model_config or {}), "variant": variant})
            tcfg = TrainConfig.from_dict({**(train_config or {}), "seed": seed})
            model = build_model(enc.schema, cfg, seed=seed)
            result = train(model, enc.batches["train"], enc.batches["validation"], tcfg)
            ev = evaluate(model, enc.batches["test"], rates=tuple(rates), seed=seed)
            ev["train"] = {"best_epoch": result.best_epoch, "val_auc": result.best_val_auc, "seconds": result.seconds}
            ev["pred"] = predict_batch(model, enc.batches["test"])
            runs[variant].append(ev)
            print(f"seed={seed} {label}{variant:<20} test auc={ev['natural']['auc']:.4f} uauc={ev['natural']['uauc']:.4f} "
                  f"logloss={ev['natural']['logloss']:.4f} ({result.seconds:.1f}s, best epoch {result.best_epoch})", flush=True)
    return runs


def run_quality(
    data_dir: str | Path,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    variants: Sequence[str] = tuple(VARIANTS),
    model_config: dict[str, Any] | None = None,
    train_config: dict[str, Any] | None = None,
    schema_options: dict[str, Any] | None = None,
    rates: Sequence[float] = ROBUSTNESS_RATES,
    fresh_dir: str | Path | None = None,
    second_base: str | None = None,
    second_base_variants: Sequence[str] = (),
) -> dict[str, Any]:
    """Train and evaluate each variant with each seed (and the base model on the fresh dataset);
    return the aggregated report."""
    enc = encode_dataset(data_dir, schema_options)
    fresh = encode_dataset(fresh_dir, schema_options) if fresh_dir else None
    if fresh is not None:
        check_same_events(enc.data, fresh.data)
    bases = [(model_config or {}).get("base", ModelConfig().base)] + ([second_base] if second_base else [])
    sections: dict[str, dict[str, Any]] = {}
    for i, base_name in enumerate(bases):
        mcfg = {**(model_config or {}), "base": base_name}
        names = list(variants) if i == 0 else [v for v in second_base_variants]
        runs = train_runs(enc, seeds, names, mcfg, train_config, rates, label=f"{base_name}/" if i else "")
        fresh_runs = (train_runs(fresh, seeds, ["base"], mcfg, train_config, (), label=f"fresh {base_name}/")["base"]
                      if fresh is not None and "base" in runs else None)
        sections[base_name] = _section(runs, fresh_runs, enc.data)
    main = sections.pop(bases[0])
    report = {
        "seeds": list(seeds),
        **main,
        "bases": {name: {k: v for k, v in sec.items() if k != "runs"} for name, sec in sections.items()},
        "config": {
            "model": {**ModelConfig.from_dict(model_config or {}).to_dict(), "variant": None},
            "train": TrainConfig.from_dict(train_config or {}).to_dict(),
            "data": str(data_dir),
            "fresh": str(fresh_dir) if fresh_dir else None,
            "sizes": {s: len(enc.data.split(s)) for s in ("train", "validation", "test")},
        },
    }
    return jsonable(report)


def check_same_events(natural: Dataset, fresh: Dataset) -> None:
    """The tax compares the same test events; the fresh dataset must hold them in the same order."""
    a, b = natural.test, fresh.test
    key = "event_id" if "event_id" in a.columns and "event_id" in b.columns else None
    same = len(a) == len(b) and (key is None or np.array_equal(a[key].to_numpy(), b[key].to_numpy()))
    if not same or not np.array_equal(a[natural.label].to_numpy(), b[fresh.label].to_numpy()):
        raise ValueError("the fresh dataset's test split is not the natural one's events in the same order; "
                         "build both from the same raw data and dataset params (components.data.fresh)")


def _section(runs: dict[str, list[dict[str, Any]]], fresh_runs: list[dict[str, Any]] | None, data: Dataset) -> dict[str, Any]:
    """Aggregates, the tax, the recovered shares and the paired comparisons of one base model's runs."""
    slices = missing_slices(data)
    models = {v: aggregate(rs) for v, rs in runs.items()}
    tax = None
    if fresh_runs is not None:
        tax = tax_report(runs["base"], fresh_runs, slices)
        for name, rs in runs.items():
            if name != "base":
                models[name]["recovered"] = recovered_share(rs, runs["base"], fresh_runs, slices)
    return {
        "tax": tax,
        "models": models,
        "comparisons": compare(runs, REFERENCE) if REFERENCE in runs else {},
        "runs": {v: [{"natural": r["natural"], "train": r["train"]} for r in rs] for v, rs in runs.items()},
    }


def missing_slices(data: Dataset) -> dict[str, dict[str, np.ndarray]]:
    """Rows of the natural test split by which view is missing and by how many fields are missing."""
    test = data.test
    y, users = test[data.label].to_numpy(), test[data.user_key].to_numpy()
    by_view = {c.removeprefix("missing_view__"): test[c].to_numpy().astype(bool) for c in test.columns if c.startswith("missing_view__")}
    counts = test[[c for c in test.columns if c.startswith("missing__")]].to_numpy().sum(1) if any(
        c.startswith("missing__") for c in test.columns) else np.zeros(len(test), dtype=int)
    by_count = {str(int(k)): counts == k for k in np.unique(counts)}
    keep = lambda d: {k: m for k, m in d.items() if m.sum() >= MIN_SLICE_ROWS and 0 < y[m].sum() < m.sum()}  # noqa: E731
    return {"y": y, "users": users, "by_view": keep(by_view), "by_missing_count": keep(by_count)}


def _slice_auc(run: dict[str, Any], rows: np.ndarray, y: np.ndarray) -> float:
    return auc(y[rows], run["pred"][rows])


def tax_report(base: list[dict[str, Any]], fresh: list[dict[str, Any]], slices: dict[str, Any]) -> dict[str, Any]:
    """AUC(fresh) - AUC(natural) of the base model, overall (AUC, UAUC) and on each slice (AUC)."""
    out: dict[str, Any] = {}
    for m in TAX_METRICS:
        f, n = [r["natural"][m] for r in fresh], [r["natural"][m] for r in base]
        d = paired_difference(f, n)
        out[m] = {"fresh": float(np.mean(f)), "natural": float(np.mean(n)), "tax": d["mean_diff"], "ci95": d["ci95"], "wins": d["wins"]}
    y = slices["y"]
    for kind in ("by_view", "by_missing_count"):
        out[kind] = {}
        for key, rows in slices[kind].items():
            f = [_slice_auc(r, rows, y) for r in fresh]
            n = [_slice_auc(r, rows, y) for r in base]
            out[kind][key] = {"rows": int(rows.sum()), "fresh": float(np.mean(f)), "natural": float(np.mean(n)),
                              "tax": float(np.mean(f) - np.mean(n))}
    return out


def recovered_share(method: list[dict[str, Any]], base: list[dict[str, Any]], fresh: list[dict[str, Any]],
                    slices: dict[str, Any]) -> dict[str, Any]:
    """(metric(method) - metric(base)) / (metric(fresh) - metric(base)), paired by seed, with Fieller's 95% interval."""
    def share(gain: list[float], tax: list[float]) -> dict[str, Any]:
        r = ratio_of_means(gain, tax)
        return {"mean": r["mean"], "ci95": r["ci95"], "gain": float(np.mean(gain)), "tax": float(np.mean(tax))}

    out: dict[str, Any] = {}
    for m in TAX_METRICS:
        gain = [a["natural"][m] - b["natural"][m] for a, b in zip(method, base)]
        tax = [f["natural"][m] - b["natural"][m] for f, b in zip(fresh, base)]
        out[m] = share(gain, tax)
    y = slices["y"]
    for kind in ("by_view", "by_missing_count"):
        out[kind] = {}
        for key, rows in slices[kind].items():
            gain = [_slice_auc(a, rows, y) - _slice_auc(b, rows, y) for a, b in zip(method, base)]
            tax = [_slice_auc(f, rows, y) - _slice_auc(b, rows, y) for f, b in zip(fresh, base)]
            out[kind][key] = share(gain, tax)
    return out


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
    if all("train" in r for r in runs):
        out["validation"] = {"auc": _stats([r["train"]["val_auc"] for r in runs]),
                             "best_epoch": float(np.mean([r["train"]["best_epoch"] for r in runs]))}
    for section in ("by_missing_count", "robustness"):
        keys = sorted({k for r in runs for k in r.get(section, {})}, key=float)
        out[section] = {k: _agg_metrics([r[section][k] for r in runs if k in r[section]]) for k in keys}
    return out


def paired(a: list[float], b: list[float], higher_is_better: bool = True) -> dict[str, Any]:
    """Paired comparison a - b across seeds: mean, std, t, 95% interval, wins, verdict (models.stats)."""
    return paired_difference(a, b, higher_is_better)


def compare(runs: dict[str, list[dict[str, Any]]], reference: str) -> dict[str, Any]:
    """The reference variant against every other one: natural test metrics, the best validation AUC
    (what selection sees), and the robustness curve's AUC."""
    out: dict[str, Any] = {}
    ref = runs[reference]
    for name, other in runs.items():
        if name == reference:
            continue
        res = {m: paired([r["natural"][m] for r in ref], [o["natural"][m] for o in other], HIGHER_IS_BETTER[m]) for m in METRICS}
        res["val_auc"] = paired([r["train"]["val_auc"] for r in ref], [o["train"]["val_auc"] for o in other])
        robust = {rate: paired([r["robustness"][rate]["auc"] for r in ref], [o["robustness"][rate]["auc"] for o in other])
                  for rate in ref[0].get("robustness", {})}
        out[name] = {"paired": res, "robustness": robust}
    return out


def _fmt(stat: dict[str, Any] | None, digits: int = 4) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _ci(ci: Sequence[float | None] | None, digits: int = 4, signed: bool = True) -> str:
    if not ci or ci[0] is None or ci[1] is None or any(math.isnan(c) for c in ci):
        return "unbounded"
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    return f"[{f.format(ci[0])}, {f.format(ci[1])}]"


def _share(r: dict[str, Any] | None) -> str:
    if not r or r.get("mean") is None or math.isnan(r["mean"]):
        return "n/a"
    return f"{r['mean']:.2f} {_ci(r['ci95'], 2, signed=False)}"


def _slice_cell(r: dict[str, Any] | None, tax: float) -> str:
    """A share of a tax that is not there means nothing (its sign even flips): show the gain instead."""
    if r is not None and tax <= 0:
        return f"({r['gain']:+.4f})"
    return _share(r)


def _tax_lines(tax: dict[str, Any], models: dict[str, Any], title: str) -> list[str]:
    lines = [f"## {title}", "",
             "The base model trained and tested on what a perfectly fresh feature store would have served, minus the "
             "base model on the natural data; each method's recovered share is (method − base) / tax, paired by seed, "
             "with Fieller's 95% interval (\"unbounded\" when the tax itself is not distinguishable from zero).", "",
             "| | fresh | natural | tax [95% CI] | seeds fresh > natural |", "|---|---|---|---|---|"]
    for m in TAX_METRICS:
        t = tax[m]
        lines.append(f"| {m.upper()} | {t['fresh']:.4f} | {t['natural']:.4f} | {t['tax']:+.4f} {_ci(t['ci95'])} | {t['wins']} |")
    rec = {n: m["recovered"] for n, m in models.items() if "recovered" in m}
    if rec:
        lines += ["", "| method | gain over base, AUC | recovered share of the AUC tax [95% CI] | gain over base, UAUC | recovered share of the UAUC tax [95% CI] |",
                  "|---|---|---|---|---|"]
        for n, r in rec.items():
            lines.append(f"| {n} | {r['auc']['gain']:+.4f} | {_share(r['auc'])} | {r['uauc']['gain']:+.4f} | {_share(r['uauc'])} |")
    for kind, label in (("by_view", "view missing (natural test mask)"), ("by_missing_count", "missing fields (natural test mask)")):
        keys = list(tax.get(kind, {}))
        if not keys:
            continue
        lines += ["", f"Where the AUC tax is paid and won back, by {label}: rows, tax, and each method's recovered share. "
                  "A slice the fresh store does not help (tax ≤ 0) has no tax to recover: its cells give each method's AUC "
                  "gain over the base model instead, in parentheses.", "",
                  "| slice | rows | base AUC | fresh AUC | tax | " + " | ".join(rec) + " |", "|---" * (5 + len(rec)) + "|"]
        for k in keys:
            t = tax[kind][k]
            cells = [_slice_cell(r[kind].get(k), t["tax"]) for r in rec.values()]
            lines.append(f"| {k} | {t['rows']} | {t['natural']:.4f} | {t['fresh']:.4f} | {t['tax']:+.4f} | " + " | ".join(cells) + " |")
    return lines + [""]


def _paired_lines(comps: dict[str, Any], title: str) -> list[str]:
    lines = [f"## {title}", "",
             f"{REFERENCE} minus each baseline, paired by seed: mean difference, Student-t 95% interval, seeds where "
             f"{REFERENCE} is better; \"no difference\" where the interval spans zero. LogLoss: lower is better. "
             "`val_auc` is the best validation AUC, the only number selection looks at.", "",
             "| baseline | metric | mean diff | 95% CI | wins/seeds | verdict |", "|---|---|---|---|---|---|"]
    for name, res in comps.items():
        for metric, r in res["paired"].items():
            lines.append(f"| {name} | {metric} | {r['mean_diff']:+.4f} | {_ci(r['ci95'])} | {r['wins']}/{r['seeds']} | {r['verdict']} |")
    return lines + [""]


def render_markdown(report: dict[str, Any]) -> str:
    models = report["models"]
    lines = [
        "# Quality report",
        "",
        f"Seeds: {report['seeds']}. Split sizes: {report['config'].get('sizes')}. Mean ± std over seeds; "
        "the test split is read once per configuration, every choice was made on validation (models/README.md).",
        "",
        "## Natural missingness (test split)",
        "",
        "| model | AUC | UAUC | LogLoss | validation AUC | best epoch |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in models.items():
        nat, val = m["natural"], m.get("validation", {})
        epoch = f"{val['best_epoch']:.1f}" if val else "n/a"
        lines.append(f"| {name} | {_fmt(nat['auc'])} | {_fmt(nat['uauc'])} | {_fmt(nat['logloss'])} | {_fmt(val.get('auc'))} | {epoch} |")
    lines.append("")
    if report.get("tax"):
        lines += _tax_lines(report["tax"], models, "The missingness tax and the share each method recovers")
    comps = report.get("comparisons", {})
    if comps:
        lines += _paired_lines(comps, f"Paired comparison: {REFERENCE} minus baseline")
    for base_name, sec in report.get("bases", {}).items():
        lines += [f"## Second base model: {base_name}", "", "| model | AUC | UAUC | LogLoss | validation AUC |", "|---|---|---|---|---|"]
        for name, m in sec["models"].items():
            lines.append(f"| {name} | {_fmt(m['natural']['auc'])} | {_fmt(m['natural']['uauc'])} | {_fmt(m['natural']['logloss'])} | "
                         f"{_fmt(m.get('validation', {}).get('auc'))} |")
        lines.append("")
        if sec.get("tax"):
            lines += _tax_lines(sec["tax"], sec["models"], f"{base_name}: the missingness tax and the share each method recovers")
        if sec.get("comparisons"):
            lines += _paired_lines(sec["comparisons"], f"{base_name}: paired comparison")
    rates = list(next(iter(models.values())).get("robustness", {}))
    if rates:
        lines += ["## Robustness: AUC under extra random missingness", "",
                  "| model | " + " | ".join(rates) + " |", "|---" * (len(rates) + 1) + "|"]
        for name, m in models.items():
            if m.get("robustness"):
                lines.append(f"| {name} | " + " | ".join(_fmt(m["robustness"][r]["auc"], 3) for r in rates) + " |")
        lines.append("")
    if comps and rates:
        lines += [f"## Gap in AUC as features go missing: {REFERENCE} minus baseline, by extra missing rate", "",
                  "Mean paired difference across seeds (wins/seeds in brackets); rate 0.0 is the natural test split.", "",
                  "| baseline | " + " | ".join(rates) + " |", "|---" * (len(rates) + 1) + "|"]
        for name, res in comps.items():
            cells = [f"{res['robustness'][k]['mean_diff']:+.4f} ({res['robustness'][k]['wins']}/{res['robustness'][k]['seeds']})" for k in rates]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    buckets = sorted({k for m in models.values() for k in m["by_missing_count"]}, key=int)
    buckets = [k for k in buckets if next(iter(models.values()))["by_missing_count"].get(k, {}).get("n", 0) >= 50]
    if buckets:
        lines += ["## AUC by number of missing fields (buckets with at least 50 test samples)", "",
                  "| model | " + " | ".join(f"k={k}" for k in buckets) + " |", "|---" * (len(buckets) + 1) + "|"]
        first = next(iter(models.values()))["by_missing_count"]
        lines.append("| n | " + " | ".join(str(first[k]["n"]) for k in buckets) + " |")
        for name, m in models.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(m["by_missing_count"].get(k, {}).get("auc"), 3) for k in buckets) + " |")
        lines.append("")
    runs = report.get("runs", {})
    if runs:
        lines += ["## Training (mean over seeds)", "", "| model | best epoch | validation AUC | seconds |", "|---|---|---|---|"]
        for name, rs in runs.items():
            tr = [r["train"] for r in rs]
            val = [t["val_auc"] for t in tr if t.get("val_auc") is not None]
            lines.append(f"| {name} | {np.mean([t['best_epoch'] for t in tr]):.1f} | "
                         f"{np.mean(val) if val else float('nan'):.4f} | {np.mean([t['seconds'] for t in tr]):.1f} |")
        lines.append("")
    cfg = report.get("config", {})
    if cfg.get("model") or cfg.get("train"):
        knobs = {**{k: v for k, v in (cfg.get("model") or {}).items() if v is not None},
                 **{k: v for k, v in (cfg.get("train") or {}).items() if k not in ("extra", "progress", "seed")}}
        lines += ["## Settings shared by every model", "", ", ".join(f"`{k}={v}`" for k, v in knobs.items()), ""]
    return "\n".join(lines)


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers `dvc metrics show` prints: the tax, recovered AUC shares, the gap over dropout."""
    out: dict[str, Any] = {}
    if report.get("tax"):
        out["tax_auc"] = round(report["tax"]["auc"]["tax"], 5)
        for name, m in report["models"].items():
            if "recovered" in m and name in ("dropout", "multimask", REFERENCE):
                out[f"recovered_auc_{name}"] = round(m["recovered"]["auc"]["mean"], 3)
    for name in ("dropout", "base"):
        if name in report.get("comparisons", {}):
            out[f"auc_gain_over_{name}"] = round(report["comparisons"][name]["paired"]["auc"]["mean_diff"], 5)
    return out


def plot_robustness(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, m in report["models"].items():
        if not m.get("robustness"):
            continue
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


def write_report(report: dict[str, Any], out_dir: str | Path, metrics_path: str | Path | None = None) -> dict[str, Path]:
    """quality.json, quality.md and robustness.png in `out_dir` (and the headline summary), each written whole."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "quality.json", "md": out / "quality.md", "plot": out / "robustness.png"}
    atomic_write_text(json.dumps(report, indent=2) + "\n", paths["json"])
    atomic_write_text(render_markdown(report), paths["md"])
    tmp = paths["plot"].with_name(".robustness.tmp.png")
    plot_robustness(report, tmp)
    tmp.replace(paths["plot"])
    if metrics_path:
        paths["metrics"] = Path(metrics_path)
        paths["metrics"].parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(summary(report), paths["metrics"])
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
    parser.add_argument("--fresh", help="the fresh dataset (components.data.fresh): measure the missingness tax and recovered shares")
    parser.add_argument("--metrics", help="write the headline numbers here (for `dvc metrics show`)")
    parser.add_argument(
        "--params", help="a YAML file whose model:, train: and quality: sections give the defaults (the project's params.yaml)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="default: quality.seeds, else 0 1 2 3 4")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="default: quality.variants, else all")
    parser.add_argument("--model-config", default="{}", help="JSON dict of ModelConfig knobs shared by all variants")
    parser.add_argument("--train-config", default="{}", help="JSON dict of TrainConfig knobs")
    parser.add_argument("--epochs", type=int, help="shortcut for train-config epochs")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: quality.threads, else torch's default)")
    parser.add_argument("--second-base", help="repeat the headline comparison on this base model (default: quality.second_base; 'none': skip)")
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
    second_base = quality.second_base if args.second_base is None else (None if args.second_base == "none" else args.second_base)
    if args.fresh and (len(seeds) < 2 or "base" not in variants):
        parser.error("--fresh needs at least 2 seeds and the 'base' variant: the tax and its shares are paired by seed against base")
    start = time.perf_counter()
    try:
        report = run_quality(args.data, seeds, variants, model_config, train_config, fresh_dir=args.fresh,
                             second_base=second_base, second_base_variants=quality.second_base_variants)
    except (FileNotFoundError, ValueError) as e:
        print(f"quality: {e}", file=sys.stderr)
        return 2
    paths = write_report(report, args.out, args.metrics)
    print(f"wrote {', '.join(str(p) for p in paths.values())} in {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
