"""Shadow evaluation: a challenger and a reference model (the champion, or the base model when there is
none) score the traffic a service actually answered, with the very feature values and missing masks it
served, before the challenger is promoted.

The serving log (`serving/serving_log.py`) does not hold the served values themselves, and its encoded
ids belong to the serving model's vocabulary, so another model cannot use them. It does hold, per sample
and stored view, whether the view was served and the age of the row served (request time in whole
seconds, as `request_unix_s` takes it, minus that row's availability time). The availability time is the
feature table's `<view>_ts` (= its `event_timestamp`), so the served row is found exactly, by entity and
whole second, in the offline feature table the online store was materialized from. A view the log marks
missing gets nulls; the request context is recomputed by the on-demand view's own function. The rows go
through the dataset contract's `to_training_frame`, the function that builds training samples, and each
model encodes that frame with its own `FeatureSchema`: the served mask is the frame's nulls, so every
model sees the same values and the same gaps as the service did.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from common.jsonable import jsonable
from components.data.contract import DatasetSchema, to_training_frame
from feature_repo.definitions import REQUEST_TIME_FIELD, request_context_frame

USER_KEY, ITEM_KEY = "user_id", "item_id"
CHALLENGER, REFERENCE = "challenger", "reference"
SCORE_BATCH = 8192  # samples per forward pass: bounds memory on long logs


def log_samples(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The serving log as one row per sample (`serving.serving_log.log_frame`: request_id, user_id, item_id,
    request_time, score, model, missing__<view>, age__<view>, ...) plus request_unix_s, the request time in
    whole seconds as the service took it (floor, as int(datetime.timestamp()))."""
    from serving.serving_log import log_frame

    frame = log_frame(list(records))
    frame["request_unix_s"] = frame["request_time"].to_numpy().astype("datetime64[s]").astype(np.int64)
    return frame


def _table_columns(path: Path) -> set[str]:
    """Column names of a feature table: one Parquet file (pandas jobs) or a folder of part files (Spark jobs)."""
    return set(pq.ParquetDataset(path).schema.names) if Path(path).is_dir() else set(pq.read_schema(path).names)


def _entity_key(path: Path, view: str) -> str:
    """The join key of a stored view's feature table: the one of user_id / item_id it holds."""
    columns = _table_columns(path)
    keys = [k for k in (USER_KEY, ITEM_KEY) if k in columns]
    if len(keys) != 1:
        raise ValueError(f"feature table {path} of view '{view}' holds {keys or 'neither'} of {USER_KEY}/{ITEM_KEY}; the service reads views keyed by exactly one")
    return keys[0]


def _served_rows(samples: pd.DataFrame, view: str, info: dict, features_dir: Path) -> pd.DataFrame:
    """The view's served row for every sample (nulls where the log marks it missing), in sample order."""
    path = Path(features_dir) / f"{view}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no feature table {path} for view '{view}'; point features_dir at the feature tables the service was materialized from")
    key, ts_column = _entity_key(path, view), info["timestamp_column"]
    absent_columns = sorted({ts_column, *info["features"]} - _table_columns(path))
    if absent_columns:
        raise ValueError(f"feature table {path} lacks column(s) {absent_columns} of view '{view}'; it was written under another feature contract")
    served = samples[f"missing__{view}"].to_numpy() == 0
    age = samples[f"age__{view}"].to_numpy()
    if np.isnan(age[served]).any():
        bad = samples.loc[served & np.isnan(age), "request_id"].iloc[0]
        raise ValueError(f"serving log request {bad!r}: view '{view}' is marked served but has no age; the log is corrupt")
    wanted = pd.DataFrame({
        "_row": np.flatnonzero(served),
        key: samples[key].to_numpy()[served],
        ts_column: samples["request_unix_s"].to_numpy()[served] - age[served].astype(np.int64),
    })
    table = pd.read_parquet(path, columns=[key, ts_column, *info["features"]], filters=[(key, "in", np.unique(wanted[key]).tolist())])
    table = table.drop_duplicates([key, ts_column], keep="last")
    found = wanted.merge(table, on=[key, ts_column], how="left", indicator=True, validate="many_to_one")
    absent = found[found["_merge"] == "left_only"]
    if len(absent):
        first = absent.iloc[0]
        when = pd.Timestamp(int(first[ts_column]), unit="s", tz="UTC").isoformat()
        raise ValueError(
            f"view '{view}': no row of {key}={int(first[key])} available at {when} ({ts_column}={int(first[ts_column])}) in {path}, "
            f"though the serving log says it was served ({len(absent)} of {len(wanted)} served rows of this view are absent); "
            "the feature tables are likely newer than the log (the feature jobs re-ran and restamped rows) or are not the ones "
            "the service was materialized from"
        )
    # every sample, in log order: nulls where the view was not served
    return found.set_index("_row")[[ts_column, *info["features"]]].reindex(pd.RangeIndex(len(samples)))


