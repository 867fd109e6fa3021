"""The gap sweep on a small synthetic log, through the real feature jobs, Feast store and join."""
import copy
import json

import pytest

from common.params import load_params
from components.studies.tax_sweep import main, run_sweep
from tests.conftest import ROOT


def _params(tmp_path, **train):
    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    params["tax_sweep"] = {
        "synthetic": {"n_events": 4000, "n_users": 300, "n_items": 150, "days": 20},
        "scales": [0, 1, 4], "seeds": [0, 1], "variants": ["base", "dropout", "asymdiffrec"],
        "train": {"epochs": 1, "batch_size": 256, **train},
    }
    params["model"].update({"hidden": [32, 16], "embed_dim": 8})
    return params


def test_sweep_measures_the_tax_as_gaps_grow_and_resumes_from_its_cache(tmp_path):
    params = _params(tmp_path)
    cache = tmp_path / "cache"
    report = run_sweep(params, cache)
    scales = report["scales"]
    assert list(scales) == ["0", "1", "4"]
    fresh, one, four = (scales[s]["test_missing_rate"] for s in ("0", "1", "4"))
    # closing the gaps closes them: no profile waits for a sync; wider gaps miss more of every gapped view
    assert fresh["user_profile"] == 0 and fresh["item_metadata"] == 0
    for view in ("user_profile", "user_activity", "item_stats"):
        assert fresh[view] <= one[view] <= four[view], view
    assert four["user_activity"] > fresh["user_activity"] + 0.1
    assert scales["4"]["gaps"]["batch_failure_rate"] == pytest.approx(4 * params["feature_jobs"]["batch_failure_rate"])
    for s in ("1", "4"):
        tax = scales[s]["tax"]["auc"]
        assert tax["natural"] < 1 and tax["tax"] == pytest.approx(tax["fresh"] - tax["natural"])
        assert set(scales[s]["recovered"]) == {"dropout", "asymdiffrec"}
        assert set(scales[s]["paired_vs_dropout"]) == {"asymdiffrec"}
        gain, rec = scales[s]["gain_vs_base"]["asymdiffrec"], scales[s]["recovered"]["asymdiffrec"]["auc"]
        assert gain["mean_diff"] == pytest.approx(rec["gain"]) and gain["seeds"] == 2
    assert "tax" not in scales["0"]  # the reference itself
    files = sorted(cache.glob("*.npz"))
    assert len(files) == 2 + 2 * 2 * 3  # base at scale 0, three variants at two scales, two seeds each
    stamps = {f: f.stat().st_mtime_ns for f in files}
    again = run_sweep(params, cache)
    assert again == report and {f: f.stat().st_mtime_ns for f in files} == stamps  # nothing re-trained
    changed = run_sweep(_params(tmp_path, lr=0.001), cache)  # another training setting: other runs
    assert len(list(cache.glob("*.npz"))) == 2 * len(files) and changed["scales"]["1"]["auc"] != report["scales"]["1"]["auc"]


def test_cli_writes_report_and_plot_and_names_bad_settings(tmp_path, capsys):
    params = _params(tmp_path)
    params["tax_sweep"]["scales"] = [1, 2]
    path = tmp_path / "params.yaml"
    path.write_text(json.dumps(params))
    assert main(["--out", str(tmp_path / "r"), "--cache", str(tmp_path / "c"), "--params", str(path)]) == 2
    assert "tax_sweep.scales must hold 0" in capsys.readouterr().err
    params["tax_sweep"].update(scales=[0, 2], variants=["base", "asymdiffrec"])
    path.write_text(json.dumps(params))
    args = ["--out", str(tmp_path / "r"), "--cache", str(tmp_path / "c"), "--params", str(path)]
    assert main([*args, "--only", "3"]) == 2
    assert "--only scales [3.0] are not in tax_sweep.scales" in capsys.readouterr().err
    assert main([*args, "--only", "2"]) == 0  # one worker's share of a split sweep: runs into the cache, no report
    cached = {f: f.stat().st_mtime_ns for f in (tmp_path / "c").glob("*.npz")}
    assert len(cached) == 2 + 2 * 2 and not (tmp_path / "r" / "tax_sweep.json").exists()
    assert main(args) == 0
    assert {f: f.stat().st_mtime_ns for f in (tmp_path / "c").glob("*.npz")} == cached  # the report reads them back
    report = json.loads((tmp_path / "r" / "tax_sweep.json").read_text())
    assert report["scales"]["2"]["recovered"]["asymdiffrec"]["auc"]["ci95"] is not None
    assert (tmp_path / "r" / "tax_sweep.png").stat().st_size > 5000
