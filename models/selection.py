"""Selection on the validation split only: each design choice and hyper-parameter of the quality
report, chosen over seeds of its own, before the test split is ever read.

    python -m models.selection --data data/validated --out reports --params params.yaml

The `selection:` section lists stages run in order, from `selection.start` (the simplest settings). A stage trains one variant with each of its
candidates (a change to the model, train or schema settings) over the selection seeds, and compares
each candidate's best validation AUC with the stage's first candidate, the reference (the simplest
choice), paired by seed. The best candidate wins only when its 95% interval over the reference lies
above zero; otherwise the reference stays ("validation cannot separate them: keep the simpler one").
A stage with `rule: best` (a knob with no simpler value, such as the learning rate) takes the highest
mean instead. A stage's winner carries into the later stages. Only the train and validation splits are loaded.

Writes `selection.json` (every candidate's validation AUC, best epoch and paired difference; the chosen
settings) and `selection.md`. params.yaml's `model:` and `train:` sections hold the chosen settings; a
test checks that they agree.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from common.files import atomic_write_text
from common.jsonable import jsonable
from models.asymdiffrec import build_model
from models.config import VARIANTS, ParamsSection, TrainConfig
from models.data import load_dataset
from models.schema import FeatureSchema
from models.stats import paired_difference
from models.train import train

PARTS = ("model", "train", "schema")


@dataclass
class SelectionConfig(ParamsSection):
    """The params.yaml `selection:` section."""

    SECTION = "selection"
    seeds: tuple[int, ...] = (100, 101, 102, 103, 104)  # never the report's seeds
    start: dict = field(default_factory=dict)  # {model: {...}, train: {...}}: the simplest settings the stages start from
    stages: tuple[dict, ...] = field(default_factory=tuple)

    def validate(self) -> None:
        if len(self.seeds) < 2:
            raise ValueError("selection.seeds needs at least 2 seeds for a paired interval")
        for i, stage in enumerate(self.stages):
            where = f"selection.stages[{i}]"
            if stage.get("variant") not in VARIANTS:
                raise ValueError(f"{where}.variant must be one of {sorted(VARIANTS)}, got {stage.get('variant')!r}")
            if stage.get("rule", "simplest") not in ("simplest", "best"):
                raise ValueError(f"{where}.rule must be 'simplest' (the reference stays unless beaten) or 'best' (highest mean)")
            cands = stage.get("candidates")
            if not isinstance(cands, dict) or len(cands) < 2:
                raise ValueError(f"{where}.candidates must map at least two names to settings; the first is the reference")
            for name, change in cands.items():
                bad = sorted(set(change or {}) - set(PARTS))
                if bad:
                    raise ValueError(f"{where}.candidates.{name} has {bad}; a candidate changes only {PARTS}")


def _merge(base: dict[str, dict], change: dict[str, dict] | None) -> dict[str, dict]:
    return {p: {**base.get(p, {}), **((change or {}).get(p) or {})} for p in PARTS}


def _fit_schema(data: Any, schema_options: dict[str, Any]) -> FeatureSchema:
    options = dict(schema_options)
    exclude = set(options.pop("exclude", []) or [])
    features = [f for f in data.features if f["name"] not in exclude]
    return FeatureSchema.fit(data.train, features, label=data.label, user_key=data.user_key, **options)


def run_stage(data: Any, stage: dict, settings: dict[str, dict], seeds: Sequence[int]) -> dict[str, Any]:
    """Train the stage's variant with every candidate and seed; choose by the rule in the module doc."""
    results: dict[str, Any] = {}
    for name, change in stage["candidates"].items():
        cfg = _merge(settings, change)
        schema = _fit_schema(data, cfg["schema"])
        train_b, valid_b = schema.encode(data.train, with_label=True), schema.encode(data.validation, with_label=True)
        runs = []
        for seed in seeds:
            model = build_model(schema, {**cfg["model"], "variant": stage["variant"]}, seed=seed)
            r = train(model, train_b, valid_b, TrainConfig.from_dict({**cfg["train"], "seed": seed}))
            runs.append({"val_auc": r.best_val_auc, "best_epoch": r.best_epoch, "seconds": r.seconds})
            print(f"{stage['name']}: {name:<28} seed={seed} val auc={r.best_val_auc:.4f} best epoch {r.best_epoch} ({r.seconds:.0f}s)", flush=True)
        vals = [r["val_auc"] for r in runs]
        results[name] = {"change": change or {}, "val_auc": {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1))},
                         "best_epoch": float(np.mean([r["best_epoch"] for r in runs])), "runs": runs}
    reference = next(iter(results))
    ref_vals = [r["val_auc"] for r in results[reference]["runs"]]
    for name, res in results.items():
        if name != reference:
            res["vs_reference"] = paired_difference([r["val_auc"] for r in res["runs"]], ref_vals)
    best = max(results, key=lambda n: results[n]["val_auc"]["mean"])
    if stage.get("rule") == "best":
        chosen, reason = best, f"{best} has the highest mean validation AUC (no candidate is simpler than another)"
    elif best != reference and results[best]["vs_reference"]["verdict"] == "better":
        chosen, reason = best, f"{best} beats the reference {reference} on validation AUC (95% CI above zero)"
    elif best != reference:
        chosen, reason = reference, f"{best} has the highest mean but its interval over {reference} spans zero: keep the simpler {reference}"
    else:
        chosen, reason = reference, f"the reference {reference} has the highest mean validation AUC"
    return {"name": stage["name"], "variant": stage["variant"], "why": stage.get("why", ""), "reference": reference,
            "candidates": results, "chosen": chosen, "reason": reason}


