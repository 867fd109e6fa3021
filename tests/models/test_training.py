import json

import numpy as np
import pytest
import torch

from models.asymdiffrec import build_model
from models.checkpoint import load_checkpoint, save_checkpoint
from models.metrics import auc
from models.predict import evaluate, predict, predict_batch
from models.schema import FeatureSchema
from models.toy_dataset import make_synthetic_dataset
from models.train import fit, train

FAST = {"epochs": 2, "batch_size": 256, "progress": False}
SMALL = {"hidden": [64, 32], "embed_dim": 8}


@pytest.mark.parametrize("variant", ["asymdiffrec", "multimask"])
def test_robust_variants_beat_base_where_the_signal_field_is_missing(variant):
    # The user aggregate view carries the strongest signal and is rarely missing in training but
    # often at test time; the profile fields predict what it would have said.
    data = make_synthetic_dataset(
        n_events=8000, seed=0, missing={"user_activity": 0.02, "item_stats": 0.02}, test_missing={"user_activity": 0.6}
    )
    schema = FeatureSchema.fit(data.train, data.features)
    train_b, valid_b, test_b = (schema.encode(f) for f in (data.train, data.validation, data.test))
    field = schema.names.index("user_mean_rating_30d")
    missing = test_b.mask[:, field].numpy()
    y = test_b.label.numpy()
    scores = {}
    for name in ("base", variant):
        model = build_model(schema, {"variant": name}, seed=0)
        train(model, train_b, valid_b, {"epochs": 4, "batch_size": 256, "lr": 1e-3, "progress": False, "patience": 4})
        p = predict_batch(model, test_b)
        scores[name] = auc(y[missing], p[missing])
    assert scores[variant] > scores["base"] + 0.01, scores


def test_checkpoint_roundtrip_gives_identical_predictions(dataset, tmp_path):
    model, schema, result = fit(dataset.train, dataset.validation, dataset.features, {"variant": "asymdiffrec", **SMALL}, FAST)
    save_checkpoint(tmp_path / "ckpt", model, schema, FAST, {"val_auc": result.best_val_auc})
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.model_config == model.cfg and ckpt.schema == schema
    assert ckpt.metrics["val_auc"] == result.best_val_auc
    a = predict(model, schema, dataset.test)
    b = predict(ckpt.model, ckpt.schema, dataset.test)
    assert np.array_equal(a, b)


def test_checkpoint_rejects_pickled_objects(tmp_path, dataset, schema):
    model = build_model(schema, {"variant": "base", **SMALL})
    save_checkpoint(tmp_path / "ckpt", model, schema)
    torch.save({"evil": object()}, tmp_path / "ckpt" / "weights.pt")
    with pytest.raises(Exception):
        load_checkpoint(tmp_path / "ckpt")


def test_same_seed_same_metrics(dataset):
    runs = []
    for _ in range(2):
        model, schema, result = fit(dataset.train, dataset.validation, dataset.features, {"variant": "asymdiffrec", **SMALL}, {**FAST, "seed": 3})
        runs.append((result.history, evaluate(model, schema.encode(dataset.test), rates=(0.0, 0.5))))
    assert json.dumps(runs[0], sort_keys=True) == json.dumps(runs[1], sort_keys=True)


def test_different_seed_differs(dataset):
    p = []
    for seed in (0, 1):
        model, schema, _ = fit(dataset.train, None, dataset.features, {"variant": "dropout", **SMALL}, {**FAST, "epochs": 1, "seed": seed})
        p.append(predict(model, schema, dataset.test))
    assert not np.array_equal(p[0], p[1])


def test_early_stopping_keeps_best_epoch(dataset, schema):
    model = build_model(schema, {"variant": "base", **SMALL})
    result = train(model, schema.encode(dataset.train), schema.encode(dataset.validation), {**FAST, "epochs": 6, "patience": 1, "lr": 0.05})
    aucs = [h["val_auc"] for h in result.history]
    assert result.best_val_auc == max(aucs) and aucs[result.best_epoch] == result.best_val_auc
    assert len(aucs) <= 6


def test_train_config_rejects_unknown_key():
    with pytest.raises(ValueError, match="epoch"):
        fit(None, None, [], {}, {"epoch": 3})


def test_evaluate_bundle(dataset, schema):
    model = build_model(schema, {"variant": "gaussian", **SMALL})
    out = evaluate(model, schema.encode(dataset.test), rates=(0.0, 0.8))
    assert set(out) == {"natural", "by_missing_count", "robustness"}
    assert set(out["natural"]) >= {"auc", "uauc", "logloss"} and list(out["robustness"]) == ["0.0", "0.8"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_mixed_precision_training_and_cpu_checkpoint(dataset, tmp_path):
    model, schema, result = fit(dataset.train, dataset.validation, dataset.features, {"variant": "asymdiffrec", **SMALL}, {**FAST, "device": "cuda"})
    assert result.device.startswith("cuda") and not np.isnan(result.best_val_auc)
    save_checkpoint(tmp_path / "ckpt", model, schema)
    cpu_model = load_checkpoint(tmp_path / "ckpt").model
    np.testing.assert_allclose(predict(model, schema, dataset.test), predict(cpu_model, schema, dataset.test), atol=1e-5)


def test_an_epochs_batches_are_the_seeded_permutation_in_order(schema, dataset):
    """One gather per epoch, then slices: the batches are exactly those of gathering each step's rows
    from the same seeded permutation (what training did before; the studies' results depend on it)."""
    import torch

    from models.train import _in_memory_batches

    data = schema.encode(dataset.train, with_label=True)
    got = list(_in_memory_batches(data, 300, torch.Generator().manual_seed(4)))
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(4))
    want = [data.index(order[lo : lo + 300]) for lo in range(0, len(data), 300)]
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("single", "multi", "mask", "label", "user"))
