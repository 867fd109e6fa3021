"""Compare what the service served (its serving log) with what the model was trained on, and decide
whether to retrain.

    python -m components.monitor.monitor --log data/replay/serving_log --outcomes data/replay/outcomes.jsonl \
        --data data/validated --model data/models/asymdiffrec --reports reports --metrics metrics/monitor_summary.json

The trained side is the last `reference_days` of the training split (0: all of it): the start of a log
carries a warm-up (items and users without any history yet) that later traffic never sees again, and
comparing against it would flag every quiet week. Reported, served vs trained:
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

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from common.files import atomic_write_json
from common.params import ParamsSection, load_params, section

EPS = 1e-4  # PSI smoothing: a bin empty on one side counts as this share


@dataclass(frozen=True)
class MonitorConfig(ParamsSection):
    """The params.yaml `monitor:` section: when served traffic has moved too far from training."""

    SECTION = "monitor"

    reference_days: int  # the trained side: the last this many days of the training split (0: all of it)
    missing_rate_margin: float  # a view is flagged this far above the reference's band of missing rates
    max_missing_count_psi: float  # PSI of the missing-fields-per-sample histogram (or the band's, if higher)
    max_feature_psi: float  # PSI of a feature's observed values (or the band's, if higher)
    min_samples: int  # fewer served samples: report, never decide

    def validate(self) -> None:
        for name in ("missing_rate_margin", "max_missing_count_psi", "max_feature_psi"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"monitor.{name} must be a number > 0, got {value!r}")
        if not isinstance(self.reference_days, int) or isinstance(self.reference_days, bool) or self.reference_days < 0:
            raise ValueError(f"monitor.reference_days must be an integer >= 0 (0: the whole training split), got {self.reference_days!r}")
        if not isinstance(self.min_samples, int) or self.min_samples < 1:
            raise ValueError(f"monitor.min_samples must be an integer >= 1, got {self.min_samples!r}")


def reference_window(train: pd.DataFrame, days: int) -> pd.DataFrame:
    """The last `days` days of the training split (all of it for 0)."""
    if not days:
        return train
    newest = train["event_timestamp"].max()
    return train[train["event_timestamp"] > newest - pd.Timedelta(days=days)]


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
    """Serving-log records as columns (`serving.serving_log.log_frame`), with the views and fields they list."""
    from serving.serving_log import log_frame

    frame = log_frame(records)
    first = records[0]
    return Served(frame, list(first["missing"]), list(first["age_s"]), list(first["ids"]))


def trained_columns(train: pd.DataFrame, model_schema, views: list[str], stored: list[str], fields: list[str]) -> pd.DataFrame:
    """The training split in the served log's terms: event time, view masks, missing count, ages and encoded ids."""
    batch = model_schema.encode(train, with_label=False)
    out = pd.DataFrame({"event_timestamp": train["event_timestamp"].to_numpy(), "missing_count": batch.mask.numpy().sum(1)})
    for v in views:
        out[f"missing__{v}"] = train[f"missing_view__{v}"].to_numpy()
    for v in stored:
        out[f"age__{v}"] = (train["event_timestamp"] - train[f"{v}_ts"]).dt.total_seconds().to_numpy()
    single = batch.single.numpy()
    names = [model_schema.fields[i].name for i in model_schema.single_fields]
    for f in fields:
        out[f"id__{f}"] = single[:, names.index(f)]
    return out


def _window_days(times: pd.Series) -> int:
    """Whole days the served period spans (at least 1)."""
    return max(1, int(np.ceil((times.max() - times.min()) / pd.Timedelta(days=1))))


def reference_windows(trained: pd.DataFrame, days: int, min_rows: int) -> list[np.ndarray]:
    """Row masks of every `days`-long window of the reference, one day apart: how much a statistic moves
    between quiet windows as long as the served one (e.g. with the number of failed daily runs it holds)."""
    times = pd.to_datetime(trained["event_timestamp"], utc=True)
    span = pd.Timedelta(days=days)
    first, last = times.min().floor("D"), times.max()
    starts = pd.date_range(first, max(first, last + pd.Timedelta(days=1) - span), freq="D")
    windows = [mask for mask in (((times >= s) & (times < s + span)).to_numpy() for s in starts) if mask.sum() >= min_rows]
    return windows or [np.ones(len(trained), bool)]


