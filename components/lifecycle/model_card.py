"""The model card every promoted model carries: what it was trained on, how well it does where
features go missing, what the missing features cost and how much of that it wins back, and what it
is for. Promote stores it in the model's BentoML metadata (`model_card`) and as `model_card.md` beside
the weights; the package step puts the same file at the root of the Bento.

The numbers come from the files the pipeline already wrote: the evaluate step's test metrics (by
missing-count bucket too), the dataset's own missing flags, and the quality report's missingness
tax and recovered share for the candidate's variant (absent when no quality report is given).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from common.jsonable import jsonable
from common.names import SPLITS

CARD_FILE = "model_card.md"
MIN_BUCKET_ROWS = 100  # missing-count buckets with fewer test rows are pooled out of the card's table

INTENDED_USE = (
    "Ranking candidate items for a user at request time from Feast online features (user profile and activity, "
    "item metadata and stats, request context), where some feature views are missing because they are stale, "
    "late or not yet written (sync delays, failed or late batch runs, TTL expiry, cold start). The served sample's "
    "real missing mask is the model's input; the service applies each view's TTL the way training did."
)
LIMITS = [
    "Trained on one data window (below); the monitor compares served missingness and feature drift with it and "
    "asks for retraining when they leave the bands it drew from that window.",
    "It denoises missing *features*: users and items it never saw get out-of-vocabulary ids and lean on the "
    "features that are present; it does not create a signal no feature carries.",
    "Missing-rate patterns far outside training (a view missing in most requests) are where the paired gain over "
    "the base model is least certain: see AUC by missing count and the robustness curve in the quality report.",
    "Quality figures are offline (time split, test set read once); the online effect is measured by the serving "
    "log's outcomes, not promised here.",
]


def data_window(dataset_dir: Path) -> dict[str, Any]:
    """Rows, event-time range and per-view missing rate of every split of a dataset folder."""
    out: dict[str, Any] = {}
    for split in SPLITS:
        path = Path(dataset_dir) / f"{split}.parquet"
        if not path.exists():
            continue
        names = [n for n in pq.read_schema(path).names if n == "event_timestamp" or n.startswith("missing_view__")]
        cols = pd.read_parquet(path, columns=names)
        ts = cols["event_timestamp"] if "event_timestamp" in cols else pd.Series(dtype="datetime64[ns, UTC]")
        out[split] = {
            "rows": int(len(cols)),
            "from": ts.min().isoformat() if len(ts) else None,
            "to": ts.max().isoformat() if len(ts) else None,
            "missing_rate": {c.removeprefix("missing_view__"): round(float(cols[c].mean()), 4)
                             for c in cols.columns if c.startswith("missing_view__")},
        }
    return out


def build_model_card(config: dict[str, Any], evaluation: dict[str, Any], dataset_dir: Path | None,
                     quality: dict[str, Any] | None) -> dict[str, Any]:
    """The card as plain JSON values (BentoML metadata takes no other)."""
    model = config.get("model", {})
    variant = model.get("variant", "asymdiffrec")
    cand = evaluation.get("models", {}).get("candidate", {})
    base = evaluation.get("models", {}).get("base", {})
    buckets = {k: {"rows": v.get("n"), "auc": v.get("auc"), "uauc": v.get("uauc"),
                   "base_auc": base.get("by_missing_count", {}).get(k, {}).get("auc")}
               for k, v in sorted(cand.get("by_missing_count", {}).items(), key=lambda kv: int(kv[0]))
               if (v.get("n") or 0) >= MIN_BUCKET_ROWS}
    card: dict[str, Any] = {
        "model": {"variant": variant, "base": model.get("base"),
                  "knobs": {k: model.get(k) for k in ("latent_layer", "residual", "stop_grad", "lambda_rec", "lambda_aux",
                                                       "group_drop_prob", "embed_dim", "hidden") if k in model},
                  "train": {k: config.get("train", {}).get(k) for k in ("lr", "epochs", "patience", "batch_size", "weight_decay")}},
        "data": data_window(dataset_dir) if dataset_dir is not None else {},
        "evaluation": {"test_rows": evaluation.get("test_rows"),
                       "natural": {m: cand.get("natural", {}).get(m) for m in ("auc", "uauc", "logloss")},
                       "base_natural": {m: base.get("natural", {}).get(m) for m in ("auc", "uauc", "logloss")},
                       "by_missing_count": buckets},
        "intended_use": INTENDED_USE,
        "limits": LIMITS,
    }
    if quality and quality.get("tax"):
        tax = quality["tax"]
        rec = quality.get("models", {}).get(variant, {}).get("recovered", {})
        card["missingness_tax"] = {
            "seeds": quality.get("seeds"),
            "tax": {m: {k: tax[m][k] for k in ("fresh", "natural", "tax", "ci95")} for m in ("auc", "uauc") if m in tax},
            "recovered_share": {m: {"mean": rec[m]["mean"], "ci95": rec[m]["ci95"]} for m in ("auc", "uauc") if m in rec},
        }
    return jsonable(card)


def _num(v: Any, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _interval(ci: Any, digits: int = 2) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "unbounded"
    return f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def render_model_card(card: dict[str, Any], tag: str | None = None) -> str:
    m = card["model"]
    lines = [f"# Model card: {tag or m['variant']}", "",
             f"**Model.** {m['variant']} on a {m['base']} base; " + ", ".join(f"{k}={v}" for k, v in m["knobs"].items()) +
             "; trained with " + ", ".join(f"{k}={v}" for k, v in m["train"].items() if v is not None) + ".", "",
             "## Intended use", "", card["intended_use"], "", "## Data", ""]
    if card.get("data"):
        views = sorted({v for s in card["data"].values() for v in s["missing_rate"]})
        lines += ["| split | rows | from | to | " + " | ".join(f"missing {v}" for v in views) + " |", "|---" * (4 + len(views)) + "|"]
        for split, s in card["data"].items():
            lines.append(f"| {split} | {s['rows']} | {s['from']} | {s['to']} | " + " | ".join(f"{s['missing_rate'].get(v, 0):.3f}" for v in views) + " |")
        lines.append("")
    ev = card["evaluation"]
    lines += ["## Quality on the test split", "",
              f"AUC {_num(ev['natural']['auc'])}, UAUC {_num(ev['natural']['uauc'])}, LogLoss {_num(ev['natural']['logloss'])} "
              f"(the base model trained beside it: AUC {_num(ev['base_natural']['auc'])}, UAUC {_num(ev['base_natural']['uauc'])}); "
              f"{ev['test_rows']} test rows.", ""]
    if ev["by_missing_count"]:
        lines += [f"By number of missing fields (buckets with at least {MIN_BUCKET_ROWS} rows):", "",
                  "| missing fields | rows | AUC | base AUC | UAUC |", "|---|---|---|---|---|"]
        for k, b in ev["by_missing_count"].items():
            lines.append(f"| {k} | {b['rows']} | {_num(b['auc'])} | {_num(b['base_auc'])} | {_num(b['uauc'])} |")
        lines.append("")
    tax = card.get("missingness_tax")
    if tax:
        lines += ["## The missingness tax", "",
                  f"What the missing features cost the base model (fresh store minus natural, mean over seeds {tax['seeds']}, 95% CI), "
                  f"and the share of it this variant recovers, (variant − base) / tax with Fieller's 95% interval:", "",
                  "| metric | fresh | natural | tax | recovered share |", "|---|---|---|---|---|"]
        for metric, t in tax["tax"].items():
            r = tax["recovered_share"].get(metric, {})
            lines.append(f"| {metric.upper()} | {_num(t['fresh'])} | {_num(t['natural'])} | {t['tax']:+.4f} {_interval(t['ci95'], 4)} | "
                         f"{_num(r.get('mean'), 2)} {_interval(r.get('ci95'))} |")
        lines.append("")
    lines += ["## Limits", ""] + [f"- {item}" for item in card["limits"]] + [""]
    return "\n".join(lines)
