"""Names more than one layer speaks: the dataset's splits and the reported metrics."""
from __future__ import annotations

SPLITS = ("train", "validation", "test")  # by event time, oldest first
METRICS = ("auc", "uauc", "logloss")  # every report's metrics, in this order
HIGHER_IS_BETTER = {"auc": True, "uauc": True, "logloss": False}
