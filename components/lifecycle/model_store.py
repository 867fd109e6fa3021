"""Process settings a step needs before it touches its libraries: which BentoML model store it reads.

Without BENTOML_HOME, BentoML would use ~/bentoml, one store shared by every checkout on the machine,
so one clone's pipeline could evaluate against, and promote over, another clone's champion. The
project's default is its own `data/bentoml` (git-ignored; `.dvcignore` keeps DVC out of it; not a
dot-folder, which `bentoml build` refuses). The cluster image sets BENTOML_HOME to its volume.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from common.params import PROJECT_ROOT

DEFAULT_BENTOML_HOME = PROJECT_ROOT / "data" / "bentoml"


def bentoml_home() -> Path:
    """The model store's root, absolute: $BENTOML_HOME, else <project>/data/bentoml. Read on every
    call (tests and KFP steps set it per run); absolute, so a subprocess in another folder agrees."""
    env = os.environ.get("BENTOML_HOME")
    return Path(env).expanduser().resolve() if env else DEFAULT_BENTOML_HOME


def use_bentoml_home(home: str | Path = "") -> Path:
    """Make `home` ("": $BENTOML_HOME, else the project's store) this process's model store: sets
    BENTOML_HOME (so the processes it starts inherit it) and, when BentoML is already imported, points
    BentoML's own store there too (BentoML reads the variable once). Returns the store's root."""
    path = Path(home).expanduser().resolve() if home else bentoml_home()
    os.environ["BENTOML_HOME"] = str(path)
    if "bentoml" in sys.modules:
        _point_bentoml(path)
    return path


def _point_bentoml(home: Path) -> Any:
    """BentoML's model store at `home`/models, made BentoML's default for this process, so
    `bentoml.models.get` anywhere in the process reads the same store as the caller. Called with
    BENTOML_HOME already set, so a fresh BentoML evaluates its home there, never at ~/bentoml."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    models = Path(home) / "models"
    models.mkdir(parents=True, exist_ok=True)
    if Path(BentoMLContainer.model_store.get()._path).resolve() != models.resolve():
        BentoMLContainer.bentoml_home.set(str(home))
        BentoMLContainer.model_store.set(ModelStore(str(models)))
    return BentoMLContainer.model_store.get()


def bentoml_model_store() -> Any:
    """BentoML's model store of this process, at `bentoml_home()` (see use_bentoml_home)."""
    os.environ["BENTOML_HOME"] = str(bentoml_home())
    return _point_bentoml(bentoml_home())
