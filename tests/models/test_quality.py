import json

import numpy as np
import pandas as pd
import pytest

from models.quality import main, paired
from models.toy_dataset import write_synthetic_dataset


def test_quality_report_end_to_end(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", n_events=1500, seed=1)
    out = tmp_path / "reports"
    rc = main(["--data", str(data), "--out", str(out), "--seeds", "0", "1", "--epochs", "1",
               "--model-config", '{"hidden": [32, 16], "embed_dim": 8}', "--train-config", '{"batch_size": 256}'])
    assert rc == 0
    report = json.loads((out / "quality.json").read_text())
    assert report["seeds"] == [0, 1]
    assert set(report["models"]) == {"base", "dropout", "gaussian", "asymdiffrec", "asymdiffrec_no_aux", "asymdiffrec_no_rec", "multimask"}
    for name, m in report["models"].items():
        runs = [run["natural"] for run in report["runs"][name]]
        assert len(runs) == 2
        for metric in ("auc", "uauc", "logloss"):
            values = [run[metric] for run in runs]
            assert m["natural"][metric]["mean"] == pytest.approx(np.mean(values)), (name, metric)
            assert m["natural"][metric]["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12), (name, metric)
            assert 0 < m["natural"][metric]["mean"] < (1 if metric != "logloss" else 5)
        # No extra missingness is the natural test split: the curve starts where the natural metric is.
        assert m["robustness"]["0.0"]["auc"]["mean"] == pytest.approx(m["natural"]["auc"]["mean"])
        assert "0.8" in m["robustness"] and m["by_missing_count"]
    comparison = report["comparisons"]["base"]["paired"]["auc"]
    diffs = [a["natural"]["auc"] - b["natural"]["auc"] for a, b in zip(report["runs"]["asymdiffrec"], report["runs"]["base"])]
    assert comparison["mean_diff"] == pytest.approx(np.mean(diffs)) and comparison["seeds"] == 2
    md = (out / "quality.md").read_text()
    assert "Paired comparison" in md and "| dropout | auc |" in md
    assert comparison["ci95"][0] < comparison["mean_diff"] < comparison["ci95"][1]
    assert (out / "robustness.png").stat().st_size > 1000


def test_paired_statistics():
    r = paired([0.72, 0.71, 0.73], [0.70, 0.70, 0.70])
    assert abs(r["mean_diff"] - 0.02) < 1e-12 and r["wins"] == 3 and r["t"] > 0
    assert paired([0.3, 0.4], [0.5, 0.5], higher_is_better=False)["wins"] == 2


def test_quality_report_measures_a_model_that_learns(tmp_path):
    """Four epochs on a toy set whose clicks follow a few features: the base model must rank well
    above chance, and lose AUC as extra features go missing."""
    data = write_synthetic_dataset(tmp_path / "data", n_events=4000, seed=1)
    out = tmp_path / "reports"
    rc = main(["--data", str(data), "--out", str(out), "--seeds", "0", "--epochs", "4", "--variants", "base",
               "--model-config", '{"hidden": [32, 16], "embed_dim": 8}', "--train-config", '{"batch_size": 128, "lr": 0.003}'])
    assert rc == 0
    base = json.loads((out / "quality.json").read_text())["models"]["base"]
    assert base["natural"]["auc"]["mean"] > 0.8
    assert base["natural"]["logloss"]["mean"] < 0.6
    assert base["robustness"]["0.8"]["auc"]["mean"] < base["robustness"]["0.0"]["auc"]["mean"] - 0.05


def test_tax_and_recovered_share_from_a_fresh_dataset_of_the_same_events(tmp_path):
    """The fresh toy set is the same events with no view ever missing; at test time the sharp user
    aggregate is often missing. The tax is real, and each share is (method - base) / tax by seed."""
    missing = {"user_activity": 0.05}
    natural = write_synthetic_dataset(tmp_path / "natural", n_events=3000, seed=3, missing=missing, test_missing={"user_activity": 0.7})
    fresh = write_synthetic_dataset(tmp_path / "fresh", n_events=3000, seed=3,
                                    missing={v: 0.0 for v in ("user_profile", "user_activity", "item_metadata", "item_stats")})
    out = tmp_path / "reports"
    rc = main(["--data", str(natural), "--fresh", str(fresh), "--out", str(out), "--metrics", str(tmp_path / "summary.json"),
               "--seeds", "0", "1", "2", "--epochs", "2", "--variants", "base", "dropout", "asymdiffrec", "--second-base", "none",
               "--model-config", '{"hidden": [32, 16], "embed_dim": 8}', "--train-config", '{"batch_size": 128, "lr": 0.003}'])
    assert rc == 0
    report = json.loads((out / "quality.json").read_text())
    tax = report["tax"]
    assert tax["auc"]["tax"] > 0.005 and tax["auc"]["ci95"][0] > 0, tax["auc"]
    test = pd.read_parquet(natural / "test.parquet")
    activity = tax["by_view"]["user_activity"]  # the slice of test rows whose user activity view is missing
    assert activity["rows"] == int(test["missing_view__user_activity"].sum()) and activity["tax"] > 0
    runs = report["runs"]
    for name in ("dropout", "asymdiffrec"):
        gain = np.mean([m["natural"]["auc"] - b["natural"]["auc"] for m, b in zip(runs[name], runs["base"])])
        rec = report["models"][name]["recovered"]["auc"]
        assert rec["mean"] == pytest.approx(gain / tax["auc"]["tax"], rel=1e-9)
        lo, hi = rec["ci95"]
        assert lo < rec["mean"] < hi
    assert "base" not in report["models"]["base"].get("recovered", {})
    md = (out / "quality.md").read_text()
    assert "missingness tax" in md and "recovered share" in md
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["tax_auc"] == pytest.approx(tax["auc"]["tax"], abs=1e-5) and "recovered_auc_asymdiffrec" in summary


def test_a_fresh_dataset_of_other_events_is_refused(tmp_path, capsys):
    natural = write_synthetic_dataset(tmp_path / "natural", n_events=1500, seed=1)
    other = write_synthetic_dataset(tmp_path / "other", n_events=1500, seed=2)
    rc = main(["--data", str(natural), "--fresh", str(other), "--out", str(tmp_path / "r"), "--seeds", "0", "1",
               "--epochs", "1", "--variants", "base", "--second-base", "none"])
    assert rc == 2 and "same order" in capsys.readouterr().err


def test_a_slice_the_fresh_store_does_not_help_shows_gains_not_shares():
    """A share of a negative tax flips sign and means nothing: such a slice's cells give the gain."""
    from models.quality import _tax_lines

    def metric(fresh, natural):
        return {"fresh": fresh, "natural": natural, "tax": fresh - natural, "ci95": [0.001, 0.003], "wins": 5}

    tax = {"auc": metric(0.70, 0.68), "uauc": metric(0.70, 0.68),
           "by_view": {"user_profile": {"rows": 400, "fresh": 0.66, "natural": 0.67, "tax": -0.01},
                       "item_stats": {"rows": 300, "fresh": 0.62, "natural": 0.58, "tax": 0.04}}}
    share = {"mean": 0.25, "ci95": [0.1, 0.4], "gain": 0.005, "tax": 0.02}
    models = {"dropout": {"recovered": {"auc": share, "uauc": share, "by_missing_count": {},
                                        "by_view": {"user_profile": {"mean": -0.3, "ci95": [-0.5, -0.1], "gain": 0.003, "tax": -0.01},
                                                    "item_stats": {"mean": 0.5, "ci95": [0.2, 0.8], "gain": 0.02, "tax": 0.04}}}}}
    rows = {line.split(" | ")[0]: line for line in _tax_lines(tax, models, "tax") if line.startswith("| user_profile") or line.startswith("| item_stats")}
    assert rows["| user_profile"].endswith("| (+0.0030) |") and "-0.30" not in rows["| user_profile"]
    assert rows["| item_stats"].endswith("| 0.50 [0.20, 0.80] |")
