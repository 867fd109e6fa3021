"""Train, evaluate, promote and package on a tiny synthetic dataset, with a real BentoML store in a temp BENTOML_HOME."""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from common.params import PROJECT_ROOT
from components.lifecycle.model_store import bentoml_home
from components.lifecycle import model_registry as registry
from components.lifecycle.checkpoints import candidate_dir, weights_digest
from components.lifecycle.evaluate import EvaluateConfig, evaluate_step, kfp_summary, run_evaluate
from components.lifecycle.package import bento_sources, package_step
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
    with pytest.raises(ValueError, match="unknown key.*hiden"):
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


def _evaluation(models_dir: Path, candidate: float, base: float, champion_dir: Path | None = None, champion: float = 0.0,
                bucket_drop: float = 0.0) -> dict:
    """An evaluate_step result with chosen AUCs (to make 'worse' and 'better' exact) for the weights in models_dir."""
    def model(auc: float, drop: float = 0.0) -> dict:
        natural = {"auc": auc, "uauc": auc, "logloss": 0.6, "n": 1000}
        buckets = {"0": {**natural, "n": 600}, "5": {**natural, "auc": auc - drop, "n": 400}}
        return {"natural": natural, "by_missing_count": buckets, "robustness": {}}
    models = {"candidate": {**model(candidate, bucket_drop), "weights_md5": weights_digest(candidate_dir(models_dir))},
              "base": model(base)}
    if champion_dir is not None:
        models["champion"] = {**model(champion), "checkpoint": str(champion_dir), "weights_md5": weights_digest(champion_dir)}
    return {"test_rows": 1000, "rates": [], "models": models}


def test_without_a_champion_the_candidate_must_beat_the_base_model(trained, store, tmp_path):
    out, _ = trained
    decision = promote_step(out, _evaluation(out, 0.70, 0.72), {"min_gain_over_base": 0.0}, NAME, tmp_path / "p.json", "h.dir")
    assert not decision["promoted"] and "base" in decision["reasons"][0]
    assert registry.production_tag(NAME) is None
    assert registry.model_info(decision["tag"])["labels"]["stage"] == "candidate"  # kept, not served
    assert json.loads((tmp_path / "p.json").read_text())["reasons"] == decision["reasons"]

    decision = promote_step(out, _evaluation(out, 0.75, 0.72), {"min_gain_over_base": 0.01}, NAME, tmp_path / "p.json", "h.dir")
    assert decision["promoted"] and registry.production_tag(NAME) == decision["tag"]
    info = registry.model_info(decision["tag"])
    assert info["labels"]["stage"] == "production" and info["labels"]["dataset_hash"] == "h.dir"
    assert info["labels"]["auc"] == "0.7500" and info["metadata"]["params"]["model"]["hidden"] == [32, 16]