def run_selection(data_dir: str | Path, config: SelectionConfig, settings: dict[str, dict]) -> dict[str, Any]:
    """Every stage in order, each starting from the settings the earlier stages chose."""
    data = load_dataset(data_dir, splits=("train", "validation"))  # the test split is not read here
    current = _merge(settings, None)
    stages = []
    for stage in config.stages:
        result = run_stage(data, stage, current, config.seeds)
        current = _merge(current, result["candidates"][result["chosen"]]["change"])
        stages.append(result)
    chosen = {p: {k: v for k, v in current[p].items() if k not in ("progress", "seed")} for p in PARTS}
    return jsonable({"seeds": list(config.seeds), "stages": stages, "chosen": chosen})


def chosen_changes(report: dict[str, Any]) -> dict[str, dict]:
    """What the stages chose, as changes to the starting settings (what params.yaml must hold)."""
    out: dict[str, dict] = {p: {} for p in PARTS}
    for stage in report["stages"]:
        for p, change in (stage["candidates"][stage["chosen"]]["change"] or {}).items():
            out[p].update(change or {})
    return out


def render_markdown(report: dict[str, Any]) -> str:
    lines = ["# Selection on the validation split", "",
             f"Seeds {report['seeds']} (not the report's). Best validation AUC per run, mean ± std; the paired "
             "difference over each stage's reference (its first, simplest candidate) with a Student-t 95% interval. "
             "A candidate replaces the reference only when that interval lies above zero. The test split is not read.", ""]
    for st in report["stages"]:
        lines += [f"## {st['name']} ({st['variant']})", ""]
        if st.get("why"):
            lines += [st["why"], ""]
        lines += ["| candidate | change | validation AUC | best epoch | − reference [95% CI] | wins |", "|---|---|---|---|---|---|"]
        for name, c in st["candidates"].items():
            change = ", ".join(f"{k}={v}" for part in (c["change"] or {}).values() for k, v in (part or {}).items()) or "—"
            vs = c.get("vs_reference")
            diff = f"{vs['mean_diff']:+.4f} [{vs['ci95'][0]:+.4f}, {vs['ci95'][1]:+.4f}]" if vs else "reference"
            wins = f"{vs['wins']}/{vs['seeds']}" if vs else ""
            mark = " **chosen**" if name == st["chosen"] else ""
            lines.append(f"| {name}{mark} | {change} | {c['val_auc']['mean']:.4f} ± {c['val_auc']['std']:.4f} | {c['best_epoch']:.1f} | {diff} | {wins} |")
        lines += ["", f"Chosen: **{st['chosen']}**: {st['reason']}.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Choose design and hyper-parameters on the validation split.")
    parser.add_argument("--data", required=True, help="dataset folder (only train and validation are read)")
    parser.add_argument("--out", default="reports")
    parser.add_argument("--params", default="params.yaml", help="selection: lists the stages; model: and train: give the starting settings")
    args = parser.parse_args(argv)
    import yaml

    try:
        params = yaml.safe_load(Path(args.params).read_text()) or {}
        config = SelectionConfig.from_dict(params.get("selection"))
        start_settings = {"model": {**(params.get("model") or {}), **(config.start.get("model") or {})},
                          "train": {"progress": False, **(params.get("train") or {}), **(config.start.get("train") or {})},
                          "schema": dict(config.start.get("schema") or {})}
        start = time.perf_counter()
        report = run_selection(args.data, config, start_settings)
    except (FileNotFoundError, ValueError) as e:
        print(f"selection: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps(report, indent=2) + "\n", out / "selection.json")
    atomic_write_text(render_markdown(report), out / "selection.md")
    print(f"wrote {out / 'selection.json'}, {out / 'selection.md'} in {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
