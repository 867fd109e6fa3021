import json

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
    for m in report["models"].values():
        for metric in ("auc", "uauc", "logloss"):
            assert set(m["natural"][metric]) == {"mean", "std"} and 0 <= m["natural"][metric]["mean"]
        assert "0.0" in m["robustness"] and "0.8" in m["robustness"]
        assert m["by_missing_count"]
    md = (out / "quality.md").read_text()
    assert "Paired comparison" in md and "| dropout | auc |" in md
    assert (out / "robustness.png").stat().st_size > 1000


def test_paired_statistics():
    r = paired([0.72, 0.71, 0.73], [0.70, 0.70, 0.70])
    assert abs(r["mean_diff"] - 0.02) < 1e-12 and r["wins"] == 3 and r["t"] > 0
    assert paired([0.3, 0.4], [0.5, 0.5], higher_is_better=False)["wins"] == 2
