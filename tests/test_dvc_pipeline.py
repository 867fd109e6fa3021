"""`dvc repro` of the data stages, then of the whole pipeline, in a temporary copy of the repository, on a small synthetic source."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA_STAGES = ["ingest", "features", "feast_apply", "materialize", "dataset", "validate"]
N_EVENTS = 20_000


def _run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid")
    env.pop("ASYMDIFFREC_PARAMS", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> Path:
    """The project's files as a fresh clone would hold them, with a small synthetic source."""
    dest = tmp_path_factory.mktemp("repo")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["ingest"]["source"] = "synthetic"
    params["ingest"]["synthetic"].update(n_events=N_EVENTS, n_users=800, n_items=300, days=40)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], dest)
    _run(["git", "add", "-A"], dest)
    _run(["git", "commit", "-qm", "copy"], dest)
    return dest


def test_dvc_repro_runs_the_data_stages_and_then_nothing(repo_copy):
    out = _run(["dvc", "repro", *DATA_STAGES], repo_copy).stdout
    for stage in DATA_STAGES:
        assert f"Running stage '{stage}'" in out
    report = json.loads((repo_copy / "reports" / "missingness.json").read_text())
    assert sum(split["rows"] for split in report.values()) == N_EVENTS
    validated = repo_copy / "data" / "validated"
    assert sum(len(pd.read_parquet(validated / f"{s}.parquet")) for s in ("train", "validation", "test")) == N_EVENTS
    assert (repo_copy / "data" / "feast" / "online" / "online_store.db").exists()

    again = _run(["dvc", "repro", *DATA_STAGES], repo_copy).stdout
    assert "Running stage" not in again, again

    metrics = _run(["dvc", "metrics", "show", "--json"], repo_copy).stdout
    assert "missing_rate" in metrics


def test_a_changed_param_reruns_only_what_depends_on_it(repo_copy):
    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    params["feature_jobs"]["batch_failure_rate"] = 0.2
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _run(["dvc", "status", "--json", *DATA_STAGES], repo_copy).stdout
    changed = set(json.loads(status))
    assert "features" in changed and "ingest" not in changed
    out = _run(["dvc", "repro", *DATA_STAGES], repo_copy).stdout
    assert "Running stage 'features'" in out and "Running stage 'ingest'" not in out


def test_dvc_repro_runs_the_whole_pipeline_to_a_production_model(repo_copy, tmp_path, monkeypatch):
    """Every stage, train to package included, then an experiment with another training seed."""
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    params["quality"].update(seeds=[0], variants=["base", "asymdiffrec"])
    params["train"]["epochs"] = 1
    params["promote"].update(min_gain_over_base=-1.0, min_bucket_rows=50)  # one epoch on small data: promote what trained
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    out = _run(["dvc", "repro"], repo_copy).stdout
    for stage in ("quality", "train", "evaluate", "promote", "package"):
        assert f"Running stage '{stage}'" in out
    evaluation = json.loads((repo_copy / "metrics" / "evaluate.json").read_text())
    assert set(evaluation["models"]) == {"candidate", "base"}  # no champion before the first promotion
    decision = json.loads((repo_copy / "metrics" / "promotion.json").read_text())
    assert decision["promoted"] and decision["tag"]
    package = json.loads((repo_copy / "metrics" / "package.json").read_text())
    assert package["tag"] == decision["tag"] and package["labels"]["stage"] == "production"
    lock = yaml.safe_load((repo_copy / "dvc.lock").read_text())
    validated_md5 = next(o["md5"] for o in lock["stages"]["validate"]["outs"] if o["path"] == "data/validated")
    assert decision["dataset_hash"] == validated_md5  # the model names the exact data DVC tracked
    assert "candidate" in _run(["dvc", "metrics", "show", "--json"], repo_copy).stdout
    plots = json.loads(_run(["dvc", "plots", "show", "--json"], repo_copy).stdout)["data"]
    roc = plots["roc"][0]["content"]
    assert roc["encoding"]["color"]["field"] == "model"  # one ROC line per model (.dvc/plots/by_model.json)
    assert {row["model"] for row in roc["data"]["values"]} == {"candidate", "base"} and "robustness" in plots

    _run(["git", "add", "-A"], repo_copy)
    _run(["git", "commit", "-qm", "first model"], repo_copy)
    exp = _run(["dvc", "exp", "run", "-S", "train.seed=2"], repo_copy).stdout
    assert "Running stage 'train'" in exp and "Running stage 'evaluate'" in exp
    evaluation = json.loads((repo_copy / "metrics" / "evaluate.json").read_text())
    assert set(evaluation["models"]) == {"candidate", "base", "champion"}  # the first model is now the champion
    decision2 = json.loads((repo_copy / "metrics" / "promotion.json").read_text())
    assert decision2["champion"] == decision["tag"]
    assert decision2["production"] == (decision2["tag"] if decision2["promoted"] else decision["tag"])


def test_dvc_push_and_pull_work_with_the_default_remote(repo_copy):
    _run(["dvc", "push"], repo_copy)
    shutil.rmtree(repo_copy / "data")
    shutil.rmtree(repo_copy / ".dvc" / "cache")
    _run(["dvc", "pull"], repo_copy)
    assert (repo_copy / "data" / "datasets" / "train.parquet").exists()
    assert (repo_copy / "data" / "validated" / "train.parquet").exists()
    assert (repo_copy / "data" / "models" / "asymdiffrec" / "weights.pt").exists()

