"""Evaluate step: the candidate, its base model and the current champion on the same test split.

    python -m components.lifecycle.evaluate --data data/validated --models data/models --metrics metrics/evaluate.json \\
        --plots metrics/plots --params params.yaml

The champion is the production model of the BentoML model store (`serving.model_name`), if any;
`--champion DIR` names a checkpoint folder instead and `--no-champion` leaves it out. Every model is
scored on identical inputs: the natural missing mask, and for each extra-missingness rate the same
random masks (seeded by `evaluate.seed`), so the curves compare models, not draws.
"""
from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from components.common.files import atomic_write_json, atomic_write_text
from components.common.params import load_params, section

CANDIDATE, BASE, CHAMPION = "candidate", "base", "champion"
METRICS = ("auc", "uauc", "logloss")
ROC_POINTS = 200


def roc_points(y: np.ndarray, p: np.ndarray, max_points: int = ROC_POINTS) -> dict[str, list[float]]:
    """ROC curve (fpr, tpr, thresholds) at distinct scores, downsampled to at most `max_points` (ends kept)."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(-p, kind="stable")
    p, y = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(p)), len(p) - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    thresholds = np.r_[1.0, p[last]]
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr, thresholds = fpr[keep], tpr[keep], thresholds[keep]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thresholds.tolist()}


def _clean(obj: Any) -> Any:
    """NaN/inf -> None, so the JSON is standard and `dvc metrics show` reads it."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(obj) or math.isinf(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def score_checkpoint(checkpoint_dir: Path, test: pd.DataFrame, rates: Sequence[float], seed: int) -> tuple[dict[str, Any], dict]:
    """Metrics of one checkpoint on the test frame (encoded with the checkpoint's own schema) and its ROC."""
    from models import load_checkpoint
    from models.predict import evaluate, predict_batch

    ckpt = load_checkpoint(checkpoint_dir)
    batch = ckpt.schema.encode(test, with_label=True)
    metrics = evaluate(ckpt.model, batch, rates=tuple(rates), seed=seed)
    roc = roc_points(batch.label.numpy(), predict_batch(ckpt.model, batch))
    return metrics, roc


def evaluate_step(
    dataset_dir: Path,
    models_dir: Path,
    champion_dir: Path | None,
    metrics_path: Path,
    plots_dir: Path,
    rates: list[float] | None = None,
    seed: int = 0,
) -> dict:
    """Score the candidate (models_dir/asymdiffrec), the base model (models_dir/base) and the current champion (a checkpoint
    folder, or None) on the same test split. Writes metrics_path (metrics/evaluate.json: AUC, UAUC, LogLoss per model,
    natural and per missing-count bucket, plus the robustness curve), plots_dir/roc.csv (columns model,fpr,tpr) and
    plots_dir/robustness.csv (columns model,rate,auc,uauc), and returns the same dict, which also holds per model the ROC
    points (fpr, tpr, thresholds lists, downsampled to <= 200 points) so a KFP wrapper can log ClassificationMetrics."""
    from models.data import load_dataset
    from models.metrics import ROBUSTNESS_RATES

    rates = list(ROBUSTNESS_RATES if rates is None else rates)
    checkpoints = {CANDIDATE: Path(models_dir) / "asymdiffrec", BASE: Path(models_dir) / "base"}
    if champion_dir is not None:
        checkpoints[CHAMPION] = Path(champion_dir)
    for name, path in checkpoints.items():
        if not path.is_dir():
            raise FileNotFoundError(f"{name} checkpoint {path} not found; run the train step first (or fix --champion)")
    test = load_dataset(dataset_dir, splits=("test",)).test
    if not len(test):
        raise ValueError(f"{dataset_dir}/test.parquet has no rows; the evaluation needs a test split")

    models, rocs = {}, {}
    for name, path in checkpoints.items():
        models[name], rocs[name] = score_checkpoint(path, test, rates, seed)
        models[name]["checkpoint"] = str(path)
    result = _clean({"test_rows": len(test), "rates": rates, "seed": seed, "models": models})
    atomic_write_json(result, Path(metrics_path))
    write_plots(result, rocs, Path(plots_dir))
    return {**result, "roc": rocs}


