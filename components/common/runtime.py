"""Process settings a step needs before it imports its libraries."""
from __future__ import annotations

import os


def use_bentoml_home(home: str) -> None:
    """Point BentoML at a model store. BentoML reads BENTOML_HOME when it is first imported, so a
    step calls this before importing anything that imports bentoml; "" keeps the environment's."""
    if home:
        os.environ["BENTOML_HOME"] = home
