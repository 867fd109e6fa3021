"""The gate's knobs: the `validate:` section of params.yaml, its only source (no defaults in code)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from common.params import ParamsSection
from common.jsonable import jsonable

Band = tuple[float | None, float | None]


@dataclass
class ValidationConfig(ParamsSection):
    """See the comments under `validate:` in params.yaml for what each knob means."""

    SECTION = "validate"

    missing_rate_bands: dict[str, tuple[float, float]]  # view -> [min, max] of mean(missing_view__<view>), per split
    ranges: dict[str, Band]  # column -> inclusive [min, max]; None leaves a side open; nulls pass
    value_sets: dict[str, tuple[Any, ...]]  # column -> allowed values; nulls pass
    min_rows: int  # per split
    check_mask_consistency: bool  # masks agree with the nulls they describe
    max_examples: int  # offending values quoted per failure

    def validate(self) -> None:
        """Type and range checks naming the key to fix; stores the bands as float tuples."""
        for key in ("missing_rate_bands", "ranges", "value_sets"):
            if not isinstance(getattr(self, key), dict):
                raise ValueError(f"validate.{key} must be a mapping, got {type(getattr(self, key)).__name__}")
        bands = {}
        for view, band in self.missing_rate_bands.items():
            lo, hi = _band(f"validate.missing_rate_bands.{view}", band, open_ends=False)
            if not 0.0 <= lo <= hi <= 1.0:  # type: ignore[operator]
                raise ValueError(f"validate.missing_rate_bands.{view} must lie within [0, 1], got {band!r}")
            bands[str(view)] = (lo, hi)
        self.missing_rate_bands = bands  # type: ignore[assignment]
        self.ranges = {str(c): _band(f"validate.ranges.{c}", r, open_ends=True) for c, r in self.ranges.items()}
        for col, values in self.value_sets.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"validate.value_sets.{col} must be a non-empty list, got {values!r}")
        self.value_sets = {str(c): tuple(v) for c, v in self.value_sets.items()}
        for key in ("min_rows", "max_examples"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"validate.{key} must be an integer >= 0, got {value!r}")
        if not isinstance(self.check_mask_consistency, bool):
            raise ValueError(f"validate.check_mask_consistency must be true or false, got {self.check_mask_consistency!r}")

    def to_dict(self) -> dict[str, Any]:
        """The section as params.yaml spells it (lists, not tuples), for reports and round trips."""
        return jsonable(asdict(self))


def _band(name: str, value: Any, *, open_ends: bool) -> Band:
    """A [min, max] pair of numbers (None allowed on a side when `open_ends`), min <= max."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{name} must be a [min, max] pair, got {value!r}")
    for v in value:
        if v is None and open_ends:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{name} must hold numbers{' or null' if open_ends else ''}, got {value!r}")
    lo, hi = (None if v is None else float(v) for v in value)
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"{name} has min > max: {value!r}")
    return lo, hi
