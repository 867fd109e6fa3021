"""Great Expectations, imported in one place so its usage analytics are off before it loads."""
from __future__ import annotations

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402

__all__ = ["gx", "gxe"]
