import numpy as np
import pytest

from models.stats import paired_difference, ratio_of_means


def test_paired_interval_matches_the_t_distribution_and_names_no_difference():
    a = [0.70, 0.71, 0.72, 0.73, 0.74]
    b = [0.69, 0.70, 0.71, 0.72, 0.735]
    r = paired_difference(a, b)
    d = np.subtract(a, b)
    half = 2.7764451 * d.std(ddof=1) / np.sqrt(5)  # t(0.975, 4)
    assert r["ci95"] == pytest.approx([d.mean() - half, d.mean() + half], rel=1e-6)
    assert r["wins"] == 5 and r["verdict"] == "better"
    assert paired_difference([1.0, 2.0, 3.0], [1.5, 1.5, 3.5])["verdict"] == "no difference"
    assert paired_difference(b, a)["verdict"] == "worse"
    # LogLoss: lower is better, so a lower a is a win
    assert paired_difference([0.5, 0.4], [0.6, 0.5], higher_is_better=False)["wins"] == 2


def test_ratio_interval_covers_the_true_share_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    covered, trials = 0, 400
    for _ in range(trials):
        base = rng.normal(0.68, 0.004, 10)  # the base model's per-seed luck enters both differences
        fresh = base + 0.010 + rng.normal(0, 0.001, 10)
        method = base + 0.004 + rng.normal(0, 0.001, 10)
        r = ratio_of_means(method - base, fresh - base)
        lo, hi = r["ci95"]
        covered += lo <= 0.4 <= hi
    assert 0.91 <= covered / trials <= 0.98


def test_ratio_is_unbounded_when_the_denominator_may_be_zero():
    r = ratio_of_means([0.001, 0.002, 0.0], [0.004, -0.004, 0.001])
    assert r["bounded"] is False and r["ci95"] == [None, None]
    with pytest.raises(ValueError, match="equal-length"):
        ratio_of_means([1.0], [1.0, 2.0])
