"""One way to turn results into standard JSON: every report of the project goes through `jsonable`."""
from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import numpy as np


def jsonable(obj: Any) -> Any:
    """Plain JSON values: NaN and infinities become None (so `dvc metrics show` and strict parsers read
    the file), numpy scalars and arrays become Python numbers and lists, timestamps ISO strings,
    tuples lists and mapping keys strings."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, np.ndarray)):
        return [jsonable(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(obj) or math.isinf(obj) else float(obj)
    if isinstance(obj, np.datetime64):
        return None if np.isnat(obj) else str(np.datetime_as_string(obj, unit="auto")) + "Z"
    if isinstance(obj, (datetime, date)):  # pandas.Timestamp included
        return None if obj != obj else obj.isoformat()
    return obj
