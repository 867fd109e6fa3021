import numpy as np
import torch

from models.metrics import auc, by_missing_count, extra_missing_mask, logloss, robustness_curve, uauc


def brute_auc(y, p):
    pos, neg = p[y == 1], p[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_auc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.round(rng.random(500) + 0.3 * y, 1)  # many ties
    assert abs(auc(y, p) - brute_auc(y, p)) < 1e-12
    assert auc(y, y.astype(float)) == 1.0 and auc(y, -y.astype(float)) == 0.0
    assert np.isnan(auc(np.ones(5), np.arange(5)))


def test_uauc_averages_users_with_both_classes():
    y = np.array([1, 0, 1, 0, 1, 1, 0])
    p = np.array([0.9, 0.1, 0.2, 0.8, 0.5, 0.6, 0.3])
    users = np.array([1, 1, 2, 2, 3, 3, 4])  # users 3 and 4 have one class only
    assert uauc(y, p, users) == 0.5  # user 1: 1.0, user 2: 0.0


def test_logloss():
    assert abs(logloss(np.array([1, 0]), np.array([0.5, 0.5])) - np.log(2)) < 1e-12


def test_by_missing_count_buckets():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.1, 0.3, 0.4])
    out = by_missing_count(y, p, np.array([0, 0, 2, 2]))
    assert set(out) == {"0", "2"} and out["0"]["auc"] == 1.0 and out["2"]["auc"] == 0.0 and out["2"]["n"] == 2


def test_extra_missingness_is_seeded_and_monotone():
    mask = torch.zeros(1000, 10, dtype=torch.bool)
    a, b = extra_missing_mask(mask, 0.4, 7), extra_missing_mask(mask, 0.4, 7)
    assert torch.equal(a, b) and abs(a.float().mean().item() - 0.4) < 0.03
    assert extra_missing_mask(mask, 0.0, 7).sum() == 0


def test_robustness_curve_keys():
    mask = torch.zeros(100, 4, dtype=torch.bool)
    y = np.arange(100) % 2
    curve = robustness_curve(lambda m: 1.0 - m.float().mean(1).numpy() + y, mask, y, rates=(0.0, 0.5))
    assert list(curve) == ["0.0", "0.5"] and curve["0.0"]["auc"] == 1.0
