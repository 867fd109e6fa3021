"""The monitor on replayed traffic of the synthetic source, whose generator is known: a quiet period raises
no alarm; a freshness incident injected into the same period is flagged and names exactly its views.

One small synthetic log (16k events, 1,000 users and 600 items over 40 days, split 60/10/30 by time so the replayed period spans
several days) goes through the real feature jobs, `feast apply` and the point-in-time join; a small
AsymDiffRec serves the replays. The monitor's thresholds are the project's own (params.yaml).

The limits are bands drawn from the reference's own same-length windows, so sensitivity is bounded by how
much a quiet week moves: on this source six-day outages leave the band, four-day ones stay inside it
(the reference holds weeks with as many failed daily runs, or as many new users without a profile yet)."""
from __future__ import annotations

import copy

import pytest

from components.data.synthetic_log import SyntheticConfig, generate
from components.monitor.monitor import MonitorConfig, monitor_step
from components.monitor.replay import OUTCOMES_FILE, ReplayConfig, replay_step
from tests.conftest import make_workspace

PUSHED = ("user_profile", "item_metadata")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, project_params):
    """A synthetic workspace laid out as `dvc repro` lays out data/, with a trained model in data/models."""
    from models import fit, save_checkpoint

    params = copy.deepcopy(project_params)
    params["dataset"]["split"] = {"train": 0.6, "validation": 0.1, "test": 0.3}
    config = SyntheticConfig.from_dict(params["ingest"]["synthetic"], n_events=16_000, n_users=1_000, n_items=600, days=40)
    root = tmp_path_factory.mktemp("synthetic")
    ws = make_workspace(root, generate(config), params)
    features = [{"name": f.name, "view": f.view, "kind": f.kind} for f in ws.schema.features]
    model, schema, _ = fit(ws.splits["train"], ws.splits["validation"], features,
                           {"variant": "asymdiffrec", "hidden": [32, 16]}, {"epochs": 1, "progress": False, "seed": 0})
    save_checkpoint(root / "data" / "models" / "asymdiffrec", model, schema)
    return ws, MonitorConfig.from_dict(params["monitor"]), float(params["feature_jobs"]["batch_lag_hours"])


def _run(synthetic, name: str, incident: dict | None = None) -> dict:
    ws, monitor_config, batch_lag = synthetic
    data = ws.root / "data"
    out = ws.root / name
    replayed = replay_step(data / "datasets", data / "models", data / "features", data / "feast", out,
                           ReplayConfig(split="test", pushed_views=PUSHED, incident=incident), batch_lag, progress=False)
    assert replayed.requests > 4000 and replayed.degraded == 0
    report = monitor_step(out / "serving_log", data / "datasets", data / "models" / "asymdiffrec", out / "reports", out / "summary.json",
                          monitor_config, out / OUTCOMES_FILE)
    assert (out / "reports" / "monitor.json").exists() and (out / "reports" / "monitor_missing_rate.png").exists()
    return report | {"replay": replayed}


def _named_views(report: dict) -> set[str]:
    return {r.split(":")[0].removeprefix("view ") for r in report["reasons"] if r.startswith("view ")}


def test_a_quiet_period_raises_no_alarm(synthetic):
    report = _run(synthetic, "quiet")
    assert report["retrain"] is False and report["reasons"] == [], report["reasons"]
    assert report["band"]["window_days"] >= 4 and report["band"]["windows"] >= 10
    for view, rates in report["missing_rate"].items():  # every view stayed within (or below) its band
        assert rates["served"] <= rates["band"][1] + 0.05, view
    assert report["served_quality"]["joined"] == report["served_samples"]  # labels joined by request id


@pytest.mark.parametrize("views, start_day, days", [
    (("user_activity", "item_stats"), 1, 6),  # the daily aggregate jobs fail for six days running
    (("user_profile",), 0, 6),  # the profile sync is down for six days; its backlog lands when it recovers
])
def test_a_freshness_incident_is_flagged_and_names_its_views(synthetic, views, start_day, days):
    report = _run(synthetic, "-".join(views), {"views": list(views), "start_day": start_day, "days": days})
    replayed = report["replay"]
    assert set(replayed.skipped_runs) | set(replayed.held_rows) == set(views)
    assert report["retrain"] is True, (report["missing_rate"], report["band"], replayed)
    assert _named_views(report) == set(views), report["reasons"]
    assert set(report["flagged"]["views"]) == set(views)


def test_the_monitoring_pipeline_runs_the_same_monitor_through_kfp(synthetic, tmp_path, monkeypatch):
    """The monitoring pipeline's real graph with kfp.local: the reference dataset comes in through its
    importer, the log through its URI, the model's schema from the production model in a BentoML store;
    the report equals the DVC step's on the same inputs, and a quiet log starts no training run."""
    import json
    import shutil

    from kfp import local

    from components.lifecycle import model_registry as registry
    from components.lifecycle.model_store import use_bentoml_home
    from pipelines.monitoring_pipeline import monitoring_pipeline
    from tests.serving.helpers import save_model

    ws, _, _ = synthetic
    quiet = ws.root / "quiet"
    if not (quiet / "reports" / "monitor.json").exists():
        _run(synthetic, "quiet")
    log = tmp_path / "bucket" / "serving-log"  # the layout the deployment's mirror writes: outcomes beside the log files
    shutil.copytree(quiet / "serving_log", log)
    shutil.copy(quiet / OUTCOMES_FILE, log / OUTCOMES_FILE)
    home = tmp_path / "bentoml"
    tag = save_model(home, ws.root / "data" / "models" / "asymdiffrec", "production")
    monkeypatch.setenv("BENTOML_HOME", str(home))
    use_bentoml_home(str(home))
    registry.set_production("asymdiffrec", tag)

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    monitoring_pipeline(serving_log_uri=log.as_uri(), reference_dataset_uri=str(ws.root / "data" / "datasets"),
                        bentoml_home=str(home), kfp_host="http://127.0.0.1:9")
    run = next((tmp_path / "root").iterdir())
    kfp_report = json.loads((run / "monitor-op" / "report" / "monitor.json").read_text())
    dvc_report = json.loads((quiet / "reports" / "monitor.json").read_text())
    assert kfp_report == dvc_report
    assert kfp_report["retrain"] is False and not (run / "retrain-op").exists()
