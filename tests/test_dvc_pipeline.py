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

from models.metrics import METRICS

ROOT = Path(__file__).resolve().parents[1]
DATA_STAGES = ["ingest", "features", "feast_apply", "materialize", "dataset", "validate", "data_summary"]
FEAST_STAGES = {"feast_apply", "materialize", "dataset", "validate"}  # the stages that open the Feast config
METRICS_FILES = {"metrics/data_summary.json", "metrics/model_summary.json", "metrics/monitor_summary.json", "metrics/quality_summary.json"}
MAX_COLUMNS = 40  # what a reader can still scan in `dvc metrics show` / `dvc exp show --only-changed`
N_EVENTS = 20_000


def _run(
    cmd: list[str], cwd: Path, timeout: int = 600, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env['PATH']}"
    full_env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid")
    for name in ("ASYMDIFFREC_PARAMS", "FEAST_FS_YAML", "REDIS_CONNECTION_STRING"):
        full_env.pop(name, None)
    full_env.update(env or {}, DVC_NO_ANALYTICS="1")
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def _set_param(repo: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _changed_stages(repo: Path, *targets: str) -> set[str]:
    return set(json.loads(_run(["dvc", "status", "--json", *targets], repo).stdout or "{}"))


def _metrics(repo: Path) -> dict[str, dict]:
    """`dvc metrics show --json` of the workspace: {metrics file: its values, None before its stage ran}."""
    shown = json.loads(_run(["dvc", "metrics", "show", "--json"], repo).stdout)
    return {path: entry.get("data") for path, entry in shown[""]["data"].items()}


def _columns(node) -> list[str]:
    """The column names DVC flattens a metrics file into."""
    if not isinstance(node, dict):
        return [""]
    return [f"{k}.{c}" if c else k for k, v in node.items() for c in _columns(v)]


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

    metrics = _metrics(repo_copy)
    assert set(metrics) == METRICS_FILES  # the summaries only: the full reports are not metrics
    data = metrics["metrics/data_summary.json"]
    assert data["validation"] == {"success": True, "failed": 0}
    assert data["missing_rate"] == {split: v["missing_rate"] for split, v in report.items()}


def test_a_changed_param_reruns_only_what_depends_on_it(repo_copy):
    """What a changed param re-runs is DVC's graph, which `--dry` shows without spending the minute the
    data stages take again (the first test already ran them). A dry run names the first stage only: the
    later ones re-run when its outputs change, which a dry run cannot know."""
    before = (repo_copy / "params.yaml").read_text()
    _set_param(repo_copy, "feature_jobs", "batch_failure_rate", 0.2)
    try:
        changed = _changed_stages(repo_copy, *DATA_STAGES)
        assert "features" in changed and "ingest" not in changed, changed
        out = _run(["dvc", "repro", "--dry", *DATA_STAGES], repo_copy).stdout
        assert "Running stage 'features'" in out and "Running stage 'ingest'" not in out, out
    finally:
        (repo_copy / "params.yaml").write_text(before)
    assert not _changed_stages(repo_copy, *DATA_STAGES)


def test_the_feast_config_is_a_param_of_the_stages_that_open_it(repo_copy):
    """Choosing Redis is `feature_store.config` in params.yaml, so DVC re-runs what reads the config:
    the Feast stages, and the feature jobs, which check the engine against it (and on Spark run in the
    session it describes); not the ingest."""
    before = (repo_copy / "params.yaml").read_text()
    _set_param(repo_copy, "feature_store", "config", "feature_store.redis.yaml")
    try:
        changed = _changed_stages(repo_copy, *DATA_STAGES)
        assert FEAST_STAGES | {"features"} <= changed and "ingest" not in changed, changed
    finally:
        (repo_copy / "params.yaml").write_text(before)
    assert not _changed_stages(repo_copy, *DATA_STAGES)


def test_fs_yaml_disagreeing_with_params_fails_the_step(repo_copy):
    """FEAST_FS_YAML cannot switch the pipeline's store behind DVC's back. DVC does not see the
    environment, so with nothing changed it runs no step (and writes nothing anywhere); whenever
    materialize does run, the step refuses and names the param to set."""
    fs_yaml = {"FEAST_FS_YAML": "feature_store.redis.yaml"}
    skipped = _run(["dvc", "repro", "materialize"], repo_copy, env=fs_yaml)
    assert "Running stage" not in skipped.stdout
    forced = _run(["dvc", "repro", "--force", "--single-item", "materialize"], repo_copy, env=fs_yaml, check=False)
    assert forced.returncode != 0
    assert "feature_store.config" in forced.stderr, forced.stderr  # the message names the param to set
    _run(["dvc", "checkout", "materialize"], repo_copy)  # DVC removed the outputs before the failed run
    assert not _changed_stages(repo_copy, *DATA_STAGES)


def test_materialize_into_redis_when_params_say_so(repo_copy, redis_url):
    import redis

    host, port = redis_url.split(":")
    saved = {name: (repo_copy / name).read_text() for name in ("params.yaml", "dvc.lock")}
    _set_param(repo_copy, "feature_store", "config", "feature_store.redis.yaml")
    try:
        out = _run(["dvc", "repro", "materialize"], repo_copy, env={"REDIS_CONNECTION_STRING": redis_url}).stdout
        assert "Running stage 'feast_apply'" in out and "Running stage 'materialize'" in out
        assert redis.Redis(host=host, port=int(port)).dbsize() > 0
    finally:
        for name, text in saved.items():
            (repo_copy / name).write_text(text)
    _run(["dvc", "checkout", "feast_apply", "materialize"], repo_copy)  # back to the SQLite store
    assert not _changed_stages(repo_copy, *DATA_STAGES)


def test_dvc_repro_runs_the_whole_pipeline_to_a_production_model(repo_copy, tmp_path, monkeypatch):
    """Every stage, train to package included, then an experiment with another training seed."""
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    params["quality"].update(seeds=[0, 1], variants=["base", "asymdiffrec"], second_base=None)
    params["selection"].update(seeds=[0, 1], stages=[{"name": "embedding size", "variant": "base", "candidates": {
        "as_is": {}, "embed_dim_8": {"model": {"embed_dim": 8}}}}])
    params["tax_sweep"].update(synthetic={"n_events": 3000, "n_users": 300, "n_items": 150, "days": 20}, scales=[0, 1], seeds=[0, 1],
                               variants=["base", "asymdiffrec"], train={"epochs": 1})
    params["train"]["epochs"] = 1
    # one epoch on small data: promote what trained (its shadow is recorded, not held against it)
    params["promote"].update(min_gain_over_base=-1.0, min_bucket_rows=50, shadow_min_correlation=None, shadow_max_auc_drop=None)
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    out = _run(["dvc", "repro"], repo_copy).stdout
    for stage in ("fresh", "selection", "quality", "tax_sweep", "train", "evaluate", "replay", "monitor", "promote", "model_summary", "package"):
        assert f"Running stage '{stage}'" in out
    evaluation = json.loads((repo_copy / "metrics" / "evaluate.json").read_text())
    assert set(evaluation["models"]) == {"candidate", "base"}  # no champion before the first promotion
    decision = json.loads((repo_copy / "metrics" / "promotion.json").read_text())
    assert decision["promoted"] and decision["tag"]
    shadow = decision["checks"]["shadow"]  # the candidate against the base model on the replayed requests
    assert shadow["reference_model"] == "base" and shadow["samples"] > 1000 and shadow["served"]["joined"] == shadow["samples"]
    monitored = json.loads((repo_copy / "reports" / "monitor.json").read_text())
    assert monitored["served_samples"] == shadow["samples"] and isinstance(monitored["retrain"], bool)
    assert (repo_copy / "reports" / "monitor_missing_rate.png").exists() and (repo_copy / "reports" / "monitor_psi.png").exists()
    package = json.loads((repo_copy / "metrics" / "package.json").read_text())
    assert package["tag"] == decision["tag"] and package["labels"]["stage"] == "production"
    quality = json.loads((repo_copy / "reports" / "quality.json").read_text())
    card = package["metadata"]["model_card"]  # the promoted model carries the tax the quality stage measured
    assert card["missingness_tax"]["tax"]["auc"]["tax"] == pytest.approx(quality["tax"]["auc"]["tax"])
    assert package["model_card"] == "model_card.md"
    selection = json.loads((repo_copy / "reports" / "selection.json").read_text())
    assert [s["name"] for s in selection["stages"]] == ["embedding size"] and selection["seeds"] == [0, 1]
    lock = yaml.safe_load((repo_copy / "dvc.lock").read_text())
    validated_md5 = next(o["md5"] for o in lock["stages"]["validate"]["outs"] if o["path"] == "data/validated")
    assert decision["dataset_hash"] == validated_md5  # the model names the exact data DVC tracked
    metrics = _metrics(repo_copy)
    assert set(metrics) == METRICS_FILES
    model = metrics["metrics/model_summary.json"]
    assert model["test"]["candidate"] == {m: evaluation["models"]["candidate"]["natural"][m] for m in METRICS}
    assert set(model["test"]) == {"candidate", "base"}
    assert model["promotion"] == {"promoted": decision["promoted"], "tag": decision["tag"]}
    plots = json.loads(_run(["dvc", "plots", "show", "--json"], repo_copy).stdout)["data"]
    roc = plots["roc"][0]["content"]
    assert roc["encoding"]["color"]["field"] == "model"  # one ROC line per model (.dvc/plots/by_model.json)
    assert {row["model"] for row in roc["data"]["values"]} == {"candidate", "base"} and "robustness" in plots
    sweep = json.loads((repo_copy / "reports" / "tax_sweep.json").read_text())
    assert list(sweep["scales"]) == ["0", "1"] and "asymdiffrec" in sweep["scales"]["1"]["recovered"]
    assert (repo_copy / "reports" / "tax_sweep.png").exists()

    _run(["git", "add", "-A"], repo_copy)
    _run(["git", "commit", "-qm", "first model"], repo_copy)
    exp = _run(["dvc", "exp", "run", "-S", "train.seed=2"], repo_copy).stdout
    assert "Running stage 'train'" in exp and "Running stage 'evaluate'" in exp
    evaluation = json.loads((repo_copy / "metrics" / "evaluate.json").read_text())
    assert set(evaluation["models"]) == {"candidate", "base", "champion"}  # the first model is now the champion
    decision2 = json.loads((repo_copy / "metrics" / "promotion.json").read_text())
    assert decision2["champion"] == decision["tag"]
    assert decision2["production"] == (decision2["tag"] if decision2["promoted"] else decision["tag"])
    metrics = _metrics(repo_copy)
    assert set(metrics["metrics/model_summary.json"]["test"]) == {"candidate", "base", "champion"}
    columns = {c for values in metrics.values() for c in _columns(values)}  # one table: the union of the files' keys
    assert len(columns) <= MAX_COLUMNS, sorted(columns)
    shown = _run(["dvc", "exp", "show", "--only-changed", "--csv"], repo_copy).stdout
    header = shown.splitlines()[0].split(",")
    assert "train.seed" in header and "test.candidate.auc" in header
    assert len(header) <= MAX_COLUMNS, header


def test_dvc_push_and_pull_work_with_the_default_remote(repo_copy):
    _run(["dvc", "push"], repo_copy)
    shutil.rmtree(repo_copy / "data")
    shutil.rmtree(repo_copy / ".dvc" / "cache")
    _run(["dvc", "pull"], repo_copy)
    assert (repo_copy / "data" / "datasets" / "train.parquet").exists()
    assert (repo_copy / "data" / "validated" / "train.parquet").exists()
    assert (repo_copy / "data" / "models" / "asymdiffrec" / "weights.pt").exists()

