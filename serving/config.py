"""Serving knobs from params.yaml's `serving:` section, and which model the service serves.

The model, first match wins: ASYMDIFFREC_MODEL_TAG (a full "name:version" as given; a bare name means
that name's production model); inside a built Bento, the model it was packaged with
(`packaged_model.json` beside this file, written by the package step into its build context only, so
a checkout never has one and nothing outside the checkout can choose the model); else the production
model the promote step pointed at, in the store $BENTOML_HOME (default: the project's data/bentoml).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from common.params import DEFAULT_PARAMS, PROJECT_ROOT, ParamsSection, load_params

PACKAGED_MODEL_FILE = "packaged_model.json"
PACKAGED_MODEL = Path(__file__).resolve().with_name(PACKAGED_MODEL_FILE)  # <bento>/src/serving/packaged_model.json


def packaged_model_tag(name: str, marker: Path = PACKAGED_MODEL) -> str | None:
    """The model a built Bento was packaged with (None outside a Bento), so a container serves
    exactly that model without a model-store pointer."""
    if not marker.exists():
        return None
    try:
        tag = json.loads(marker.read_text()).get("tag")
    except (json.JSONDecodeError, AttributeError) as e:
        raise RuntimeError(f"{marker} must be {{\"tag\": \"{name}:<version>\"}} (the package step writes it); rebuild the Bento") from e
    if not isinstance(tag, str) or tag.partition(":")[0] != name or not tag.partition(":")[2]:
        raise RuntimeError(f"{marker} names {tag!r}, not a version of '{name}' (serving.model_name); rebuild the Bento")
    return tag


def in_bento() -> bool:
    """Whether this code runs from a built Bento (the package step left its marker beside this file)."""
    return PACKAGED_MODEL.exists()


def use_model_store() -> None:
    """From a checkout, point BentoML at the project's model store ($BENTOML_HOME, else data/bentoml), the
    store the pipeline promotes into, so `bentoml serve` from the root finds the production model.
    Inside a Bento, BentoML serves the Bento's own models; nothing to do."""
    if not in_bento():
        from components.lifecycle.model_store import use_bentoml_home

        use_bentoml_home()


@dataclass(frozen=True)
class ServingConfig(ParamsSection):
    """The params.yaml `serving:` section."""

    SECTION = "serving"

    model_name: str = "asymdiffrec"
    max_candidates: int = 1000
    max_score_pairs: int = 1000
    workers: int | str = "auto"  # service processes; "auto": one per CPU this process may use
    torch_threads: int = 1  # intra-op threads per worker: small batches run faster on one
    item_cache_size: int = 100_000  # items kept in each worker's cache; 0 turns it off
    store_check_seconds: float = 2.0  # how often a worker looks for a re-materialized or replaced store
    reconnect_seconds: float = 1.0  # after a store error, probe it on a new connection this often (reads fail fast meanwhile)
    ready_requires_store: bool = False  # /readyz also fails while the online store is unreachable
    access_log: bool = True  # BentoML's access log line per request (the serving log records every answer anyway)
    log_dir: str = "data/serving_log"  # the serving log (relative: to the project root); "" turns it off
    log_max_mb: float = 64.0  # per worker: the log rotates at this size...
    log_files: int = 4  # ...and keeps this many files (so at most log_max_mb * log_files per worker)

    def validate(self) -> None:
        if not isinstance(self.model_name, str) or not self.model_name or ":" in self.model_name:
            raise ValueError(f"serving.model_name must be a model name without a version, got {self.model_name!r}")
        for name in ("max_candidates", "max_score_pairs", "torch_threads", "log_files"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"serving.{name} must be an integer >= 1, got {value!r}")
        if self.workers != "auto" and (not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 1):
            raise ValueError(f"serving.workers must be an integer >= 1 or 'auto', got {self.workers!r}")
        if not isinstance(self.item_cache_size, int) or isinstance(self.item_cache_size, bool) or self.item_cache_size < 0:
            raise ValueError(f"serving.item_cache_size must be an integer >= 0 (0 turns the cache off), got {self.item_cache_size!r}")
        for name in ("store_check_seconds", "reconnect_seconds", "log_max_mb"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"serving.{name} must be a number >= 0, got {value!r}")
        for name in ("ready_requires_store", "access_log"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"serving.{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.log_dir, str):
            raise ValueError(f"serving.log_dir must be a path (or \"\" to turn the serving log off), got {self.log_dir!r}")

    @property
    def worker_count(self) -> int:
        """Workers to start: `workers`, or with "auto" one per CPU this process may run on."""
        if self.workers == "auto":
            return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        return int(self.workers)

    def log_path(self) -> Path | None:
        """Where the serving log goes (None: off)."""
        if not self.log_dir:
            return None
        path = Path(self.log_dir)
        return path if path.is_absolute() else PROJECT_ROOT / path

    @classmethod
    def load(cls) -> "ServingConfig":
        """From ASYMDIFFREC_PARAMS (default: the project's params.yaml); defaults when there is none."""
        path = os.environ.get("ASYMDIFFREC_PARAMS", str(DEFAULT_PARAMS))
        return cls.from_dict(load_params(path).get("serving") if os.path.exists(path) else None)

    def model_tag(self) -> str:
        """The tag to serve (see the module docstring): never a bare name, which BentoML would resolve
        to the newest version, a refused candidate as likely as the production model."""
        from components.lifecycle.model_registry import served_tag

        explicit = os.environ.get("ASYMDIFFREC_MODEL_TAG", "").strip()
        if explicit:
            return served_tag(explicit)
        tag = packaged_model_tag(self.model_name)
        if tag:
            return tag
        from components.lifecycle.model_registry import production_tag, store_home

        tag = production_tag(self.model_name)
        if not tag:
            raise RuntimeError(
                f"no production model named '{self.model_name}' in the BentoML store {store_home()} (BENTOML_HOME); "
                "run the pipeline (make pipeline) or set ASYMDIFFREC_MODEL_TAG=name:version"
            )
        return tag
