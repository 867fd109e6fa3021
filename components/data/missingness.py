"""How much is missing, per split and per view, and how it moves over time."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

import os

from common.files import _tmp_beside


def missingness_report(splits: dict[str, pd.DataFrame], views: list[str]) -> dict:
    """{"train": {"rows": N, "missing_rate": {"<view>": r}}, ...}: the shape `dvc metrics show` reads."""
    return {
        name: {
            "rows": int(len(frame)),
            "missing_rate": {v: round(float(frame[f"missing_view__{v}"].mean()), 6) if len(frame) else 0.0 for v in views},
        }
        for name, frame in splits.items()
    }


def missing_rate_over_time(splits: dict[str, pd.DataFrame], views: list[str]) -> pd.DataFrame:
    """One row per day: the share of that day's events missing each view, and which split the day is in."""
    frames = []
    for name, frame in splits.items():
        day = frame["event_timestamp"].dt.strftime("%Y-%m-%d")
        daily = frame[[f"missing_view__{v}" for v in views]].groupby(day).mean()
        daily.columns = views
        daily["events"] = frame.groupby(day).size()
        daily["split"] = name
        frames.append(daily)
    table = pd.concat(frames)
    table.index.name = "date"
    return table.reset_index().round(6)


def write_missing_over_time(table: pd.DataFrame, out_dir: Path) -> None:
    """CSV for `dvc plots`, PNG for people."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / "missing_over_time.csv"
    tmp = _tmp_beside(csv)
    table.to_csv(tmp, index=False)
    os.replace(tmp, csv)

    views = [c for c in table.columns if c not in ("date", "events", "split")]
    fig, ax = plt.subplots(figsize=(10, 4))
    dates = pd.to_datetime(table["date"])
    for v in views:
        ax.plot(dates, table[v], label=v, linewidth=1.2)
    for name, part in table.groupby("split", sort=False):
        ax.axvline(pd.to_datetime(part["date"]).min(), color="grey", linestyle=":", linewidth=0.8)
        ax.text(pd.to_datetime(part["date"]).min(), 1.02, name, fontsize=8, color="grey")
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("share of events with the view missing")
    ax.set_title("Missing feature views over time (point-in-time join)")
    ax.legend(loc="upper left", fontsize=8, ncol=len(views))
    fig.autofmt_xdate()
    fig.tight_layout()
    png = out_dir / "missing_over_time.png"
    tmp = _tmp_beside(png)
    fig.savefig(tmp, dpi=110, format="png")
    os.replace(tmp, png)
    plt.close(fig)