def test_a_worse_model_is_refused_and_a_better_one_replaces_the_champion(dataset, trained, store, tmp_path):
    out, _ = trained
    limits = {"min_gain_over_champion": 0.001, "min_gain_over_base": 0.0, "max_bucket_regression": 0.02, "min_bucket_rows": 100}
    first = promote_step(out, _evaluation(out, 0.75, 0.72), limits, NAME, tmp_path / "p.json")
    champion_dir = registry.champion_checkpoint(NAME)
    assert first["promoted"] and champion_dir is not None and (champion_dir / "weights.pt").exists()

    # another candidate (different weights) that scores worse than the champion
    other = tmp_path / "other"
    train_step(dataset, other, MODEL, {**TRAIN, "seed": 1, "epochs": 1})
    worse = promote_step(other, _evaluation(other, 0.74, 0.70, champion_dir, 0.75), limits, NAME, tmp_path / "p.json")
    assert not worse["promoted"] and worse["champion"] == first["tag"]
    assert registry.production_tag(NAME) == first["tag"]
    assert any("champion" in r for r in worse["reasons"])
    written = json.loads((tmp_path / "p.json").read_text())
    assert written["promoted"] is False and written["checks"]["gain_over_champion_auc"]["passed"] is False

    # better on average, but a missing-count bucket regresses past the limit
    broken = promote_step(other, _evaluation(other, 0.78, 0.70, champion_dir, 0.75, bucket_drop=0.05), limits, NAME, tmp_path / "p.json")
    assert not broken["promoted"] and "missing fields" in broken["reasons"][0]
    assert broken["checks"]["bucket_regression_auc"]["worst_bucket"] == "5"
    assert registry.production_tag(NAME) == first["tag"]

    better = promote_step(other, _evaluation(other, 0.78, 0.70, champion_dir, 0.75), limits, NAME, tmp_path / "p.json")
    assert better["promoted"] and registry.production_tag(NAME) == better["tag"] != first["tag"]
    pointer = json.loads((store / "production" / f"{NAME}.json").read_text())
    assert pointer["previous"] == first["tag"] and [h["tag"] for h in pointer["history"]] == [first["tag"], better["tag"]]

    # an evaluation made against the old champion no longer counts
    stale = promote_step(other, _evaluation(other, 0.9, 0.70, champion_dir, 0.75), limits, NAME, tmp_path / "p.json")
    assert not stale["promoted"] and any("re-run the evaluate step" in r for r in stale["reasons"])


def test_train_evaluate_promote_package_end_to_end(dataset, trained, store, tmp_path):
    out, summary = trained
    limits = {"min_gain_over_base": -1.0, "min_bucket_rows": 50}  # tiny data: promote whatever trained
    evaluation = evaluate_step(dataset, out, registry.champion_checkpoint(NAME), tmp_path / "e.json", tmp_path / "plots", [0.0])
    assert evaluation["models"]["candidate"]["weights_md5"] == weights_digest(candidate_dir(out))
    decision = promote_step(out, json.loads((tmp_path / "e.json").read_text()), limits, NAME, tmp_path / "p.json")
    assert decision["promoted"] and decision["dataset_hash"] == summary["dataset_hash"]
    assert decision["weights_md5"] == evaluation["models"]["candidate"]["weights_md5"]
    assert weights_digest(registry.champion_checkpoint(NAME)) == decision["weights_md5"]  # the evaluated weights shipped
    package = package_step(NAME, tmp_path / "package.json")
    assert package["tag"] == decision["tag"] and package["labels"]["stage"] == "production"
    import bentoml

    bento = bentoml.get(package["bento"])  # `bentoml build` of the service, around the production model
    assert [str(m.tag) for m in bento.info.all_models] == [decision["tag"]]
    assert json.loads((tmp_path / "package.json").read_text())["tag"] == decision["tag"]
    _assert_bento_holds_what_serving_needs(Path(bento.path) / "src", decision["tag"], store)
    served = load_checkpoint(registry.champion_checkpoint(NAME))
    assert served.model_config.variant == "asymdiffrec"
    assert "candidate" in evaluation["models"] and "champion" not in evaluation["models"]

    # the same model again: evaluated against itself, it is refused, production stays
    again = evaluate_step(dataset, out, registry.champion_checkpoint(NAME), tmp_path / "e.json", tmp_path / "plots", [0.0])
    assert again["models"]["champion"]["natural"] == again["models"]["candidate"]["natural"]
    repeat = promote_step(out, again, limits, NAME, tmp_path / "p.json")
    assert not repeat["promoted"] and "same weights" in repeat["reasons"][-1]
    assert registry.production_tag(NAME) == decision["tag"]


def _import_graph(module: str, root: Path = PROJECT_ROOT) -> set[str]:
    """The project files `module` imports, directly or not, at module level or inside functions
    (read from the source, so lazy imports count), as posix paths from `root`."""
    tops = {p.name for p in root.iterdir() if (p / "__init__.py").exists()}
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        base = root.joinpath(*name.split("."))
        path = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
        if name in seen or not path.exists():
            continue
        seen[name] = path
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run first
        package = parts if path.name == "__init__.py" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.split(".")[0] in tops]
            elif isinstance(node, ast.ImportFrom):
                target = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]).strip(".") if node.level else node.module
                if target and target.split(".")[0] in tops:
                    todo += [target] + [f"{target}.{a.name}" for a in node.names]
    return {p.relative_to(root).as_posix() for p in seen.values()}