def monitor(served: Served, trained: pd.DataFrame, model_schema, config: MonitorConfig,
            outcomes: pd.DataFrame | None = None) -> dict[str, Any]:
    """The report (see the module docstring); `trained` comes from `trained_columns`.

    Each limit is a band drawn from the reference itself: the statistic is computed for every window of the
    reference as long as the served period, and the served value is flagged only past the band's edge
    (a view's missing rate: more than `missing_rate_margin` above the highest window's; a PSI: above both
    its configured limit and the highest PSI of a reference window against the rest of the reference). Less
    missingness than trained is reported, never flagged: AsymDiffRec's forward process trains on samples
    with features dropped from complete ones, so fresher inputs stay within what it learnt. Fixed
    limits alone flag quiet weeks: with a 15% daily failure rate, a week's missing rate of the aggregate
    views moves by +-0.2 with the number of failed runs it happens to hold."""
    frame = served.frame
    reasons: list[str] = []
    flagged: dict[str, Any] = {"views": [], "features": [], "missing_count": False}
    report: dict[str, Any] = {"served_samples": int(len(frame)), "served_requests": int(frame["request_id"].nunique()),
                              "trained_samples": int(len(trained))}
    days = _window_days(frame["request_time"]) if len(frame) else 1
    windows = reference_windows(trained, days, min_rows=max(1, min(config.min_samples, len(trained)) // 10))
    if len(frame):
        report["period"] = [frame["request_time"].min().isoformat(), frame["request_time"].max().isoformat()]
    report["band"] = {"window_days": days, "windows": len(windows)}

    views: dict[str, dict[str, float]] = {}
    for v in served.views:
        column = trained[f"missing__{v}"].to_numpy()
        s, t = float(frame[f"missing__{v}"].mean()), float(column.mean())
        per_window = [float(column[w].mean()) for w in windows]
        low, high = min(per_window), max(per_window)
        views[v] = {"served": round(s, 4), "trained": round(t, 4), "shift": round(s - t, 4), "band": [round(low, 4), round(high, 4)]}
        if s > high + config.missing_rate_margin:
            flagged["views"].append(v)
            reasons.append(f"view {v}: served missing rate {s:.3f} vs trained {t:.3f}, above the reference's "
                           f"{days}-day band [{low:.3f}, {high:.3f}] by more than {config.missing_rate_margin}")
    report["missing_rate"] = views

    bins = model_schema.n_fields + 1
    counts = trained["missing_count"].to_numpy()
    served_hist, trained_hist = _counts(frame["missing_count"], bins), _counts(counts, bins)
    count_psi = psi(trained_hist, served_hist)
    count_limit = max([config.max_missing_count_psi, *(psi(_counts(counts[~w], bins), _counts(counts[w], bins)) for w in windows if (~w).any())])
    report["missing_count"] = {"psi": round(count_psi, 4), "limit": round(count_limit, 4),
                               "served": (served_hist / max(1, served_hist.sum())).round(4).tolist(),
                               "trained": (trained_hist / max(1, trained_hist.sum())).round(4).tolist()}
    served_mean, trained_mean = float(frame["missing_count"].mean()), float(counts.mean())
    report["missing_count"] |= {"served_mean": round(served_mean, 3), "trained_mean": round(trained_mean, 3)}
    if count_psi > count_limit and served_mean > trained_mean:  # fewer missing fields than trained: within what the model learnt
        flagged["missing_count"] = True
        reasons.append(f"missing fields per sample: PSI {count_psi:.3f} (limit {count_limit:.3f}), "
                       f"{served_mean:.2f} missing on average vs {trained_mean:.2f} trained")

    feature_psi: dict[str, float] = {}
    feature_limit: dict[str, float] = {}
    for f in served.fields:
        spec = model_schema.fields[model_schema.names.index(f)]
        if spec.view not in served.stored_views:  # request-time context (hour, weekday) mirrors the window's length, not drift
            continue
        s_ids, t_all = frame[f"id__{f}"].to_numpy(), trained[f"id__{f}"].to_numpy()
        s_ids, t_ids = s_ids[s_ids > 0], t_all[t_all > 0]  # observed values only
        if not len(s_ids) or not len(t_ids):
            continue
        reference = _counts(t_ids, spec.cardinality)
        value = psi(reference, _counts(s_ids, spec.cardinality))
        natural = [psi(_counts(t_all[~w][t_all[~w] > 0], spec.cardinality), _counts(t_all[w][t_all[w] > 0], spec.cardinality))
                   for w in windows if (t_all[w] > 0).any() and (t_all[~w] > 0).any()]
        limit = max([config.max_feature_psi, *natural])
        feature_psi[f], feature_limit[f] = round(value, 4), round(limit, 4)
        if value > limit:
            flagged["features"].append(f)
            reasons.append(f"feature {f}: PSI {value:.3f} on observed values (limit {limit:.3f})")
    report["feature_psi"] = feature_psi
    report["feature_psi_limit"] = feature_limit

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
    report["flagged"] = flagged
    report["reasons"] = reasons if enough else [f"only {len(frame)} served samples (< monitor.min_samples {config.min_samples}): no decision"]
    return report


def served_quality(frame: pd.DataFrame, outcomes: pd.DataFrame) -> dict[str, Any]:
    """AUC/UAUC of the served scores where outcomes have joined (by request id and item), by missing count too."""
    from models.metrics import all_metrics, by_missing_count
    from serving.serving_log import join_outcomes

    joined = join_outcomes(frame, outcomes)
    if joined.empty or joined["label"].nunique() < 2:
        return {"joined": int(len(joined))}
    y, p, users = joined["label"].to_numpy(float), joined["score"].to_numpy(float), joined["user_id"].to_numpy()
    return {
        "joined": int(len(joined)),
        "overall": {k: round(float(v), 4) for k, v in all_metrics(y, p, users).items()},
        "by_missing_count": {k: {m: round(float(x), 4) for m, x in v.items()}
                             for k, v in by_missing_count(y, p, joined["missing_count"].to_numpy(), users, min_samples=200).items()},
    }


def plot(report: dict[str, Any], out_dir: Path, limit: float) -> list[Path]:
    """Served vs trained missing rate per view over time; PSI per feature against its `limit`."""
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
    flagged = set(report["flagged"]["features"])
    ax.barh(names, [report["feature_psi"][n] for n in names], color=["C3" if n in flagged else "C0" for n in names])
    ax.scatter([report["feature_psi_limit"][n] for n in names], names, marker="|", s=300, color="black",
               label=f"limit: the larger of {limit} (monitor.max_feature_psi) and the reference's own band")
    ax.set_xlabel("PSI, served vs trained (observed values); red: flagged")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.tight_layout()
    paths.append(out_dir / "monitor_psi.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The few numbers `dvc metrics show` prints: the decision and the largest shifts."""
    out: dict[str, Any] = {
        "retrain": report["retrain"],
        "reasons": len(report["reasons"]) if report["retrain"] else 0,
        "max_missing_rate_shift": max((v["shift"] for v in report["missing_rate"].values()), default=0.0),
        "missing_count_psi": report["missing_count"]["psi"],
        "max_feature_psi": max(report["feature_psi"].values(), default=0.0),
    }
    overall = (report.get("served_quality") or {}).get("overall")
    if overall:
        out["served_auc"] = overall["auc"]
    return out


def monitor_step(log_dir: Path, data_dir: Path, checkpoint: Path, reports_dir: Path, metrics_path: Path | None,
                 config: MonitorConfig, outcomes_path: Path | None = None) -> dict[str, Any]:
    """The pipeline step: read the serving log (and the outcomes, when given and present), compare with the
    training split of `data_dir`, both encoded by the served model's feature schema (`checkpoint`); write
    `<reports_dir>/monitor.json` and its plots, and the small summary to `metrics_path`."""
    from models import load_checkpoint
    from serving.serving_log import read_outcomes, read_serving_log

    log_dir, reports_dir = Path(log_dir), Path(reports_dir)
    if not log_dir.is_dir():
        raise FileNotFoundError(f"no serving log at {log_dir}; replay traffic first (dvc repro replay) or pass a service's serving.log_dir")
    train_path = Path(data_dir) / "train.parquet"
    if not train_path.exists():
        raise FileNotFoundError(f"no training split at {train_path}; run the validate step first (dvc repro validate)")
    checkpoint = Path(checkpoint)
    if not (checkpoint / "config.json").exists():
        raise FileNotFoundError(f"no model at {checkpoint}: its feature schema encodes both sides; run the train step first")
    schema = load_checkpoint(checkpoint).schema
    served = load_served(list(read_serving_log(log_dir)))
    reference = reference_window(pd.read_parquet(train_path), config.reference_days)
    trained = trained_columns(reference, schema, served.views, served.stored_views, served.fields)
    report = monitor(served, trained, schema, config, read_outcomes(outcomes_path))
    report["reference"] = {"days": config.reference_days, "from": reference["event_timestamp"].min().isoformat(),
                           "to": reference["event_timestamp"].max().isoformat()}
    reports_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(report, reports_dir / "monitor.json")
    plot(report, reports_dir, config.max_feature_psi)
    if metrics_path is not None:
        atomic_write_json(summary(report), Path(metrics_path))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare served traffic (a serving log) with the training split; decide whether to retrain.")
    parser.add_argument("--log", type=Path, default=Path("data/replay/serving_log"), help="a serving log folder (serving.log_dir)")
    parser.add_argument("--outcomes", type=Path, default=Path("data/replay/outcomes.jsonl"),
                        help="labels by request_id and item_id (JSON lines); skipped when absent")
    parser.add_argument("--data", type=Path, default=Path("data/validated"), help="the validated dataset (its train split)")
    parser.add_argument("--model", type=Path, default=Path("data/models/asymdiffrec"), help="the served model's checkpoint (its feature schema)")
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/monitor_summary.json"))
    parser.add_argument("--params", default="params.yaml", help="reads its monitor: section")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        config = MonitorConfig.from_dict(section(load_params(args.params), "monitor"))
        report = monitor_step(args.log, args.data, args.model, args.reports, args.metrics, config, args.outcomes)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"monitor: {e}", file=sys.stderr)
        return 2
    verdict = "retrain: " + "; ".join(report["reasons"]) if report["retrain"] else "no retraining needed"
    print(f"monitored {report['served_samples']} served samples against {report['trained_samples']} trained: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
