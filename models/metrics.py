"""AUC, UAUC and LogLoss in numpy, by missing count, and under extra random missingness."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from common.names import HIGHER_IS_BETTER, METRICS  # noqa: F401  (re-exported: the metrics every report lists)

ROBUSTNESS_RATES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties given average ranks; NaN with one class."""
    y = np.asarray(y).astype(bool).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    avg_rank = ends - (counts - 1) / 2.0  # 1-based average rank of each distinct score
    rank_sum = avg_rank[inverse][y].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def uauc(y: np.ndarray, p: np.ndarray, users: np.ndarray) -> float:
    """Per-user AUC, averaged (unweighted) over users that have both classes; NaN if none do."""
    y = np.asarray(y).astype(bool).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    users = np.asarray(users).ravel()
    order = np.argsort(users, kind="stable")
    users, y, p = users[order], y[order], p[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    pos = np.add.reduceat(y.astype(np.int64), starts) if len(users) else np.zeros(0)
    both = (pos > 0) & (pos < ends - starts)
    scores = [auc(y[s:e], p[s:e]) for s, e, ok in zip(starts, ends, both) if ok]
    return float(np.mean(scores)) if scores else float("nan")


def logloss(y: np.ndarray, p: np.ndarray, eps: float = 1e-7) -> float:
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.clip(np.asarray(p, dtype=np.float64).ravel(), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def all_metrics(y: np.ndarray, p: np.ndarray, users: np.ndarray | None = None) -> dict[str, float]:
    out = {"auc": auc(y, p), "logloss": logloss(y, p), "n": int(len(y))}
    out["uauc"] = uauc(y, p, users) if users is not None else float("nan")
    return out


def by_missing_count(
    y: np.ndarray, p: np.ndarray, missing_count: np.ndarray, users: np.ndarray | None = None, min_samples: int = 1
) -> dict[str, dict[str, float]]:
    """Metrics for each number of missing fields k (keys are str(k)); buckets under `min_samples` are left out."""
    missing_count = np.asarray(missing_count).ravel()
    out = {}
    for k in np.unique(missing_count):
        sel = missing_count == k
        if sel.sum() >= min_samples:
            out[str(int(k))] = all_metrics(y[sel], p[sel], None if users is None else users[sel])
    return out


def extra_missing_mask(mask: torch.Tensor, rate: float, seed: int) -> torch.Tensor:
    """Mask each observed field with probability `rate`, reproducibly from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    drop = torch.rand(tuple(mask.shape), generator=gen) < rate
    return mask.cpu() | drop


def robustness_curve(
    predict_with_mask: Callable[[torch.Tensor], np.ndarray],
    mask: torch.Tensor,
    y: np.ndarray,
    users: np.ndarray | None = None,
    rates: Sequence[float] = ROBUSTNESS_RATES,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Metrics at each rate of extra random missingness; `predict_with_mask(mask) -> probabilities`.

    Each rate uses its own seed derived from `seed`, the same for every model, so models are
    compared on identical masks.
    """
    out = {}
    for i, rate in enumerate(rates):
        m = extra_missing_mask(mask, rate, seed * 1000 + i)
        out[f"{rate:.1f}"] = all_metrics(y, predict_with_mask(m), users)
    return out
