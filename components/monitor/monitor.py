"""Compare what the service served (its serving log) with what the model was trained on, and decide
whether to retrain.

Reported, served vs trained:
  - per feature view, the missing rate (and per day, for the plot);
  - the histogram of missing fields per sample, and its population stability index (PSI);
  - PSI per stored feature on observed values, over the model's own encoding (categories and
    training-quantile buckets), so the trained side is the training split encoded by the served model's
    schema (request-context features are left out: over a window of days their distribution reflects
    the window, e.g. which weekdays it spans, not drift);
  - per stored view, the age of the served values (p50, p90) against the training rows';
  - once outcomes have joined by request id: served AUC/UAUC, overall and by missing-field count.
`retrain` is true when any threshold of the `monitor:` section is crossed; `reasons` say which and by how much.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.params import ParamsSection

EPS = 1e-4  # PSI smoothing: a bin empty on one side counts as this share


@dataclass(frozen=True)
class MonitorConfig(ParamsSection):
    """The params.yaml `monitor:` section: when served traffic has moved too far from training."""

    SECTION = "monitor"

    max_missing_rate_shift: float  # |served - trained| missing rate of a view, absolute
    max_missing_count_psi: float  # PSI of the missing-fields-per-sample histogram
    max_feature_psi: float  # PSI of a feature's observed values
    min_samples: int  # fewer served samples: report, never decide

    def validate(self) -> None:
        for name in ("max_missing_rate_shift", "max_missing_count_psi", "max_feature_psi"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"monitor.{name} must be a number > 0, got {value!r}")
        if not isinstance(self.min_samples, int) or self.min_samples < 1:
            raise ValueError(f"monitor.min_samples must be an integer >= 1, got {self.min_samples!r}")


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two histograms over the same bins (counts or shares)."""
    e = np.asarray(expected, np.float64)
    a = np.asarray(actual, np.float64)
    e = np.clip(e / max(e.sum(), 1e-12), EPS, None)
    a = np.clip(a / max(a.sum(), 1e-12), EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _counts(values: np.ndarray, bins: int) -> np.ndarray:
    return np.bincount(np.asarray(values, np.int64), minlength=bins)[:bins]


@dataclass
class Served:
    """The serving log as columns, one row per sample."""

    frame: pd.DataFrame  # request_id, item_id, user_id, request_time, score, missing_count, missing__<view>, age__<view>, id__<field>
    views: list[str]
    stored_views: list[str]
    fields: list[str]


def load_served(records: list[dict[str, Any]]) -> Served:
    """Flatten serving-log records into one row per sample."""
    if not records:
        raise ValueError("the serving log holds no records; replay traffic (dvc repro replay) or point at a service's log")
    views = list(records[0]["missing"])
    stored = list(records[0]["age_s"])
    fields = list(records[0]["ids"])
    columns: dict[str, list] = {k: [] for k in ("request_id", "item_id", "user_id", "request_time", "score", "missing_count")}
    for name in (*(f"missing__{v}" for v in views), *(f"age__{v}" for v in stored), *(f"id__{f}" for f in fields)):
        columns[name] = []
    for r in records:
        n = len(r["item_ids"])
        columns["request_id"] += [r["request_id"]] * n
        columns["item_id"] += r["item_ids"]
        columns["user_id"] += r["user_ids"]
        columns["request_time"] += [r["request_time"]] * n
        columns["score"] += r["scores"]
        columns["missing_count"] += r["missing_count"]
        for v in views:
            columns[f"missing__{v}"] += r["missing"][v]
        for v in stored:
            columns[f"age__{v}"] += r["age_s"][v]
        for f in fields:
            columns[f"id__{f}"] += r["ids"][f]
    frame = pd.DataFrame(columns)
    frame["request_time"] = pd.to_datetime(frame["request_time"], utc=True)
    for v in stored:
        frame[f"age__{v}"] = pd.to_numeric(frame[f"age__{v}"], errors="coerce")
    return Served(frame, views, stored, fields)


def trained_columns(train: pd.DataFrame, model_schema, views: list[str], stored: list[str], fields: list[str]) -> pd.DataFrame:
    """The training split in the served log's terms: view masks, missing count, ages and encoded ids."""
    batch = model_schema.encode(train, with_label=False)
    out = pd.DataFrame({"missing_count": batch.mask.numpy().sum(1)})
    for v in views:
        out[f"missing__{v}"] = train[f"missing_view__{v}"].to_numpy()
    for v in stored:
        out[f"age__{v}"] = (train["event_timestamp"] - train[f"{v}_ts"]).dt.total_seconds().to_numpy()
    single = batch.single.numpy()
    names = [model_schema.fields[i].name for i in model_schema.single_fields]
    for f in fields:
        out[f"id__{f}"] = single[:, names.index(f)]
    return out


def monitor(served: Served, trained: pd.DataFrame, model_schema, config: MonitorConfig,
            outcomes: pd.DataFrame | None = None) -> dict[str, Any]:
    """The report (see the module docstring); `trained` comes from `trained_columns`."""
    frame = served.frame
    reasons: list[str] = []
    report: dict[str, Any] = {"served_samples": int(len(frame)), "served_requests": int(frame["request_id"].nunique()),
                              "trained_samples": int(len(trained))}
    if len(frame):
        report["period"] = [frame["request_time"].min().isoformat(), frame["request_time"].max().isoformat()]

    views: dict[str, dict[str, float]] = {}
    for v in served.views:
        s, t = float(frame[f"missing__{v}"].mean()), float(trained[f"missing__{v}"].mean())
        views[v] = {"served": round(s, 4), "trained": round(t, 4), "shift": round(s - t, 4)}
        if abs(s - t) > config.max_missing_rate_shift:
            reasons.append(f"view {v}: served missing rate {s:.3f} vs trained {t:.3f} (shift {s - t:+.3f}, limit {config.max_missing_rate_shift})")
    report["missing_rate"] = views

    bins = model_schema.n_fields + 1
    served_hist, trained_hist = _counts(frame["missing_count"], bins), _counts(trained["missing_count"], bins)
    count_psi = psi(trained_hist, served_hist)
    report["missing_count"] = {"psi": round(count_psi, 4), "served": (served_hist / max(1, served_hist.sum())).round(4).tolist(),
                               "trained": (trained_hist / max(1, trained_hist.sum())).round(4).tolist()}
    if count_psi > config.max_missing_count_psi:
        reasons.append(f"missing fields per sample: PSI {count_psi:.3f} (limit {config.max_missing_count_psi})")

    feature_psi: dict[str, float] = {}
    for f in served.fields:
        spec = model_schema.fields[model_schema.names.index(f)]
        if spec.view not in served.stored_views:  # request-time context (hour, weekday) mirrors the window's length, not drift
            continue
        s_ids, t_ids = frame[f"id__{f}"].to_numpy(), trained[f"id__{f}"].to_numpy()
        s_ids, t_ids = s_ids[s_ids > 0], t_ids[t_ids > 0]  # observed values only
        if not len(s_ids) or not len(t_ids):
            continue
        value = psi(_counts(t_ids, spec.cardinality), _counts(s_ids, spec.cardinality))
        feature_psi[f] = round(value, 4)
        if value > config.max_feature_psi:
            reasons.append(f"feature {f}: PSI {value:.3f} on observed values (limit {config.max_feature_psi})")
    report["feature_psi"] = feature_psi

    ages: dict[str, dict[str, float | None]] = {}
    for v in served.stored_views:
        s, t = frame[f"age__{v}"].dropna(), trained[f"age__{v}"].dropna()
        q = lambda x, p: None if not len(x) else round(float(np.percentile(x, p)) / 3600, 2)  # noqa: E731
        ages[v] = {"served_p50_h": q(s, 50), "served_p90_h": q(s, 90), "trained_p50_h": q(t, 50), "trained_p90_h": q(t, 90)}
    report["age_hours"] = ages

    by_day = frame.groupby(frame["request_time"].dt.floor("D"))[[f"missing__{v}" for v in served.views]].mean()
    report["missing_rate_by_day"] = {str(day.date()): {v: round(float(row[f"missing__{v}"]), 4) for v in served.views}
                                     for day, row in by_day.iterrows()}

    if outcomes is not None and len(outcomes):
        report["served_quality"] = served_quality(frame, outcomes)

    enough = len(frame) >= config.min_samples
    report["retrain"] = bool(reasons) and enough
    report["reasons"] = reasons if enough else [f"only {len(frame)} served samples (< monitor.min_samples {config.min_samples}): no decision"]
    return report


def served_quality(frame: pd.DataFrame, outcomes: pd.DataFrame) -> dict[str, Any]:
    """AUC/UAUC of the served scores where outcomes have joined (by request id and item), by missing count too."""
    from models.metrics import all_metrics, by_missing_count

    joined = frame.merge(outcomes[["request_id", "item_id", "label"]], on=["request_id", "item_id"], how="inner")
    if joined.empty or joined["label"].nunique() < 2:
        return {"joined": int(len(joined))}
    y, p, users = joined["label"].to_numpy(float), joined["score"].to_numpy(float), joined["user_id"].to_numpy()
    return {
        "joined": int(len(joined)),
        "overall": {k: round(float(v), 4) for k, v in all_metrics(y, p, users).items()},
        "by_missing_count": {k: {m: round(float(x), 4) for m, x in v.items()}
                             for k, v in by_missing_count(y, p, joined["missing_count"].to_numpy(), users, min_samples=200).items()},
    }


def plot(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Served vs trained missing rate per view over time; PSI per feature."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    days = list(report["missing_rate_by_day"])
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for k, (view, rates) in enumerate(report["missing_rate"].items()):
        color = f"C{k}"
        ax.plot(pd.to_datetime(days), [report["missing_rate_by_day"][d][view] for d in days], color=color, label=f"{view} served")
        ax.axhline(rates["trained"], color=color, linestyle="--", linewidth=1)
    ax.set_ylabel("missing rate")
    ax.set_title("Served missing rate per view by day (dashed: trained)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    fig.autofmt_xdate()
    fig.tight_layout()
    paths.append(out_dir / "monitor_missing_rate.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    names = list(report["feature_psi"])
    ax.barh(names, [report["feature_psi"][n] for n in names], color="C0")
    ax.axvline(0.25, color="C3", linestyle="--", linewidth=1, label="0.25: a shift worth acting on")
    ax.set_xlabel("PSI, served vs trained (observed values)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "monitor_psi.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
