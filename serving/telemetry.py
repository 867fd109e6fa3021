"""Prometheus metrics of what the service really sees, exposed on /metrics beside BentoML's own.

Counters rather than per-request gauges, so any window can be read with `rate()`:
  asymdiffrec_samples_total{endpoint}                  (user, item) samples scored
  asymdiffrec_samples_missing_total{endpoint,view}     ...of which the view was missing
      served missing share of a view = rate(missing_total) / rate(samples_total)
  asymdiffrec_feature_age_seconds{view}                histogram: per request, the median age of the view's
                                                       values served (seconds since their availability time)
  asymdiffrec_degraded_answers_total{endpoint}         answers given with the online store failing
  asymdiffrec_online_store_errors_total                failed online-store reads
  asymdiffrec_online_store_reconnects_total            new connections (after errors, or a changed store)
  asymdiffrec_online_store_up                          1 if the last read succeeded
  asymdiffrec_item_cache_{hits,misses}_total           item-cache look-ups
  asymdiffrec_serving_log_dropped_total                log records dropped because the writer fell behind
  asymdiffrec_model_info{tag}                          1 for the model being served
Every worker adds to the same series (BentoML runs Prometheus in multiprocess mode and serves them all).
"""
from __future__ import annotations

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

AGE_BUCKETS = (60, 600, 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 30 * 86400, 365 * 86400, float("inf"))

samples = Counter(name="asymdiffrec_samples", documentation="(user, item) samples scored", labelnames=["endpoint"])
samples_missing = Counter(
    name="asymdiffrec_samples_missing", documentation="samples scored with the feature view missing", labelnames=["endpoint", "view"]
)
feature_age = Histogram(
    name="asymdiffrec_feature_age_seconds",
    documentation="per request, the median age of the view's served values (seconds since available)",
    labelnames=["view"],
    buckets=AGE_BUCKETS,
)
degraded = Counter(name="asymdiffrec_degraded_answers", documentation="answers with the online store failing", labelnames=["endpoint"])
store_errors = Counter(name="asymdiffrec_online_store_errors", documentation="failed online-store reads")
store_reconnects = Counter(name="asymdiffrec_online_store_reconnects", documentation="new online-store connections")
store_up = Gauge(name="asymdiffrec_online_store_up", documentation="1 if the last online-store read succeeded", multiprocess_mode="livemostrecent")
cache_hits = Counter(name="asymdiffrec_item_cache_hits", documentation="item-cache hits")
cache_misses = Counter(name="asymdiffrec_item_cache_misses", documentation="item-cache misses")
log_dropped = Counter(name="asymdiffrec_serving_log_dropped", documentation="serving-log records dropped")
model_info = Gauge(name="asymdiffrec_model_info", documentation="the model being served", labelnames=["tag"], multiprocess_mode="max")


class Telemetry:
    """Turns each answered request (and the reader's and cache's running counts) into metric updates."""

    def __init__(self, model_tag: str, views: tuple[str, ...], stored_views: set[str]):
        self.views = views
        self.stored = [k for k, v in enumerate(views) if v in stored_views]
        self._seen = {"errors": 0, "reconnects": 0, "hits": 0, "misses": 0, "dropped": 0}
        model_info.labels(tag=model_tag).set(1)

    def record(self, endpoint: str, view_missing: np.ndarray, age_s: np.ndarray, is_degraded: bool) -> None:
        samples.labels(endpoint=endpoint).inc(len(view_missing))
        for k, count in enumerate(view_missing.sum(0).tolist()):
            if count:
                samples_missing.labels(endpoint=endpoint, view=self.views[k]).inc(count)
        for k in self.stored:
            ages = age_s[:, k]
            ages = ages[~np.isnan(ages)]
            if len(ages):
                feature_age.labels(view=self.views[k]).observe(float(np.median(ages)))
        if is_degraded:
            degraded.labels(endpoint=endpoint).inc()

    def sync(self, reader, cache, log) -> None:
        """Add what the reader, cache and log counted since the last call."""
        now = {
            "errors": reader.errors, "reconnects": reader.reconnects, "hits": cache.hits, "misses": cache.misses,
            "dropped": log.dropped if log else 0,
        }
        for key, metric in (("errors", store_errors), ("reconnects", store_reconnects), ("hits", cache_hits),
                            ("misses", cache_misses), ("dropped", log_dropped)):
            delta = now[key] - self._seen[key]
            if delta > 0:
                metric.inc(delta)
        self._seen = now
        store_up.set(1 if reader.healthy else 0)
