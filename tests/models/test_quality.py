import json

import numpy as np
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
    assert set(report["models"]) == {"base", "dropout", "gaussian", "asymdiffrec", "asymdiffrec_no_aux", "asymdiffrec_no_rec"}
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
    comparison = report["comparisons"]["base"]["auc"]
    diffs = [a["natural"]["auc"] - b["natural"]["auc"] for a, b in zip(report["runs"]["asymdiffrec"], report["runs"]["base"])]
    assert comparison["mean_diff"] == pytest.approx(np.mean(diffs)) and comparison["seeds"] == 2
    md = (out / "quality.md").read_text()
    assert "Paired comparison" in md and "| dropout | auc |" in md
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