def _assert_bento_holds_what_serving_needs(src: Path, tag: str, store: Path) -> None:
    """The Bento's sources are exactly the service's import graph (no test launcher, no pipeline step),
    and the service imports from them alone, serving the model it was packaged with."""
    shipped = {p.relative_to(src).as_posix() for p in src.rglob("*.py")}
    needed = _import_graph("serving.service")
    assert shipped == needed, f"missing from the Bento: {sorted(needed - shipped)}; not needed: {sorted(shipped - needed)}"
    assert "serving/process.py" not in shipped and not any(p.startswith("pipelines/") for p in shipped)
    assert {"params.yaml", "feature_repo/feature_store.yaml", "serving/packaged_model.json"} <= {
        p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()
    }
    probe = (
        "import json, sys\n"
        "import serving.service as service\n"
        "files = [m.__file__ for m in list(sys.modules.values()) if (getattr(m, '__name__', '').split('.')[0]"
        " in ('components', 'models', 'serving', 'feature_repo')) and getattr(m, '__file__', None)]\n"
        "print(json.dumps({'tag': service.CONFIG.model_tag(), 'files': files}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("ASYMDIFFREC_MODEL_TAG", "ASYMDIFFREC_PARAMS")}
    proc = subprocess.run([sys.executable, "-c", probe], cwd=src, env={**env, "BENTOML_HOME": str(store)},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["tag"] == tag
    outside = [f for f in result["files"] if not Path(f).resolve().is_relative_to(src.resolve())]
    assert result["files"] and not outside, f"the service imported project files from outside the Bento: {outside}"


def test_the_bentofile_ships_exactly_the_service_import_graph_plus_its_data():
    shipped = bento_sources()
    assert {p for p in shipped if p.endswith(".py")} == _import_graph("serving.service")
    assert {p for p in shipped if not p.endswith(".py")} == {"params.yaml", *(
        p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / "feature_repo").glob("*.yaml"))}


def test_weights_changed_after_the_evaluation_are_refused_naming_both_hashes(dataset, trained, store, tmp_path):
    out = tmp_path / "models"
    shutil.copytree(trained[0], out)
    evaluation = evaluate_step(dataset, out, None, tmp_path / "e.json", tmp_path / "plots", [0.0])
    evaluated = evaluation["models"]["candidate"]["weights_md5"]
    assert evaluated == weights_digest(candidate_dir(out))

    train_step(dataset, out, MODEL, {**TRAIN, "seed": 1, "epochs": 1})  # retrained after the evaluation
    retrained = weights_digest(candidate_dir(out))
    assert retrained != evaluated
    decision = promote_step(out, json.loads((tmp_path / "e.json").read_text()), {"min_gain_over_base": -1.0}, NAME, tmp_path / "p.json")
    assert not decision["promoted"] and decision["tag"] is None and not decision["saved"]
    assert evaluated in decision["reasons"][0] and retrained in decision["reasons"][0]
    assert decision["checks"]["evaluated_weights"] == {"candidate": retrained, "evaluated": evaluated, "passed": False}
    assert registry.production_tag(NAME) is None
    assert not (store / "models" / NAME).exists()  # nothing saved, not even as a candidate

    # an evaluation that recorded no weights at all is refused the same way
    unrecorded = json.loads((tmp_path / "e.json").read_text())
    del unrecorded["models"]["candidate"]["weights_md5"]
    decision = promote_step(out, unrecorded, {"min_gain_over_base": -1.0}, NAME, tmp_path / "p.json")
    assert not decision["promoted"] and "not recorded" in decision["reasons"][0] and registry.production_tag(NAME) is None


@pytest.mark.parametrize("content", ["null", "[]", '{"tag": 5}', '"asymdiffrec:v1"', "{}", '{"tag": "other:v1"}', '{"tag": "asymdiffrec"}'])
def test_a_wrong_shaped_production_pointer_is_a_clear_error(trained, store, tmp_path, content, capsys, monkeypatch):
    pointer = registry.pointer_path(NAME)
    pointer.parent.mkdir(parents=True)
    pointer.write_text(content)
    with pytest.raises(registry.StoreError, match=f"production pointer {pointer}.*fix it to .*or delete it"):
        registry.production_tag(NAME)
    monkeypatch.delenv("ASYMDIFFREC_MODEL_TAG", raising=False)
    from serving.config import ServingConfig

    with pytest.raises(registry.StoreError, match=str(pointer)):
        ServingConfig(model_name=NAME).model_tag()

    # every CLI that reads the pointer stops with that message (exit 2), not a traceback
    from components.lifecycle import evaluate, package, promote

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"serving": {"model_name": NAME}}))
    (tmp_path / "e.json").write_text(json.dumps(_evaluation(trained[0], 0.7, 0.6)))
    out = str(tmp_path / "out.json")
    for cli, args in ((evaluate.main, ["--metrics", out]), (promote.main, ["--models", str(trained[0]), "--evaluation",
                      str(tmp_path / "e.json"), "--decision", out]), (package.main, ["--out", out])):
        assert cli(["--params", str(params), *args]) == 2
        assert str(pointer) in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


