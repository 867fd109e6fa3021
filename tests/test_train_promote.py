"""Train, evaluate, promote and package on a tiny synthetic dataset, with a real BentoML store in a temp BENTOML_HOME."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.lifecycle import model_registry as registry
from components.lifecycle.evaluate import evaluate_step, kfp_summary
from components.lifecycle.package import package_step
from components.lifecycle.promote import Thresholds, promote_step
from components.lifecycle.train import dataset_hash, launch_train, train_step
from models import load_checkpoint, predict
from models.toy_dataset import write_synthetic_dataset

MODEL = {"base": "dnn", "embed_dim": 8, "hidden": [32, 16], "denoiser_hidden": 32}
TRAIN = {"epochs": 2, "batch_size": 256, "seed": 0, "device": "cpu", "patience": 2}
NAME = "asymdiffrec"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("data") / "validated", n_events=3000, n_users=150, n_items=100, seed=0)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("models") / "models"
    return out, train_step(dataset, out, MODEL, TRAIN, dataset_hash(dataset))


@pytest.fixture()
def store(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "bentoml"
    monkeypatch.setenv("BENTOML_HOME", str(home))
    return home


def test_train_step_writes_both_checkpoints_and_the_summary(dataset, trained):
    out, summary = trained
    assert json.loads((out / "train.json").read_text()) == summary
    assert summary["dataset_hash"] == dataset_hash(dataset) and summary["dataset_hash"].endswith(".dir")
    assert set(summary["models"]) == {"asymdiffrec", "base"} and summary["world_size"] == 1
    test = pd.read_parquet(dataset / "test.parquet")
    for folder, variant in (("asymdiffrec", "asymdiffrec"), ("base", "base")):
        ckpt = load_checkpoint(out / folder)
        assert ckpt.model_config.variant == variant and ckpt.model_config.hidden == (32, 16)
        assert ckpt.train_config["seed"] == 0 and ckpt.metrics["dataset_hash"] == summary["dataset_hash"]
        p = predict(ckpt.model, ckpt.schema, test)
        assert p.shape == (len(test),) and np.isfinite(p).all()
    assert not list(out.parent.glob(".*staging"))  # nothing half-written left beside the output


def test_train_step_rejects_an_unknown_model_key(dataset, tmp_path):
    with pytest.raises(ValueError, match="no key"):
        train_step(dataset, tmp_path / "m", {**MODEL, "hiden": [8]}, TRAIN)
    assert not (tmp_path / "m").exists()


def test_evaluate_step_scores_candidate_base_and_champion(dataset, trained, tmp_path):
    out, _ = trained
    result = evaluate_step(dataset, out, out / "base", tmp_path / "evaluate.json", tmp_path / "plots", rates=[0.0, 0.4])
    written = json.loads((tmp_path / "evaluate.json").read_text())
    assert set(written["models"]) == {"candidate", "base", "champion"} == set(result["roc"])
    for model in written["models"].values():
        assert {"auc", "uauc", "logloss"} <= set(model["natural"]) and model["by_missing_count"] and set(model["robustness"]) == {"0.0", "0.4"}
    # the champion here is the base checkpoint: same weights, same inputs, same numbers
    assert written["models"]["champion"]["natural"] == written["models"]["base"]["natural"]
    roc = pd.read_csv(tmp_path / "plots" / "roc.csv")
    assert list(roc.columns) == ["model", "fpr", "tpr"] and set(roc.model) == {"candidate", "base", "champion"}
    assert roc.groupby("model").size().max() <= 200 and roc.fpr.between(0, 1).all()
    rob = pd.read_csv(tmp_path / "plots" / "robustness.csv")
    assert list(rob.columns) == ["model", "rate", "auc", "uauc"] and len(rob) == 6
    summary = kfp_summary(result)
    assert "candidate_auc" in summary["metrics"] and "| champion |" in summary["markdown"]
    assert len(summary["roc"]["fpr"]) == len(summary["roc"]["thresholds"]) <= 200


def _evaluation(candidate: float, base: float, champion_dir: Path | None = None, champion: float = 0.0,
                bucket_drop: float = 0.0) -> dict:
    """An evaluate_step result with chosen AUCs (to make 'worse' and 'better' exact)."""
    def model(auc: float, drop: float = 0.0) -> dict:
        natural = {"auc": auc, "uauc": auc, "logloss": 0.6, "n": 1000}
        buckets = {"0": {**natural, "n": 600}, "5": {**natural, "auc": auc - drop, "n": 400}}
        return {"natural": natural, "by_missing_count": buckets, "robustness": {}}
    models = {"candidate": model(candidate, bucket_drop), "base": model(base)}
    if champion_dir is not None:
        models["champion"] = {**model(champion), "checkpoint": str(champion_dir)}
    return {"test_rows": 1000, "rates": [], "models": models}


def test_without_a_champion_the_candidate_must_beat_the_base_model(trained, store, tmp_path):
    out, _ = trained
    decision = promote_step(out, _evaluation(0.70, 0.72), {"min_gain_over_base": 0.0}, NAME, tmp_path / "p.json", "h.dir")
    assert not decision["promoted"] and "base" in decision["reasons"][0]
    assert registry.production_tag(NAME) is None
    assert registry.model_info(decision["tag"])["labels"]["stage"] == "candidate"  # kept, not served
    assert json.loads((tmp_path / "p.json").read_text())["reasons"] == decision["reasons"]

    decision = promote_step(out, _evaluation(0.75, 0.72), {"min_gain_over_base": 0.01}, NAME, tmp_path / "p.json", "h.dir")
    assert decision["promoted"] and registry.production_tag(NAME) == decision["tag"]
    info = registry.model_info(decision["tag"])
    assert info["labels"]["stage"] == "production" and info["labels"]["dataset_hash"] == "h.dir"
    assert info["labels"]["auc"] == "0.7500" and info["metadata"]["params"]["model"]["hidden"] == [32, 16]


def test_a_worse_model_is_refused_and_a_better_one_replaces_the_champion(dataset, trained, store, tmp_path):
    out, _ = trained
    limits = {"min_gain_over_champion": 0.001, "min_gain_over_base": 0.0, "max_bucket_regression": 0.02, "min_bucket_rows": 100}
    first = promote_step(out, _evaluation(0.75, 0.72), limits, NAME, tmp_path / "p.json")
    champion_dir = registry.champion_checkpoint(NAME)
    assert first["promoted"] and champion_dir is not None and (champion_dir / "weights.pt").exists()

    # another candidate (different weights) that scores worse than the champion
    other = tmp_path / "other"
    train_step(dataset, other, MODEL, {**TRAIN, "seed": 1, "epochs": 1})
    worse = promote_step(other, _evaluation(0.74, 0.70, champion_dir, 0.75), limits, NAME, tmp_path / "p.json")
    assert not worse["promoted"] and worse["champion"] == first["tag"]
    assert registry.production_tag(NAME) == first["tag"]
    assert any("champion" in r for r in worse["reasons"])
    written = json.loads((tmp_path / "p.json").read_text())
    assert written["promoted"] is False and written["checks"]["gain_over_champion_auc"]["passed"] is False

    # better on average, but a missing-count bucket regresses past the limit
    broken = promote_step(other, _evaluation(0.78, 0.70, champion_dir, 0.75, bucket_drop=0.05), limits, NAME, tmp_path / "p.json")
    assert not broken["promoted"] and "missing fields" in broken["reasons"][0]
    assert broken["checks"]["bucket_regression_auc"]["worst_bucket"] == "5"
    assert registry.production_tag(NAME) == first["tag"]

    better = promote_step(other, _evaluation(0.78, 0.70, champion_dir, 0.75), limits, NAME, tmp_path / "p.json")
    assert better["promoted"] and registry.production_tag(NAME) == better["tag"] != first["tag"]
    pointer = json.loads((store / "production" / f"{NAME}.json").read_text())
    assert pointer["previous"] == first["tag"] and [h["tag"] for h in pointer["history"]] == [first["tag"], better["tag"]]

    # an evaluation made against the old champion no longer counts
    stale = promote_step(other, _evaluation(0.9, 0.70, champion_dir, 0.75), limits, NAME, tmp_path / "p.json")
    assert not stale["promoted"] and any("re-run the evaluate step" in r for r in stale["reasons"])


def test_train_evaluate_promote_package_end_to_end(dataset, trained, store, tmp_path):
    out, summary = trained
    limits = {"min_gain_over_base": -1.0, "min_bucket_rows": 50}  # tiny data: promote whatever trained
    evaluation = evaluate_step(dataset, out, registry.champion_checkpoint(NAME), tmp_path / "e.json", tmp_path / "plots", [0.0])
    decision = promote_step(out, json.loads((tmp_path / "e.json").read_text()), limits, NAME, tmp_path / "p.json")
    assert decision["promoted"] and decision["dataset_hash"] == summary["dataset_hash"]
    package = package_step(NAME, tmp_path / "package.json")
    assert package["tag"] == decision["tag"] and package["labels"]["stage"] == "production"
    import bentoml

    bento = bentoml.get(package["bento"])  # `bentoml build` of the service, around the production model
    assert [str(m.tag) for m in bento.info.all_models] == [decision["tag"]]
    assert json.loads((tmp_path / "package.json").read_text())["tag"] == decision["tag"]
    served = load_checkpoint(registry.champion_checkpoint(NAME))
    assert served.model_config.variant == "asymdiffrec"
    assert "candidate" in evaluation["models"] and "champion" not in evaluation["models"]

    # the same model again: evaluated against itself, it is refused, production stays
    again = evaluate_step(dataset, out, registry.champion_checkpoint(NAME), tmp_path / "e.json", tmp_path / "plots", [0.0])
    assert again["models"]["champion"]["natural"] == again["models"]["candidate"]["natural"]
    repeat = promote_step(out, again, limits, NAME, tmp_path / "p.json")
    assert not repeat["promoted"] and "same weights" in repeat["reasons"][-1]
    assert registry.production_tag(NAME) == decision["tag"]


def test_package_without_a_production_model_says_why(store, tmp_path):
    result = package_step(NAME, tmp_path / "package.json")
    assert result["tag"] is None and "promote" in result["reason"]


def test_thresholds_name_the_bad_field():
    with pytest.raises(ValueError, match="min_gain_over_champoin"):
        Thresholds.from_dict({"min_gain_over_champoin": 0.1})
    with pytest.raises(ValueError, match="promote.metrics"):
        Thresholds.from_dict({"metrics": ["accuracy"]})


def test_ddp_on_cpu_with_two_gloo_processes(dataset, tmp_path):
    out = tmp_path / "ddp"
    summary = launch_train(dataset, out, MODEL, {**TRAIN, "epochs": 1}, "h.dir", nproc=2)
    assert summary["world_size"] == 2 and summary["device"] == "cpu"
    assert json.loads((out / "train.json").read_text()) == summary
    test = pd.read_parquet(dataset / "test.parquet")
    for folder in ("asymdiffrec", "base"):
        ckpt = load_checkpoint(out / folder)
        p = predict(ckpt.model, ckpt.schema, test)
        assert np.isfinite(p).all() and p.std() > 0  # trained, not constant