def served_frame(records: Iterable[dict[str, Any]], features_dir: Path, contract: DatasetSchema) -> pd.DataFrame:
    """The samples the service scored, one row per logged sample, as dataset-contract columns (features with
    nulls where missing, `<view>_ts`, `missing__<feature>`, `missing_view__<view>`) plus request_id,
    request_time, served_score and served_model; `event_id` is the sample's position in the log.

    `contract` is the dataset contract the service served (the registry's: `schema_from_store`); any model
    trained on it encodes this frame with `FeatureSchema.encode`."""
    samples = log_samples(records)
    unknown = sorted(set(contract.views) - {c.removeprefix("missing__") for c in samples.columns if c.startswith("missing__")})
    if unknown:
        raise ValueError(f"the serving log lists no missing flags for view(s) {unknown} of the contract; it was written under another feature contract")
    joined = pd.DataFrame({
        "event_id": np.arange(len(samples), dtype=np.int64),
        USER_KEY: samples[USER_KEY].to_numpy(),
        ITEM_KEY: samples[ITEM_KEY].to_numpy(),
        contract.timestamp: samples["request_time"].to_numpy(),
    })
    context = None
    for view, info in contract.views.items():
        if info.get("timestamp_column"):
            rows = _served_rows(samples, view, info, features_dir)
            for column in rows.columns:
                joined[column] = rows[column].array  # keeps nullable dtypes (Int64 release years)
            continue
        if context is None:  # the request context, by the on-demand view's own function (as the service computes it)
            context = request_context_frame(pd.DataFrame({REQUEST_TIME_FIELD: samples["request_unix_s"].to_numpy()}))
        lacking = [f for f in info["features"] if f not in context.columns]
        if lacking:
            raise ValueError(f"view '{view}' has no stored row and its features {lacking} are not the request context's {list(context.columns)}")
        for name in info["features"]:
            joined[name] = context[name].to_numpy()
    # Availability times reach to_training_frame as plain int64 (0 where the view was missing) and get their
    # NaT afterwards: pandas 2.3 converts float seconds with NaN through an uninitialised buffer (a random
    # FloatingPointError) and nullable Int64 through a cache that can mis-index NA; both were seen here.
    absent_ts = {}
    for ts_column in contract.timestamp_columns:
        seconds = pd.to_numeric(joined[ts_column]).to_numpy(np.float64)
        absent_ts[ts_column] = np.isnan(seconds)
        joined[ts_column] = np.where(absent_ts[ts_column], 0, seconds).astype(np.int64)
    frame = to_training_frame(joined, contract)
    for ts_column, absent in absent_ts.items():
        frame[ts_column] = frame[ts_column].mask(absent)
    frame.insert(0, "request_id", samples["request_id"].to_numpy())
    frame.insert(list(frame.columns).index(contract.timestamp) + 1, "request_time", frame[contract.timestamp])
    frame["served_score"] = samples["score"].to_numpy()
    frame["served_model"] = samples["model"].to_numpy()
    return frame


