"""Read `params.yaml`, the single home of every knob, with errors that name the missing key."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # where params.yaml, dvc.yaml and bentofile.yaml lie
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"


def load_params(path: Path | str | None = None) -> dict[str, Any]:
    path = Path(path) if path else DEFAULT_PARAMS
    if not path.exists():
        raise FileNotFoundError(f"params file {path} not found; pass --params PATH or run from the project root")
    with open(path) as f:
        params = yaml.safe_load(f) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path} must hold a mapping of sections, got {type(params).__name__}")
    return params


def section(params: dict[str, Any], *keys: str) -> Any:
    """params['a']['b'] with a message naming the dotted key when it is absent."""
    node: Any = params
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            dotted = ".".join(keys[: depth + 1])
            raise KeyError(f"params.yaml lacks '{dotted}'; add it (see the defaults in the project's params.yaml)")
        node = node[key]
    return node


def with_overrides(section: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A copy of a params section with some keys replaced: how a pipeline's scalar knobs (epochs,
    seed, sizes) land in the section a step function reads, without naming the section's other keys."""
    unknown = set(overrides) - set(section)
    if unknown:
        raise KeyError(f"overrides name key(s) {sorted(unknown)} absent from the section; keys: {sorted(section)}")
    return {**section, **overrides}