def test_without_bentoml_home_the_store_lies_inside_the_project(monkeypatch):
    monkeypatch.setenv("BENTOML_HOME", "unset-below")  # recorded, so monkeypatch restores the environment after
    monkeypatch.delenv("BENTOML_HOME")
    home = registry.store_home()
    assert home == bentoml_home() == PROJECT_ROOT / "data" / "bentoml"
    assert not any(part.startswith(".") for part in home.relative_to(PROJECT_ROOT).parts)  # `bentoml build` refuses those
    assert registry.pointer_path(NAME).is_relative_to(PROJECT_ROOT / "data")
    assert "/data/bentoml/" in (PROJECT_ROOT / ".dvcignore").read_text()  # DVC leaves the store alone

    monkeypatch.setenv("BENTOML_HOME", "relative/store")  # a relative BENTOML_HOME is made absolute, so subprocesses agree
    assert registry.store_home() == Path("relative/store").resolve()


def _copy_project(dest: Path, params: dict) -> Path:
    """What a checkout holds for the lifecycle steps and the service, with `params` as its params.yaml."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "packaged_model.json")
    for package in ("common", "components", "models", "serving", "feature_repo"):
        shutil.copytree(PROJECT_ROOT / package, dest / package, ignore=ignore)
    shutil.copy2(PROJECT_ROOT / "bentofile.yaml", dest / "bentofile.yaml")
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def test_a_checkout_under_a_hidden_folder_evaluates_promotes_packages_and_serves_from_its_own_store(dataset, trained, tmp_path):
    """The whole lifecycle by its CLIs, as `make pipeline` runs it, with BENTOML_HOME unset, in a checkout
    under a dot-folder (like ~/.cache/x/proj): every step and the service use <checkout>/data/bentoml."""
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["evaluate"]["rates"] = [0.0]
    params["promote"].update(min_gain_over_base=-1.0, min_bucket_rows=50)
    proj = _copy_project(tmp_path / ".hidden" / "proj", params)
    (tmp_path / ".hidden" / "bento.yaml").write_text(  # planted above the checkout: must not pick the served model
        "services:\n- name: asymdiffrec\n  models:\n  - tag: asymdiffrec:planted\n")
    home = tmp_path / "home"  # BentoML's own default would be $HOME/bentoml: nothing may land there
    env = {k: v for k, v in os.environ.items() if k not in ("BENTOML_HOME", "ASYMDIFFREC_MODEL_TAG", "ASYMDIFFREC_PARAMS")}
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")

    def step(*args: str) -> str:
        proc = subprocess.run([sys.executable, *args], cwd=proj, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"{args}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout

    models = str(trained[0])
    variant = json.loads((candidate_dir(trained[0]) / "config.json").read_text())["model"]["variant"]
    quality = {"seeds": [0, 1], "tax": {"auc": {"fresh": 0.70, "natural": 0.69, "tax": 0.01, "ci95": [0.005, 0.015], "wins": 2}},
               "models": {variant: {"recovered": {"auc": {"mean": 0.4, "ci95": [0.1, 0.8]}}}}}
    (proj / "quality.json").write_text(json.dumps(quality))  # the quality report's contract, as models.quality writes it
    step("-m", "components.lifecycle.evaluate", "--data", str(dataset), "--models", models, "--metrics", "metrics/evaluate.json",
         "--plots", "metrics/plots")
    step("-m", "components.lifecycle.promote", "--models", models, "--dataset-schema", str(dataset / "schema.json"), "--quality", "quality.json")
    step("-m", "components.lifecycle.package")
    decision = json.loads((proj / "metrics" / "promotion.json").read_text())
    package = json.loads((proj / "metrics" / "package.json").read_text())
    store = proj / "data" / "bentoml"
    assert decision["promoted"] and package["tag"] == decision["tag"] and package["store"] == str(store)
    assert json.loads((store / "production" / "asymdiffrec.json").read_text())["tag"] == decision["tag"]
    assert not (home / "bentoml" / "models" / NAME).exists()

    name, version = package["bento"].split(":")
    _assert_bento_holds_what_serving_needs(store / "bentos" / name / version / "src", decision["tag"], store)

    # the model card: in the model's metadata, beside its weights, and at the root of the Bento
    card = package["metadata"]["model_card"]
    train_rows = len(pd.read_parquet(dataset / "train.parquet"))
    assert card["data"]["train"]["rows"] == train_rows and set(card["data"]) == {"train", "validation", "test"}
    assert card["evaluation"]["natural"]["auc"] == pytest.approx(
        json.loads((proj / "metrics" / "evaluate.json").read_text())["models"]["candidate"]["natural"]["auc"])
    assert card["missingness_tax"]["recovered_share"]["auc"] == {"mean": 0.4, "ci95": [0.1, 0.8]}
    text = (store / "bentos" / name / version / "src" / "model_card.md").read_text()
    assert text == (Path(package["path"]) / "model_card.md").read_text()
    assert f"| train | {train_rows} |" in text and "0.40 [0.10, 0.80]" in text and "## Intended use" in text and "## Limits" in text

    # `bentoml serve` from the checkout's root: the service resolves and loads the model from the same store
    probe = ("import bentoml, json, serving.service as s; tag = s.CONFIG.model_tag(); "
             "print(json.dumps({'tag': tag, 'path': str(bentoml.models.get(tag).path)}))")
    served = json.loads(step("-c", probe).strip().splitlines()[-1])
    assert served["tag"] == decision["tag"] and Path(served["path"]).is_relative_to(store)


def test_package_without_a_production_model_says_why(store, tmp_path):
    result = package_step(NAME, tmp_path / "package.json")
    assert result["tag"] is None and "promote" in result["reason"]


def test_thresholds_name_the_bad_field():
    with pytest.raises(ValueError, match="promote has unknown key.*min_gain_over_champoin"):
        Thresholds.from_dict({"min_gain_over_champoin": 0.1})
    with pytest.raises(ValueError, match="promote.metrics"):
        Thresholds.from_dict({"metrics": ["accuracy"]})
    with pytest.raises(ValueError, match="promote.metrics must be a non-empty list"):
        Thresholds.from_dict({"metrics": "auc"})
    with pytest.raises(ValueError, match="promote.min_bucket_rows"):
        Thresholds.from_dict({"min_bucket_rows": 0})
    assert Thresholds.from_dict({"metrics": ["auc", "uauc"]}).metrics == ("auc", "uauc")


def test_the_evaluate_section_is_read_the_same_way_by_the_cli_and_the_kfp_step(dataset, trained, store, tmp_path):
    with pytest.raises(ValueError, match="evaluate has unknown key.*rate"):
        EvaluateConfig.from_dict({"rate": [0.1]})
    with pytest.raises(ValueError, match=r"evaluate.rates has \[1.5\] outside \[0, 1\)"):
        EvaluateConfig.from_dict({"rates": [0.0, 1.5]})
    # run_evaluate is what both the CLI and evaluate_op call: the section's rates and seed reach the scores
    result = run_evaluate(dataset, trained[0], tmp_path / "e.json", tmp_path / "plots", {"rates": [0.0, 0.3], "seed": 3}, NAME)
    written = json.loads((tmp_path / "e.json").read_text())
    assert written["rates"] == [0.0, 0.3] and written["seed"] == 3 and "champion" not in written["models"]
    assert set(written["models"]["candidate"]["robustness"]) == {"0.0", "0.3"}
    assert result["summary"]["metrics"]["candidate_auc"] == written["models"]["candidate"]["natural"]["auc"]


def test_ddp_on_cpu_with_two_gloo_processes(dataset, tmp_path):
    out = tmp_path / "ddp"
    summary = launch_train(dataset, out, MODEL, {**TRAIN, "epochs": 1}, "h.dir", nproc=2)
    assert summary["world_size"] == 2 and summary["device"] == "cpu"
    assert json.loads((out / "train.json").read_text()) == summary
    # the same run in one process: data-parallel training changes the batches each step sees, not what is learnt
    single = train_step(dataset, tmp_path / "single", MODEL, {**TRAIN, "epochs": 1}, "h.dir")
    assert set(summary["metrics"]) == set(single["metrics"]) == {"asymdiffrec_val_auc", "base_val_auc"}
    for name, value in single["metrics"].items():
        assert abs(summary["metrics"][name] - value) < 0.02, (name, summary["metrics"][name], value)
    test = pd.read_parquet(dataset / "test.parquet")
    for folder in ("asymdiffrec", "base"):
        ckpt = load_checkpoint(out / folder)
        p = predict(ckpt.model, ckpt.schema, test)
        assert np.isfinite(p).all() and p.std() > 0  # trained, not constant


def test_ddp_ranks_streaming_their_parquet_shards_learn_what_in_memory_training_learns(dataset, trained, tmp_path):
    """train_loader kind parquet under DDP: each of 2 gloo processes reads its own shard of train.parquet
    in chunks; the schema is the in-memory one and the validation AUCs match in-memory training."""
    out = tmp_path / "streamed"
    loader = {"kind": "parquet", "chunk_rows": 500}
    summary = launch_train(dataset, out, MODEL, TRAIN, "h.dir", nproc=2, loader=loader)
    assert summary["world_size"] == 2 and summary["loader"] == "parquet"
    assert summary["rows"]["train"] == len(pd.read_parquet(dataset / "train.parquet")) // 2 * 2
    in_memory = trained[1]
    assert in_memory["loader"] == "memory"
    for name, value in in_memory["metrics"].items():
        assert abs(summary["metrics"][name] - value) < 0.03, (name, summary["metrics"][name], value)
    streamed, memory = load_checkpoint(out / "asymdiffrec"), load_checkpoint(trained[0] / "asymdiffrec")
    assert streamed.schema.to_json() == memory.schema.to_json()


def test_an_unknown_loader_is_refused_before_training(dataset, tmp_path):
    with pytest.raises(ValueError, match=r"train_loader.kind must be one of \['memory', 'parquet'\], got 'disk'"):
        train_step(dataset, tmp_path / "m", MODEL, TRAIN, loader={"kind": "disk"})
    assert not (tmp_path / "m").exists()
