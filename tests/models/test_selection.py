import json

import pytest
import yaml

from models.selection import SelectionConfig, chosen_changes, main, run_selection
from models.toy_dataset import write_synthetic_dataset
from tests.conftest import ROOT

SMALL = {"model": {"hidden": [32, 16], "embed_dim": 8}, "train": {"epochs": 2, "batch_size": 128, "lr": 0.003, "progress": False}, "schema": {}}


def test_a_clearly_better_candidate_wins_a_tie_keeps_the_reference_and_test_is_never_read(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", n_events=2500, seed=4)
    (data / "test.parquet").unlink()  # selection must not need the test split at all
    config = SelectionConfig.from_dict({"seeds": [0, 1, 2], "stages": [
        {"name": "rate", "variant": "base", "candidates": {"crippled": {"train": {"lr": 0.00001}}, "usual": {}}},
        {"name": "tie", "variant": "base", "candidates": {"as_is": {}, "same_again": {"model": {"embed_dim": 8}}}},
    ]})
    report = run_selection(data, config, {"model": SMALL["model"], "train": {**SMALL["train"], "lr": 0.003}, "schema": {}})
    rate, tie = report["stages"]
    assert rate["chosen"] == "usual" and rate["candidates"]["usual"]["vs_reference"]["verdict"] == "better"
    assert tie["chosen"] == "as_is" and tie["candidates"]["same_again"]["vs_reference"]["verdict"] == "no difference"
    assert report["chosen"]["train"]["lr"] == 0.003  # the winner of a stage carries on


def test_bad_stage_names_the_field(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"selection.stages\[0\].candidates"):
        SelectionConfig.from_dict({"stages": [{"name": "x", "variant": "base", "candidates": {"only": {}}}]})
    with pytest.raises(ValueError, match=r"selection.stages\[0\].variant"):
        SelectionConfig.from_dict({"stages": [{"name": "x", "variant": "vae", "candidates": {"a": {}, "b": {}}}]})
    with pytest.raises(ValueError, match="a candidate changes only"):
        SelectionConfig.from_dict({"stages": [{"name": "x", "variant": "base", "candidates": {"a": {}, "b": {"optimizer": {}}}}]})
    assert main(["--data", str(tmp_path / "none"), "--out", str(tmp_path), "--params", str(ROOT / "params.yaml")]) == 2
    assert "schema.json" in capsys.readouterr().err


def test_params_hold_what_selection_chose():
    """The protocol: params.yaml's model: and train: sections are the settings selection chose on validation."""
    report = json.loads((ROOT / "reports" / "selection.json").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    config = SelectionConfig.from_dict(params["selection"])
    assert [s["name"] for s in report["stages"]] == [s["name"] for s in config.stages], "re-run `dvc repro selection`"
    chosen = report["chosen"]
    for part in ("model", "train"):
        wrong = {k: (params[part].get(k), v) for k, v in chosen[part].items() if k in params[part] and params[part][k] != v
                 and not (isinstance(v, list) and list(params[part][k]) == v)}
        assert not wrong, f"params.yaml {part}: (has, selection chose) {wrong}"
    assert not chosen_changes(report)["schema"] or chosen["schema"] == {}, "a schema change won: wire it into the train step"
