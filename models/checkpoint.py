"""Checkpoints as a folder of plain files: weights (a state_dict of tensors), schema and config JSON.

Loading uses `torch.load(weights_only=True)`, so a checkpoint cannot run code when opened.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models.asymdiffrec import Recommender, build_model
from models.config import ModelConfig, TrainConfig
from models.schema import FeatureSchema

WEIGHTS = "weights.pt"
SCHEMA = "schema.json"
CONFIG = "config.json"


@dataclass
class Checkpoint:
    model: Recommender
    schema: FeatureSchema
    model_config: ModelConfig
    train_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | Path,
    model: Recommender,
    schema: FeatureSchema,
    train_config: TrainConfig | dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write weights.pt, schema.json and config.json into the folder `path` (created if needed)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, path / WEIGHTS)
    schema.save(path / SCHEMA)
    train = train_config.to_dict() if isinstance(train_config, TrainConfig) else dict(train_config or {})
    config = {"model": model.cfg.to_dict(), "train": train, "metrics": metrics or {}}
    (path / CONFIG).write_text(json.dumps(config, indent=2, default=float))
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model from its config and schema, then load the weights (tensors only)."""
    path = Path(path)
    for name in (WEIGHTS, SCHEMA, CONFIG):
        if not (path / name).exists():
            raise FileNotFoundError(f"{path / name} not found; a checkpoint folder holds {WEIGHTS}, {SCHEMA} and {CONFIG}")
    schema = FeatureSchema.load(path / SCHEMA)
    config = json.loads((path / CONFIG).read_text())
    model_config = ModelConfig.from_dict(config["model"])
    model = build_model(schema, model_config)
    state = torch.load(path / WEIGHTS, map_location=map_location, weights_only=True)
    model.load_state_dict(state)
    model.to(map_location).eval()
    return Checkpoint(model, schema, model_config, config.get("train", {}), config.get("metrics", {}))
