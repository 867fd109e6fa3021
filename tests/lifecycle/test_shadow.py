"""Shadow evaluation on a real serving log: test-split requests served in time order through the service's
path (`serving.ranker.Ranker` on an SQLite online store materialized at three times, so ages vary and
views expire) and logged with the service's own `serving_record`. Rebuilt samples must be the served
ones: the serving model rescoring them gives the logged scores, and a second model with another
vocabulary gives the scores it gave online on the same requests."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from datetime import timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.data.feature_store import DEFAULT_FS_YAML, feature_time_range, prepare_online_store
from components.lifecycle.shadow import CHALLENGER, REFERENCE, score_frame, served_frame, shadow_compare
from components.monitor.replay import requests_of
from feature_repo.settings import REPO_DIR
from models.metrics import all_metrics
from serving.serving_log import read_serving_log

EVERY = 12  # every 12th test request: ~400 requests spread over the test split's three weeks
RUN_DAYS = range(0, 22, 3)  # materializations at 07:00 every third day: 24 h TTLs expire in between


@dataclass
class ShadowLog:
    records: list[dict]
    outcomes: pd.DataFrame
    features_dir: Path
    contract: object
    serving: Path  # the model that served (and was logged)
    other: Path  # a second model, another variant with another vocabulary
    other_online: dict[str, np.ndarray]  # its scores through the online path, per request id
    log_dir: Path  # the serving log folder the records were read from


@pytest.fixture(scope="module")
def other_model(workspace, tmp_path_factory) -> Path:
    """A small base model on part of the training split, its vocabulary fitted with min_count=5."""
    from models import fit, save_checkpoint

    features = [{"name": f.name, "view": f.view, "kind": f.kind} for f in workspace.schema.features]
    model, schema, _ = fit(workspace.splits["train"].iloc[:20_000], None, features, {"variant": "base", "hidden": [16]},
                           {"epochs": 1, "progress": False, "seed": 1}, schema_options={"min_count": 5})
    return save_checkpoint(tmp_path_factory.mktemp("other"), model, schema)


@pytest.fixture(scope="module")
def shadow_log(workspace, checkpoint, other_model, tmp_path_factory) -> ShadowLog:
    from serving.config import ServingConfig
    from serving.ranker import Ranker
    from serving.serving_log import ServingLog, serving_record

    out = tmp_path_factory.mktemp("shadow")
    store_dir = out / "store"
    store_dir.mkdir()
    shutil.copyfile(workspace.root / "data" / "feast" / "registry.db", store_dir / "registry.db")
    store = prepare_online_store(REPO_DIR, DEFAULT_FS_YAML, work_dir=store_dir)
    config = replace(ServingConfig.load(), store_check_seconds=0)  # materialization changes the store between requests
    serving = Ranker(checkpoint, store, "asymdiffrec:serving", config)
    other = Ranker(other_model, store, "asymdiffrec:other", config)
    requests = requests_of(workspace.splits["test"])[::EVERY]
    first = requests[0]["event_timestamp"].iloc[0].to_pydatetime()
    first = first.replace(hour=7, minute=0, second=0) - timedelta(days=int(first.hour < 7))
    runs = [first + timedelta(days=d) for d in RUN_DAYS]
    since = feature_time_range(workspace.root / "data" / "features")[0] - timedelta(seconds=1)
    log = ServingLog(out / "serving_log", "w0", 2**30, 1)
    outcomes, other_online = [], {}
    for group in requests:
        when = group["event_timestamp"].iloc[0].to_pydatetime().astimezone(timezone.utc)
        when += timedelta(microseconds=int(group["event_id"].iloc[0]) % 1_000_000)  # sub-second request times
        while runs and runs[0] <= when:
            store.materialize(start_date=since, end_date=runs[0])
            since = runs.pop(0)
        user, items = int(group["user_id"].iloc[0]), [int(i) for i in group["item_id"]]
        result = serving.rank(user, items, when)
        request_id = f"req-{int(group['event_id'].iloc[0])}"
        log.write(serving_record(
            request_id=request_id, endpoint="rank", request_time=when, model=serving.model_tag, user_ids=np.full(len(items), user),
            item_ids=items, scores=result.scores, samples=result.samples, single_fields=serving.online.single_field_names,
            stored_views=serving.online.stored_views,
        ))
        other_online[request_id] = other.score(user, items, when)[0]
        outcomes += [{"request_id": request_id, "item_id": i, "label": int(y)} for i, y in zip(items, group["label"])]
    log.flush()
    return ShadowLog(list(read_serving_log(out / "serving_log")), pd.DataFrame(outcomes), workspace.root / "data" / "features",
                     serving.schema, checkpoint, other_model, other_online, out / "serving_log")


def test_the_serving_model_rescoring_the_rebuilt_samples_gives_the_logged_scores(shadow_log):
    frame = served_frame(shadow_log.records, shadow_log.features_dir, shadow_log.contract)
    assert len(frame) == sum(len(r["item_ids"]) for r in shadow_log.records)
    # the log is worth the test: ages vary and every stored view is both served and missing somewhere
    for view, info in shadow_log.contract.views.items():
        logged = np.concatenate([r["missing"][view] for r in shadow_log.records])
        np.testing.assert_array_equal(frame[f"missing_view__{view}"].to_numpy(), logged, err_msg=view)
        if info.get("timestamp_column"):
            assert 0 < logged.mean() < 1, view
            ages = [a for r in shadow_log.records for a in r["age_s"][view] if a is not None]
            assert len(set(ages)) > 5, view
    _, scores = score_frame(shadow_log.serving, frame)
    assert np.abs(scores - frame["served_score"].to_numpy()).max() < 1e-5
    # and the ids the serving model encodes are the ones it logged
    from models import load_checkpoint

    schema = load_checkpoint(shadow_log.serving).schema
    single = schema.encode(frame, with_label=False).single.numpy()
    for j, i in enumerate(schema.single_fields):
        logged = np.concatenate([r["ids"][schema.fields[i].name] for r in shadow_log.records])
        np.testing.assert_array_equal(single[:, j], logged, err_msg=schema.fields[i].name)


def test_a_model_against_itself_agrees_fully_and_against_another_as_it_scored_online(shadow_log):
    same = shadow_compare(shadow_log.records, shadow_log.features_dir, shadow_log.contract, shadow_log.serving, shadow_log.serving,
                          shadow_log.outcomes)
    assert same["requests"] == len(shadow_log.records) and same["ranked_requests"] > 50
    assert same["score_pearson"] == pytest.approx(1.0) and same["score_spearman"] == pytest.approx(1.0)
    assert same["top10_overlap"] == 1.0 and same["request_spearman"] == pytest.approx(1.0)
    assert same["served"]["delta"] == {"auc": 0.0, "uauc": 0.0, "logloss": 0.0}

    report = shadow_compare(shadow_log.records, shadow_log.features_dir, shadow_log.contract, shadow_log.other, shadow_log.serving,
                            shadow_log.outcomes, top_k=1)
    assert 0 < report["score_pearson"] < 0.999 and report["score_spearman"] < 0.999
    assert 0 <= report["top1_overlap"] < 1
    # the served traffic's AUCs, computed directly: the logged scores, and the other model's online scores
    served = report["served"]
    assert served["joined"] == report["samples"]
    labels = shadow_log.outcomes.set_index(["request_id", "item_id"])["label"]
    keys = [(r["request_id"], i) for r in shadow_log.records for i in r["item_ids"]]
    y = labels.loc[keys].to_numpy(float)
    users = np.concatenate([r["user_ids"] for r in shadow_log.records])
    logged = np.concatenate([r["scores"] for r in shadow_log.records])
    online_other = np.concatenate([shadow_log.other_online[r["request_id"]] for r in shadow_log.records])
    for name, scores in ((REFERENCE, logged), (CHALLENGER, online_other)):
        direct = all_metrics(y, scores, users)
        assert served[name]["auc"] == pytest.approx(direct["auc"], abs=1e-9), name
        assert served[name]["uauc"] == pytest.approx(direct["uauc"], abs=1e-9), name
    assert served["delta"]["auc"] == pytest.approx(served[CHALLENGER]["auc"] - served[REFERENCE]["auc"])
    frame = served_frame(shadow_log.records, shadow_log.features_dir, shadow_log.contract)
    assert np.abs(score_frame(shadow_log.other, frame)[1] - online_other).max() < 1e-5


def test_a_served_row_absent_from_the_feature_tables_is_named(shadow_log, tmp_path):
    record = next(r for r in shadow_log.records if 0 in r["missing"]["user_profile"])
    user = record["user_ids"][record["missing"]["user_profile"].index(0)]
    shutil.copytree(shadow_log.features_dir, tmp_path / "features")
    table = pd.read_parquet(tmp_path / "features" / "user_profile.parquet")
    table[table["user_id"] != user].to_parquet(tmp_path / "features" / "user_profile.parquet")
    with pytest.raises(ValueError, match=rf"view 'user_profile': no row of user_id={user} available at .*newer than the log"):
        served_frame(shadow_log.records, tmp_path / "features", shadow_log.contract)


def test_no_outcomes_reports_agreement_only(shadow_log):
    report = shadow_compare(shadow_log.records[:50], shadow_log.features_dir, shadow_log.contract, shadow_log.serving,
                            shadow_log.other, None)
    assert report["served"] == {"joined": 0} and report["requests"] == 50


def test_the_promote_gate_records_the_shadow_and_refuses_a_candidate_that_disagrees(shadow_log, workspace, tmp_path):
    from components.lifecycle.promote import ShadowInputs, Thresholds, shadow_check

    outcomes = tmp_path / "outcomes.jsonl"
    shadow_log.outcomes.to_json(outcomes, orient="records", lines=True)
    inputs = ShadowInputs(shadow_log.log_dir, shadow_log.features_dir, workspace.root / "data" / "datasets" / "schema.json", outcomes)

    report, reasons = shadow_check(inputs, shadow_log.serving, shadow_log.serving, "champion", Thresholds())
    assert reasons == [] and report["passed"] is True and report["reference_model"] == "champion"
    assert report["score_spearman"] == pytest.approx(1.0) and report["served"]["joined"] == report["samples"] > 0

    report, reasons = shadow_check(inputs, shadow_log.other, shadow_log.serving, "champion", Thresholds(shadow_min_correlation=1.01))
    assert report["passed"] is False and len(reasons) == 1 and "shadow_min_correlation" in reasons[0]
    delta = report["served"]["delta"]["auc"]
    report, reasons = shadow_check(inputs, shadow_log.other, shadow_log.serving, "champion",
                                   Thresholds(shadow_min_correlation=None, shadow_max_auc_drop=-delta - 1e-6))
    assert report["passed"] is False and len(reasons) == 1 and "shadow_max_auc_drop" in reasons[0]
    report, reasons = shadow_check(inputs, shadow_log.other, shadow_log.serving, "champion",
                                   Thresholds(shadow_min_correlation=None, shadow_max_auc_drop=None))
    assert report["passed"] is True and reasons == []

    assert shadow_check(None, shadow_log.other, shadow_log.serving, "champion", Thresholds())[0]["skipped"]
    assert shadow_check(inputs, shadow_log.other, None, "base", Thresholds())[0]["skipped"] == "no base model to compare with"
