"""Statistics over seeds: paired differences with Student-t intervals, and a ratio of paired means
(the share of the missingness tax a method recovers) with Fieller's interval.

Seeds pair the runs: method and baseline trained with seed s share the initial weights of the base
model, the batch order and the drop masks, so their difference cancels most of the seed's luck.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as _stats

CONFIDENCE = 0.95


def _t(n: int, confidence: float) -> float:
    return float(_stats.t.ppf(0.5 + confidence / 2, n - 1))


def paired_difference(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True,
                      confidence: float = CONFIDENCE) -> dict[str, object]:
    """a - b over paired seeds: mean, std, t statistic, a Student-t interval for the mean, wins
    (seeds where a is better) and `verdict`: "better" / "worse" when the interval excludes zero, else
    "no difference"."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or len(d) != len(np.asarray(b)):
        raise ValueError(f"paired comparison needs two equal-length lists of per-seed values, got {len(a)} and {len(b)}")
    n = len(d)
    mean = float(d.mean())
    std = float(d.std(ddof=1)) if n > 1 else 0.0
    half = _t(n, confidence) * std / math.sqrt(n) if n > 1 else float("nan")
    lo, hi = mean - half, mean + half
    t = mean / (std / math.sqrt(n)) if n > 1 and std > 0 else float("nan")
    wins = int((d > 0).sum() if higher_is_better else (d < 0).sum())
    if n < 2 or math.isnan(lo) or lo <= 0 <= hi:
        verdict = "no difference"
    else:
        verdict = "better" if (lo > 0) == higher_is_better else "worse"
    return {"mean_diff": mean, "std": std, "t": float(t), "ci95": [lo, hi], "wins": wins, "seeds": n, "verdict": verdict}


def ratio_of_means(numerator: Sequence[float], denominator: Sequence[float],
                   confidence: float = CONFIDENCE) -> dict[str, object]:
    """mean(x) / mean(y) for paired per-seed values, with Fieller's interval.

    Fieller's interval accounts for the noise of the denominator and its covariance with the
    numerator (here both are differences against the same base-model run). When the denominator's
    own interval reaches zero the ratio is unbounded: `ci95` is [None, None] and `bounded` false.
    """
    x = np.asarray(numerator, dtype=np.float64)
    y = np.asarray(denominator, dtype=np.float64)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"a ratio of paired means needs two equal-length lists of at least 2 seeds, got {len(x)} and {len(y)}")
    n = len(x)
    a, b = float(x.mean()), float(y.mean())
    cov = np.cov(np.vstack([x, y]), ddof=1) / n
    v11, v22, v12 = float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])
    t = _t(n, confidence)
    ratio = a / b if b != 0 else float("nan")
    g = t * t * v22 / (b * b) if b != 0 else math.inf
    if g >= 1:
        return {"mean": ratio, "ci95": [None, None], "bounded": False, "seeds": n}
    # Fieller: the ratios r with (a - r b)^2 <= t^2 Var(a - r b), a quadratic in r that opens upwards when g < 1.
    qa, qb, qc = b * b - t * t * v22, a * b - t * t * v12, a * a - t * t * v11
    root = math.sqrt(max(qb * qb - qa * qc, 0.0))
    return {"mean": ratio, "ci95": [(qb - root) / qa, (qb + root) / qa], "bounded": True, "seeds": n}
