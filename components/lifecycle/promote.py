"""Promote step: the gate between a trained candidate and production.

    python -m components.lifecycle.promote --models data/models --evaluation metrics/evaluate.json \\
        --decision metrics/promotion.json --params params.yaml

With a champion in production, the candidate must gain at least `min_gain_over_champion` on each of
`metrics` and lose at most `max_bucket_regression` AUC on any missing-count bucket with at least
`min_bucket_rows` test rows (a model that helps on average but breaks the rows missing a whole
feature view should not ship). With no champion yet, it must gain `min_gain_over_base` over the
base model trained beside it. A passing candidate is saved to the BentoML store as stage=production
and the production pointer moves to it; a refused one is saved as stage=candidate (`save_refused`)
and production stays where it was. Either way the decision, with every check and the reasons, goes
to the decision file. A refusal is a normal outcome: the command exits 0.

Shadow evidence: given a serving log (the service's, or the replay's), the candidate and the champion
(the base model while there is none) both score the logged requests with the very values and masks that
were served (components/lifecycle/shadow.py). The decision records their score correlation, top-10
overlap per request and, where outcomes have joined, each one's AUC/UAUC on served traffic; a candidate
that wins offline while its scores barely correlate with the champion's on real traffic
(`shadow_min_correlation`), or that loses more than `shadow_max_auc_drop` AUC there, is refused.

Only weights that were evaluated ship: the evaluate step records the md5 of the candidate's weights it
scored, and the gate refuses (saving nothing) when the weights about to be saved have another md5,
e.g. the candidate was retrained after the evaluation.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from common.files import atomic_write_json
from common.names import HIGHER_IS_BETTER, METRICS
from common.params import ParamsSection, load_params, section
from components.lifecycle import checkpoints
from components.lifecycle import model_registry as registry
from components.lifecycle.model_card import CARD_FILE, build_model_card, render_model_card
from components.lifecycle.model_store import use_bentoml_home


@dataclass(frozen=True)
class Thresholds(ParamsSection):
    """The params.yaml `promote:` section."""

    SECTION = "promote"

    metrics: tuple[str, ...] = ("auc",)  # gains are required on each (logloss: a drop counts as a gain)
    min_gain_over_champion: float = 0.0  # candidate minus champion, absolute, natural test split
    min_gain_over_base: float = 0.0  # with no champion yet: candidate minus its base model
    max_bucket_regression: float = 0.01  # largest AUC drop vs the champion on any missing-count bucket...
    min_bucket_rows: int = 200  # ...that has at least this many test rows
    save_refused: bool = True  # keep a refused candidate in the store as stage=candidate
    shadow_min_correlation: float | None = 0.5  # Spearman of the two models' scores on logged traffic (None: not checked)
    shadow_max_auc_drop: float | None = 0.02  # candidate's served AUC below the reference's by more than this refuses (None: not checked)

    def validate(self) -> None:
        for name in ("shadow_min_correlation", "shadow_max_auc_drop"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value)):
                raise ValueError(f"promote.{name} must be a number or null (not checked), got {value!r}")
        if not isinstance(self.metrics, tuple) or not self.metrics:
            raise ValueError(f"promote.metrics must be a non-empty list of {list(METRICS)}, got {self.metrics!r}")
        bad = [m for m in self.metrics if m not in METRICS]
        if bad:
            raise ValueError(f"promote.metrics has {bad}; use a non-empty list of {list(METRICS)}")
        for name in ("min_gain_over_champion", "min_gain_over_base", "max_bucket_regression"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
                raise ValueError(f"promote.{name} must be a number, got {value!r}")
        if not isinstance(self.min_bucket_rows, int) or isinstance(self.min_bucket_rows, bool) or self.min_bucket_rows < 1:
            raise ValueError(f"promote.min_bucket_rows must be an integer >= 1, got {self.min_bucket_rows!r}")
        if not isinstance(self.save_refused, bool):
            raise ValueError(f"promote.save_refused must be true or false, got {self.save_refused!r}")


def _gain(metric: str, new: float | None, old: float | None) -> float | None:
    if new is None or old is None or (isinstance(new, float) and math.isnan(new)) or (isinstance(old, float) and math.isnan(old)):
        return None
    return (new - old) if HIGHER_IS_BETTER[metric] else (old - new)


def gate(evaluation: dict[str, Any], thresholds: Thresholds) -> tuple[bool, list[str], dict[str, Any]]:
    """(passed, reasons, checks) for the candidate in an evaluate_step result; pure, no store access."""
    models = evaluation.get("models") or {}
    if "candidate" not in models:
        raise ValueError("the evaluation has no 'candidate' model; pass the evaluate step's output (metrics/evaluate.json)")
    cand = models["candidate"]
    ref_name = "champion" if "champion" in models else "base"
    if ref_name not in models:
        raise ValueError("the evaluation has neither a 'champion' nor a 'base' model to compare the candidate with")
    ref = models[ref_name]
    min_gain = thresholds.min_gain_over_champion if ref_name == "champion" else thresholds.min_gain_over_base
    checks: dict[str, Any] = {}
    reasons: list[str] = []
    for metric in thresholds.metrics:
        new, old = cand["natural"].get(metric), ref["natural"].get(metric)
        gain = _gain(metric, new, old)
        passed = gain is not None and gain >= min_gain
        checks[f"gain_over_{ref_name}_{metric}"] = {"candidate": new, ref_name: old, "gain": gain, "min": min_gain, "passed": passed}
        if gain is None:
            reasons.append(f"{metric} could not be computed for the candidate or the {ref_name} (one class in the test split?)")
        elif not passed:
            reasons.append(f"{metric} gain over the {ref_name} is {gain:+.4f} < required {min_gain:+.4f} ({new:.4f} vs {old:.4f})")
    if ref_name == "champion":
        drops: dict[str, float] = {}
        for bucket, m in cand.get("by_missing_count", {}).items():
            old = ref.get("by_missing_count", {}).get(bucket)
            if old is None or min(m.get("n", 0), old.get("n", 0)) < thresholds.min_bucket_rows:
                continue
            gain = _gain("auc", m.get("auc"), old.get("auc"))
            if gain is not None:
                drops[bucket] = -gain
        worst = max(drops, key=drops.get) if drops else None
        passed = worst is None or drops[worst] <= thresholds.max_bucket_regression
        checks["bucket_regression_auc"] = {
            "worst_bucket": worst, "drop": drops.get(worst) if worst else None, "max": thresholds.max_bucket_regression,
            "min_rows": thresholds.min_bucket_rows, "drops": drops, "passed": passed,
        }
        if not passed:
            reasons.append(
                f"AUC drops by {drops[worst]:.4f} vs the champion on rows with {worst} missing fields "
                f"(> max_bucket_regression {thresholds.max_bucket_regression})"
            )
    return not reasons, reasons, checks


@dataclass(frozen=True)
class CardInputs:
    """What the model card reads beside the evaluation: the dataset folder (data window, trained missing
    rates) and the quality report (the missingness tax, the recovered share); either may be absent."""

    dataset_dir: Path | None = None
    quality_path: Path | None = None

    def quality(self) -> dict | None:
        if self.quality_path is None:
            return None
        if not self.quality_path.exists():
            raise FileNotFoundError(f"{self.quality_path} not found; run the quality step (or leave --quality out)")
        return json.loads(self.quality_path.read_text())


@dataclass(frozen=True)
class ShadowInputs:
    """Where the logged traffic is: a serving log folder, the feature tables its rows came from, the dataset
    contract (schema.json) and, optionally, the outcomes joined by request id."""

    serving_log: Path
    features_dir: Path
    schema_path: Path
    outcomes: Path | None = None


def shadow_check(inputs: ShadowInputs | None, candidate: Path, reference: Path | None, reference_name: str,
                 thresholds: Thresholds) -> tuple[dict[str, Any], list[str]]:
    """The shadow comparison's check and the reasons it refuses, if any. No log, an empty one or no
    reference model: recorded as skipped, never a refusal."""
    if inputs is None or not Path(inputs.serving_log).is_dir():
        return {"skipped": "no serving log given", "passed": True}, []
    if reference is None:
        return {"skipped": f"no {reference_name} model to compare with", "passed": True}, []
    from components.data.contract import DatasetSchema
    from components.lifecycle.shadow import shadow_compare
    from serving.serving_log import read_outcomes, read_serving_log

    records = list(read_serving_log(Path(inputs.serving_log)))
    if not records:
        return {"skipped": f"the serving log {inputs.serving_log} holds no records", "passed": True}, []
    if not Path(inputs.schema_path).exists():
        raise FileNotFoundError(f"{inputs.schema_path} not found; the shadow comparison needs the dataset contract (data/validated/schema.json)")
    contract = DatasetSchema.from_dict(json.loads(Path(inputs.schema_path).read_text()), str(inputs.schema_path))
    report = shadow_compare(records, Path(inputs.features_dir), contract, candidate, reference, read_outcomes(inputs.outcomes))
    report["reference_model"] = reference_name
    reasons = []
    corr = report.get("score_spearman")
    if thresholds.shadow_min_correlation is not None and corr is not None and corr < thresholds.shadow_min_correlation:
        reasons.append(f"on {report['samples']} logged samples the candidate's scores correlate {corr:.3f} with the {reference_name}'s "
                       f"(Spearman < shadow_min_correlation {thresholds.shadow_min_correlation})")
    delta_auc = ((report.get("served") or {}).get("delta") or {}).get("auc")  # candidate minus reference, where labels joined
    drop = None if delta_auc is None else -delta_auc
    if thresholds.shadow_max_auc_drop is not None and drop is not None and drop > thresholds.shadow_max_auc_drop:
        reasons.append(f"on served traffic the candidate's AUC is {drop:.4f} below the {reference_name}'s "
                       f"(> shadow_max_auc_drop {thresholds.shadow_max_auc_drop})")
    report["passed"] = not reasons
    return report, reasons


def _labels(stage: str, evaluation: dict[str, Any], config: dict[str, Any], dataset_hash: str) -> dict[str, str]:
    nat = evaluation["models"]["candidate"]["natural"]
    labels = {"stage": stage, "dataset_hash": dataset_hash or "unknown"}
    labels.update({m: ("n/a" if nat.get(m) is None else f"{nat[m]:.4f}") for m in METRICS})
    model = config.get("model", {})
    labels.update(variant=str(model.get("variant", "")), base=str(model.get("base", "")), seed=str(config.get("train", {}).get("seed", "")))
    return labels


def _evaluated_weights(evaluation: dict[str, Any], model: str) -> str | None:
    """The md5 of the weights the evaluate step scored for `model`, or None if it recorded none."""
    return (evaluation.get("models", {}).get(model) or {}).get("weights_md5")


def promote_step(
    models_dir: Path, evaluation: dict, thresholds: dict, model_name: str, decision_path: Path, dataset_hash: str = "",
    shadow: ShadowInputs | None = None, card_inputs: CardInputs | None = None,
) -> dict:
    """The gate. thresholds from params.yaml `promote:` (min_gain_over_champion on AUC (and/or UAUC), max_bucket_regression:
    the largest allowed AUC drop vs the champion on any missing-count bucket with enough rows; with no champion yet, the
    candidate must beat the base model by min_gain_over_base). A passing candidate is saved to the BentoML model store with
    labels (stage=production, metrics, params, dataset hash) and becomes the production model atomically; a failing one is
    saved as stage=candidate (when save_refused, else not saved) and the reason(s) are written to decision_path
    (metrics/promotion.json: {"promoted": bool, "reasons": [...], "tag": ..., "champion": ..., "checks": {...}}).
    The candidate is copied aside first and the copy is what is digested, gated and saved: weights whose md5 is not the one
    the evaluation recorded are refused and not saved at all (their metrics would be someone else's)."""
    limits = Thresholds.from_dict(thresholds)
    source = checkpoints.candidate_dir(models_dir)
    if not (source / "config.json").exists():
        raise FileNotFoundError(f"{source / 'config.json'} not found; run the train step first (--models points at its output)")
    with tempfile.TemporaryDirectory(prefix="promote-") as tmp:
        staged = Path(tmp) / checkpoints.CANDIDATE
        shutil.copytree(source, staged)  # what is digested below is exactly what would be saved
        return _decide(staged, evaluation, limits, model_name, Path(decision_path), dataset_hash, shadow, checkpoints.base_dir(models_dir),
                       card_inputs)


def _decide(candidate: Path, evaluation: dict, limits: Thresholds, model_name: str, decision_path: Path, dataset_hash: str,
            shadow: ShadowInputs | None = None, base: Path | None = None, card_inputs: CardInputs | None = None) -> dict:
    """promote_step on a staged copy of the candidate."""
    config = json.loads((candidate / "config.json").read_text())
    if not dataset_hash:
        dataset_hash = str(config.get("metrics", {}).get("dataset_hash", ""))
    digest = checkpoints.weights_digest(candidate)
    evaluated_digest = _evaluated_weights(evaluation, "candidate")

    champion = registry.production_tag(model_name)
    passed, reasons, checks = gate(evaluation, limits)
    unevaluated = evaluated_digest != digest
    if unevaluated:
        passed = False
        reasons.insert(0, (
            f"the candidate's weights (md5 {digest}) are not the weights the evaluation scored "
            f"(md5 {evaluated_digest or 'not recorded'}); re-run the evaluate step on this candidate"
        ))
    checks["evaluated_weights"] = {"candidate": digest, "evaluated": evaluated_digest, "passed": not unevaluated}

    evaluated = evaluation.get("models", {}).get("champion", {}).get("checkpoint")
    current = registry.champion_checkpoint(model_name)
    if (evaluated is None) != (current is None) or (current is not None and Path(evaluated).resolve() != current.resolve()):
        passed = False
        reasons.append(
            f"the evaluation compared against champion {evaluated or 'none'} but production is now {champion or 'empty'}; "
            "re-run the evaluate step"
        )
    elif current is not None and _evaluated_weights(evaluation, "champion") not in (None, checkpoints.weights_digest(current)):
        passed = False
        reasons.append(f"the production model {champion} has other weights than the champion the evaluation scored; re-run the evaluate step")

    reference, reference_name = (current, "champion") if current is not None else (base if base is not None and base.exists() else None, "base")
    checks["shadow"], shadow_reasons = shadow_check(shadow, candidate, reference, reference_name, limits)
    if shadow_reasons:
        passed = False
        reasons.extend(shadow_reasons)

    if current is not None and (current / checkpoints.WEIGHTS).exists() and checkpoints.weights_digest(current) == digest:
        passed = False
        reasons.append(f"the candidate has the same weights as the production model {champion}; nothing to promote")

    def save(stage: str) -> str:
        """Into the model store with its card (built only for a model that is kept)."""
        card = build_model_card(config, evaluation, card_inputs.dataset_dir if card_inputs else None,
                                card_inputs.quality() if card_inputs else None)
        metadata = {
            "evaluation": {n: m["natural"] for n, m in evaluation["models"].items()},
            "params": {"model": config.get("model", {}), "train": config.get("train", {})},
            "dataset_hash": dataset_hash, "champion": champion, "checks": checks, "weights_md5": digest,
            "model_card": card,
        }
        return registry.save_to_store(candidate, model_name, _labels(stage, evaluation, config, dataset_hash), metadata,
                                      {CARD_FILE: render_model_card(card)})

    tag = None
    if passed:
        tag = save("production")
        registry.set_production(model_name, tag)
    elif limits.save_refused and not unevaluated:  # unevaluated weights: the metrics in the labels would not be theirs
        tag = save("candidate")
    decision = {
        "promoted": passed, "reasons": reasons, "tag": tag, "champion": champion,
        "production": registry.production_tag(model_name), "model_name": model_name, "dataset_hash": dataset_hash,
        "weights_md5": digest, "saved": tag is not None, "thresholds": limits.to_dict(), "checks": checks,
    }
    atomic_write_json(decision, decision_path)
    return decision


def run_promote(
    models_dir: Path,
    evaluation_path: Path,
    thresholds: dict[str, Any] | None,
    model_name: str,
    decision_path: Path,
    dataset_dir: Path | None = None,
    bentoml_home: str = "",
    shadow: ShadowInputs | None = None,
    card_inputs: CardInputs | None = None,
) -> dict:
    """The promote step as the CLI and the KFP step both run it: the evaluate step's file, the `promote:`
    section, the store `bentoml_home` ("": $BENTOML_HOME, else the project's data/bentoml); the model
    records DVC's hash of `dataset_dir` (None: the hash the train step recorded in the checkpoint)."""
    use_bentoml_home(bentoml_home)
    evaluation_path = Path(evaluation_path)
    if not evaluation_path.exists():
        raise FileNotFoundError(f"{evaluation_path} not found; run the evaluate step first")
    dataset = ""
    if dataset_dir is not None:
        from components.lifecycle.train import dataset_hash

        dataset = dataset_hash(Path(dataset_dir))
    return promote_step(Path(models_dir), json.loads(evaluation_path.read_text()), thresholds or {}, model_name, Path(decision_path),
                        dataset, shadow, card_inputs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Gate the candidate against the champion; promote it if it passes.")
    parser.add_argument("--models", type=Path, default=Path("data/models"))
    parser.add_argument("--evaluation", type=Path, default=Path("metrics/evaluate.json"))
    parser.add_argument("--decision", type=Path, default=Path("metrics/promotion.json"))
    parser.add_argument("--params", default="params.yaml", help="reads promote: and serving.model_name")
    parser.add_argument("--serving-log", type=Path, default=None, help="a serving log folder: shadow both models on its requests")
    parser.add_argument("--outcomes", type=Path, default=None, help="labels by request_id and item_id (JSON lines), for served AUC")
    parser.add_argument("--features", type=Path, default=Path("data/features"), help="the feature tables the logged rows came from")
    parser.add_argument("--dataset-schema", type=Path, default=Path("data/validated/schema.json"),
                        help="the dataset contract; its folder's splits give the model card's data window")
    parser.add_argument("--quality", type=Path, default=None, help="the quality report: the model card's missingness tax and recovered share")
    args = parser.parse_args(argv)
    card_inputs = CardInputs(args.dataset_schema.parent, args.quality)
    shadow = None if args.serving_log is None else ShadowInputs(args.serving_log, args.features, args.dataset_schema, args.outcomes)
    try:
        params = load_params(args.params)
        decision = run_promote(
            args.models, args.evaluation, params.get("promote"), section(params, "serving", "model_name"), args.decision,
            shadow=shadow, card_inputs=card_inputs,
        )
    except (FileNotFoundError, KeyError, ValueError, registry.StoreError) as e:
        print(f"promote: {e}", file=sys.stderr)
        return 2
    if decision["promoted"]:
        print(f"promoted {decision['tag']} to production (was {decision['champion'] or 'empty'})")
    else:
        kept = f"kept as candidate {decision['tag']}" if decision["tag"] else "not saved"
        print(f"refused ({kept}); production stays {decision['production'] or 'empty'}:\n  " + "\n  ".join(decision["reasons"]))
    shadow_report = decision["checks"].get("shadow", {})
    if "skipped" not in shadow_report:
        overlap = shadow_report.get(f"top{shadow_report['top_k']}_overlap")
        print(f"shadow on {shadow_report['samples']} logged samples vs the {shadow_report['reference_model']}: "
              f"score Spearman {shadow_report['score_spearman']:.3f}, top-{shadow_report['top_k']} overlap {overlap:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