def score_frame(checkpoint_dir: Path, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(logits, probabilities) of a checkpoint on a served frame, encoded with the checkpoint's own schema
    and scored as `serving/ranker.py` scores: eval mode, inference mode, sigmoid of the float logits."""
    from models import load_checkpoint

    checkpoint = load_checkpoint(checkpoint_dir)
    model = checkpoint.model.eval()
    batch = checkpoint.schema.encode(frame, with_label=False)
    logits = []
    with torch.inference_mode():
        for start in range(0, len(batch), SCORE_BATCH):
            logits.append(model(batch.index(slice(start, start + SCORE_BATCH))).float())
    logit = torch.cat(logits) if logits else torch.zeros(0)
    return logit.double().numpy(), torch.sigmoid(logit).double().numpy()


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _per_request(request: np.ndarray, a: np.ndarray, b: np.ndarray, top_k: int) -> dict[str, Any]:
    """Ranking agreement within requests of at least two candidates: mean top-k overlap
    (|top_k(a) & top_k(b)| / min(k, n)) and mean within-request Spearman (NaN-free requests only)."""
    frame = pd.DataFrame({"r": request, "a": a, "b": b})
    by = frame.groupby("r", sort=False)
    n = by["a"].transform("size").to_numpy()
    # ties broken by candidate order, as the ranker's stable argsort breaks them
    top_a = by["a"].rank(method="first", ascending=False).to_numpy() <= top_k
    top_b = by["b"].rank(method="first", ascending=False).to_numpy() <= top_k
    ranked = n >= 2
    if not ranked.any():
        return {"ranked_requests": 0, "overlap": float("nan"), "spearman": float("nan")}
    sub = pd.DataFrame({
        "r": request[ranked], "both": (top_a & top_b)[ranked], "n": n[ranked],
        "ra": by["a"].rank(method="average").to_numpy()[ranked], "rb": by["b"].rank(method="average").to_numpy()[ranked],
    })
    per = sub.groupby("r", sort=False).agg(both=("both", "sum"), n=("n", "first"))
    overlap = (per["both"] / np.minimum(top_k, per["n"])).to_numpy()
    sub["ra"] -= sub.groupby("r", sort=False)["ra"].transform("mean")
    sub["rb"] -= sub.groupby("r", sort=False)["rb"].transform("mean")
    sub["ab"], sub["aa"], sub["bb"] = sub["ra"] * sub["rb"], sub["ra"] ** 2, sub["rb"] ** 2
    sums = sub.groupby("r", sort=False)[["ab", "aa", "bb"]].sum()
    ok = (sums["aa"] > 0) & (sums["bb"] > 0)  # a request whose scores all tie has no order to compare
    rho = (sums["ab"][ok] / np.sqrt(sums["aa"][ok] * sums["bb"][ok])).to_numpy()
    return {"ranked_requests": len(per), "overlap": float(overlap.mean()), "spearman": float(rho.mean()) if len(rho) else float("nan")}


def served_metrics(frame: pd.DataFrame, scores: dict[str, np.ndarray], outcomes: pd.DataFrame | None) -> dict[str, Any]:
    """AUC, UAUC and LogLoss of each model's scores where outcomes (request_id, item_id, label) have joined,
    and challenger minus reference. A later outcome of the same (request, item) replaces an earlier one."""
    from models.metrics import all_metrics
    from serving.serving_log import join_outcomes

    if outcomes is None or not len(outcomes):
        return {"joined": 0}
    keyed = frame[["request_id", USER_KEY, ITEM_KEY]].assign(**{f"_p_{k}": v for k, v in scores.items()})
    joined = join_outcomes(keyed, outcomes)
    out: dict[str, Any] = {"joined": len(joined)}
    if joined.empty or joined["label"].nunique() < 2:
        return out
    y, users = joined["label"].to_numpy(np.float64), joined[USER_KEY].to_numpy()
    for name in scores:
        out[name] = all_metrics(y, joined[f"_p_{name}"].to_numpy(), users)
    if CHALLENGER in out and REFERENCE in out:
        out["delta"] = {m: out[CHALLENGER][m] - out[REFERENCE][m] for m in ("auc", "uauc", "logloss")}
    return out


def shadow_compare(
    records: Iterable[dict[str, Any]],
    features_dir: Path,
    contract: DatasetSchema,
    challenger_dir: Path,
    reference_dir: Path,
    outcomes: pd.DataFrame | None = None,
    top_k: int = 10,
) -> dict[str, Any]:
    """Both checkpoints on the served samples of `records` (see `served_frame`): score agreement (Pearson on
    probabilities and on logits, Spearman), ranking agreement within requests (mean top-k overlap, mean
    Spearman), and, where `outcomes` join, each model's served AUC/UAUC/LogLoss and their difference.
    JSON-able (NaN -> None)."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    frame = served_frame(records, features_dir, contract)
    logit_c, p_c = score_frame(challenger_dir, frame)
    logit_r, p_r = score_frame(reference_dir, frame)
    request = pd.factorize(frame["request_id"])[0]
    ranking = _per_request(request, p_c, p_r, top_k)
    report = {
        "requests": int(request.max() + 1) if len(request) else 0,
        "samples": len(frame),
        "served_models": sorted({str(m) for m in frame["served_model"]}),
        "score_pearson": _pearson(p_c, p_r),
        "logit_pearson": _pearson(logit_c, logit_r),
        "score_spearman": _pearson(pd.Series(p_c).rank().to_numpy(), pd.Series(p_r).rank().to_numpy()),
        "mean_score": {CHALLENGER: float(p_c.mean()), REFERENCE: float(p_r.mean())},
        "top_k": int(top_k),
        "ranked_requests": ranking["ranked_requests"],
        f"top{top_k}_overlap": ranking["overlap"],
        "request_spearman": ranking["spearman"],
        "served": served_metrics(frame, {CHALLENGER: p_c, REFERENCE: p_r}, outcomes),
    }
    return jsonable(report)


__all__ = ["log_samples", "score_frame", "served_frame", "served_metrics", "shadow_compare"]
