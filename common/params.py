"""Read `params.yaml`, the single home of every knob, with errors that name the missing key; and
`ParamsSection`, the one way a section becomes a typed config."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # where params.yaml, dvc.yaml and bentofile.yaml lie
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


T = TypeVar("T", bound="ParamsSection")


class ParamsSection:
    """A dataclass read from one section of params.yaml: the project's one loader of knobs.

    `from_dict` rejects unknown keys (naming the section and the allowed keys), casts YAML lists to
    tuples where the field is one, and calls the class's `validate()`. A subclass names its section
    in `SECTION` (e.g. "promote") so messages point at the dotted key to fix."""

    SECTION = ""

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any] | None = None, **overrides: Any) -> T:
        """Build from a dict, rejecting unknown keys and casting lists to tuples where the field is one."""
        if d is not None and not isinstance(d, dict):
            raise ValueError(f"params.yaml {cls.SECTION or cls.__name__} must be a mapping, got {type(d).__name__}")
        d = {**(d or {}), **overrides}
        names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"{cls.SECTION or cls.__name__} has unknown key(s) {unknown}; allowed: {sorted(names)}")
        for key, value in list(d.items()):
            default = names[key].default if names[key].default is not dataclasses.MISSING else None
            if isinstance(default, tuple) and isinstance(value, list):
                d[key] = tuple(value)
        missing = sorted(n for n, f in names.items() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and n not in d)
        if missing:
            raise ValueError(f"{cls.SECTION or cls.__name__} lacks key(s) {missing}; add them to params.yaml")
        obj = cls(**d)
        obj.validate()
        return obj

    def validate(self) -> None:
        """Range and type checks of a subclass; nothing by default."""

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]
