"""Evaluate step: the candidate, its base model and the current champion on the same test split.

    python -m components.lifecycle.evaluate --data data/validated --models data/models --metrics metrics/evaluate.json \\
        --plots metrics/plots --params params.yaml

The champion is the production model of the BentoML model store (`serving.model_name`; the store is
$BENTOML_HOME, else the project's data/bentoml), if any; `--champion DIR` names a checkpoint folder
instead and `--no-champion` leaves it out. Every model is scored on identical inputs: the natural
missing mask, and for each extra-missingness rate the same random masks (seeded by `evaluate.seed`),
so the curves compare models, not draws. Each model's entry records the md5 of the weights scored
(`weights_md5`): the promote step refuses to ship weights other than those.
"""
from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from common.files import atomic_write_json, atomic_write_text
from common.jsonable import jsonable
from common.names import METRICS
from common.params import ParamsSection, load_params, section
from components.lifecycle import checkpoints
from models.metrics import ROBUSTNESS_RATES

CANDIDATE, BASE, CHAMPION = "candidate", "base", "champion"  # the models' names in the evaluation
ROC_POINTS = 200


@dataclass(frozen=True)
class EvaluateConfig(ParamsSection):
    """The params.yaml `evaluate:` section, read the same way by the CLI and the KFP step."""

    SECTION = "evaluate"

    rates: tuple[float, ...] = ROBUSTNESS_RATES  # extra random missingness of the robustness curve
    seed: int = 0  # draws the extra-missingness masks, identical for every model

    def validate(self) -> None:
        if not isinstance(self.rates, tuple) or not all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in self.rates):
            raise ValueError(f"evaluate.rates must be a list of numbers in [0, 1), got {self.rates!r}")
        bad = [r for r in self.rates if not 0.0 <= r < 1.0]
        if bad:
            raise ValueError(f"evaluate.rates has {bad} outside [0, 1); a rate is the share of observed fields masked")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"evaluate.seed must be an integer, got {self.seed!r}")


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
    """Score the candidate (checkpoints.candidate_dir), the base model (checkpoints.base_dir) and the current champion (a
    checkpoint folder, or None) on the same test split. Writes metrics_path (metrics/evaluate.json: AUC, UAUC, LogLoss per
    model, natural and per missing-count bucket, the robustness curve, the checkpoint and `weights_md5`, the md5 of the
    weights scored, which the promote step checks), plots_dir/roc.csv (columns model,fpr,tpr) and
    plots_dir/robustness.csv (columns model,rate,auc,uauc), and returns the same dict, which also holds per model the ROC
    points (fpr, tpr, thresholds lists, downsampled to <= 200 points) so a KFP wrapper can log ClassificationMetrics."""
    from models.data import load_dataset

    rates = list(ROBUSTNESS_RATES if rates is None else rates)
    folders = {CANDIDATE: checkpoints.candidate_dir(models_dir), BASE: checkpoints.base_dir(models_dir)}
    if champion_dir is not None:
        folders[CHAMPION] = Path(champion_dir)
    for name, path in folders.items():
        if not path.is_dir():
            raise FileNotFoundError(f"{name} checkpoint {path} not found; run the train step first (or fix --champion)")
    test = load_dataset(dataset_dir, splits=("test",)).test
    if not len(test):
        raise ValueError(f"{dataset_dir}/test.parquet has no rows; the evaluation needs a test split")

    models, rocs = {}, {}
    for name, path in folders.items():
        digest = checkpoints.weights_digest(path)
        models[name], rocs[name] = score_checkpoint(path, test, rates, seed)
        if checkpoints.weights_digest(path) != digest:  # the digest must name the weights that were scored
            raise RuntimeError(f"{path}/{checkpoints.WEIGHTS} changed while it was being evaluated; re-run the evaluate step")
        models[name].update(checkpoint=str(path), weights_md5=digest)
    result = jsonable({"test_rows": len(test), "rates": rates, "seed": seed, "models": models})
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


def run_evaluate(
    dataset_dir: Path,
    models_dir: Path,
    metrics_path: Path,
    plots_dir: Path,
    evaluate_params: dict[str, Any] | None,
    model_name: str | None,
    champion_dir: Path | None = None,
    bentoml_home: str = "",
) -> dict[str, Any]:
    """The evaluate step as the CLI and the KFP step both run it, so they cannot drift apart:
    `evaluate_params` is params.yaml's `evaluate:` section (checked by EvaluateConfig); the champion is
    `champion_dir` if given, else the production model of `model_name` in the store `bentoml_home`
    ("": $BENTOML_HOME, else the project's data/bentoml), none when `model_name` is None. Returns
    evaluate_step's result plus "summary" (kfp_summary: what a KFP step logs)."""
    config = EvaluateConfig.from_dict(evaluate_params)
    if champion_dir is None and model_name is not None:
        from components.lifecycle.model_store import use_bentoml_home
        from components.lifecycle.model_registry import champion_checkpoint

        use_bentoml_home(bentoml_home)
        champion_dir = champion_checkpoint(model_name)
    result = evaluate_step(dataset_dir, models_dir, champion_dir, metrics_path, plots_dir, list(config.rates), config.seed)
    return {**result, "summary": kfp_summary(result)}


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
    from components.lifecycle.model_registry import StoreError

    try:
        params = load_params(args.params)
        model_name = None if args.no_champion or args.champion else section(params, "serving", "model_name")
        result = run_evaluate(
            args.data, args.models, args.metrics, args.plots, params.get("evaluate"), model_name, args.champion
        )
    except (FileNotFoundError, KeyError, ValueError, StoreError) as e:
        print(f"evaluate: {e}", file=sys.stderr)
        return 2
    print(result["summary"]["markdown"])
    champion = "champion" if CHAMPION in result["models"] else "no champion yet"
    print(f"wrote {args.metrics}, {args.plots}/roc.csv, {args.plots}/robustness.csv ({champion})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
