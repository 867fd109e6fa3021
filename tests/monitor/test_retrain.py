"""The monitoring pipeline's two pieces that reach outside the pod: starting the training run (the KFP
client replaced by a recorder, the only stand-in: no KFP server runs here) and fetching the mirrored
serving log (through pyarrow's filesystems, on local paths and file:// URIs)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipelines.remote import fetch_folder
from pipelines.retrain import start_training_run, training_parameters


class RecordingClient:
    def __init__(self):
        self.calls = []

    def create_run_from_pipeline_func(self, pipeline_func, arguments=None, run_name=None, experiment_name=None, **kwargs):
        self.calls.append({"pipeline": pipeline_func, "arguments": arguments, "run_name": run_name, "experiment": experiment_name})
        return SimpleNamespace(run_id="run-123")


def test_a_retrain_decision_submits_the_training_pipeline_with_its_arguments():
    from pipelines.asymdiffrec_pipeline import asymdiffrec_pipeline

    client = RecordingClient()
    run_id = start_training_run(client, {"serving_log_uri": "s3://logs/x", "epochs": 3}, "asymdiffrec", ["view item_stats: ..."])
    assert run_id == "run-123" and len(client.calls) == 1
    call = client.calls[0]
    assert call["pipeline"] is asymdiffrec_pipeline
    assert call["arguments"] == {"serving_log_uri": "s3://logs/x", "epochs": 3}
    assert call["experiment"] == "asymdiffrec" and call["run_name"].startswith("asymdiffrec-retrain-")
    assert {"serving_log_uri", "epochs", "promotion_thresholds"} <= training_parameters()


def test_unknown_training_arguments_are_refused_before_anything_is_sent():
    client = RecordingClient()
    with pytest.raises(ValueError, match="unknown parameter.*epoch_count"):
        start_training_run(client, {"epoch_count": 3}, "asymdiffrec", [])
    assert client.calls == []


def test_fetch_folder_copies_a_log_folder_and_names_a_missing_one(tmp_path):
    source = tmp_path / "bucket" / "serving-log"
    (source / "sub").mkdir(parents=True)
    (source / "serving-w1.jsonl").write_text('{"a": 1}\n')
    (source / "sub" / "serving-w2.jsonl.1").write_text('{"b": 2}\n')
    for uri in (str(source), source.as_uri()):
        dest = fetch_folder(uri, tmp_path / f"copy-{uri.count('/')}")
        assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == ["serving-w1.jsonl", "sub/serving-w2.jsonl.1"]
    with pytest.raises(FileNotFoundError, match="nothing at .*absent"):
        fetch_folder(str(tmp_path / "absent"), tmp_path / "x")
    with pytest.raises(ValueError, match="is a file"):
        fetch_folder(str(source / "serving-w1.jsonl"), tmp_path / "y")
