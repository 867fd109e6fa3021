"""Serving knobs from params.yaml's `serving:` section, with environment overrides for deployments."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields

from pathlib import Path

import yaml

from components.common.params import DEFAULT_PARAMS, load_params

BENTO_YAML = Path(__file__).resolve().parents[2] / "bento.yaml"  # <bento>/src/serving/config.py -> <bento>/bento.yaml


def packaged_model_tag(name: str, bento_yaml: Path = BENTO_YAML) -> str | None:
    """The model a built Bento was packaged with (`bentoml build` records it in bento.yaml), so a
    container serves exactly that model without a model-store pointer."""
    if not bento_yaml.exists():
        return None
    info = yaml.safe_load(bento_yaml.read_text()) or {}
    tags = [m["tag"] for svc in info.get("services") or [] for m in svc.get("models") or []]
    return next((t for t in tags if t.split(":")[0] == name), None)


@dataclass(frozen=True)
class ServingConfig:
    model_name: str = "asymdiffrec"
    max_candidates: int = 500
    batch_max_size: int = 4096
    batch_max_latency_ms: int = 50
    workers: int = 1  # service processes
    torch_threads: int = 1  # intra-op threads per worker: small batches run faster on one

    @classmethod
    def load(cls) -> "ServingConfig":
        path = os.environ.get("ASYMDIFFREC_PARAMS", str(DEFAULT_PARAMS))
        section = (load_params(path).get("serving") or {}) if os.path.exists(path) else {}
        unknown = set(section) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"serving has unknown key(s) {sorted(unknown)}; allowed: {[f.name for f in fields(cls)]}")
        return cls(**section)

    def model_tag(self) -> str:
        """ASYMDIFFREC_MODEL_TAG; else, in a built Bento, the model it was built around; else the
        production model the promote step pointed at."""
        tag = os.environ.get("ASYMDIFFREC_MODEL_TAG") or packaged_model_tag(self.model_name)
        if tag:
            return tag
        from components.lifecycle.model_registry import production_tag

        tag = production_tag(self.model_name)
        if not tag:
            raise RuntimeError(
                f"no production model named '{self.model_name}' in the BentoML store (BENTOML_HOME); "
                "run the pipeline (make pipeline) or set ASYMDIFFREC_MODEL_TAG=name:version"
            )
        return tag