def write_plots(result: dict[str, Any], rocs: dict[str, dict], plots_dir: Path) -> None:
    """roc.csv (model, fpr, tpr) and robustness.csv (model, rate, auc, uauc) for `dvc plots`."""
    roc = pd.concat(
        [pd.DataFrame({"model": name, "fpr": r["fpr"], "tpr": r["tpr"]}) for name, r in rocs.items()], ignore_index=True
    )
    rows = [
        {"model": name, "rate": float(rate), "auc": m["auc"], "uauc": m["uauc"]}
        for name, model in result["models"].items()
        for rate, m in model.get("robustness", {}).items()
    ]
    robustness = pd.DataFrame(rows, columns=["model", "rate", "auc", "uauc"])
    for frame, name in ((roc, "roc.csv"), (robustness, "robustness.csv")):
        buf = io.StringIO()
        frame.to_csv(buf, index=False, float_format="%.6g")
        atomic_write_text(buf.getvalue(), plots_dir / name)


def kfp_summary(result: dict[str, Any]) -> dict[str, Any]:
    """What a KFP wrapper logs: flat scalar metrics, the candidate's ROC and a Markdown table."""
    flat = {
        f"{name}_{metric}": model["natural"][metric]
        for name, model in result["models"].items()
        for metric in METRICS
        if model["natural"].get(metric) is not None
    }
    lines = ["| model | AUC | UAUC | LogLoss |", "|---|---|---|---|"]
    for name, model in result["models"].items():
        cells = [f"{model['natural'][m]:.4f}" if model["natural"].get(m) is not None else "n/a" for m in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    rates = result.get("rates") or []
    if rates:
        lines += ["", "AUC under extra random missingness:", "", "| model | " + " | ".join(f"{r:g}" for r in rates) + " |",
                  "|---" * (len(rates) + 1) + "|"]
        for name, model in result["models"].items():
            aucs = [model["robustness"].get(f"{r:.1f}", {}).get("auc") for r in rates]
            lines.append(f"| {name} | " + " | ".join("n/a" if a is None else f"{a:.4f}" for a in aucs) + " |")
    markdown = f"# Evaluation on {result['test_rows']} test rows\n\n" + "\n".join(lines) + "\n"
    return {"metrics": flat, "roc": result["roc"][CANDIDATE], "markdown": markdown}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score candidate, base model and champion on the test split.")
    parser.add_argument("--data", type=Path, default=Path("data/validated"))
    parser.add_argument("--models", type=Path, default=Path("data/models"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/evaluate.json"))
    parser.add_argument("--plots", type=Path, default=Path("metrics/plots"))
    parser.add_argument("--params", default="params.yaml", help="reads evaluate: and serving.model_name")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--champion", type=Path, help="a checkpoint folder (default: the store's production model)")
    group.add_argument("--no-champion", action="store_true", help="score only the candidate and the base model")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    config = section(params, "evaluate")
    unknown = set(config) - {"rates", "seed"}
    if unknown:
        print(f"evaluate: params.yaml evaluate has unknown key(s) {sorted(unknown)}; allowed: rates, seed", file=sys.stderr)
        return 2
    champion = args.champion
    if champion is None and not args.no_champion:
        from components.lifecycle.model_registry import champion_checkpoint

        champion = champion_checkpoint(section(params, "serving", "model_name"))
    try:
        result = evaluate_step(args.data, args.models, champion, args.metrics, args.plots, config.get("rates"), int(config.get("seed", 0)))
    except (FileNotFoundError, ValueError) as e:
        print(f"evaluate: {e}", file=sys.stderr)
        return 2
    print(kfp_summary(result)["markdown"])
    print(f"wrote {args.metrics}, {args.plots}/roc.csv, {args.plots}/robustness.csv" + ("" if champion else " (no champion yet)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
