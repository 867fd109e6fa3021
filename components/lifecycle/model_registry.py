"""The BentoML model store and its production pointer: save a checkpoint, find and move production.

BentoML keeps versions of a model under `$BENTOML_HOME/models/<name>/` but has no notion of which
one serves. The production pointer is one small JSON file, `$BENTOML_HOME/production/<name>.json`
({"tag", "previous", "history"}), replaced with a rename, so readers see the old champion or the
new one and never a half-written file. Labels on a stored model record the stage it had when it
was saved; the pointer is what counts.

The store is `$BENTOML_HOME` (default `~/bentoml`), read on every call: BentoML itself reads it once
per process, so the functions here hand BentoML the store explicitly.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

from components.common.files import atomic_write_json

POINTER_DIR = "production"
HISTORY_LIMIT = 50


def store_home() -> Path:
    """The model store's root: $BENTOML_HOME, else ~/bentoml (BentoML's default)."""
    return Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml").expanduser()


def _model_store() -> Any:
    """BentoML's store at the current $BENTOML_HOME; also made BentoML's default for this process,
    so `bentoml.models.get` elsewhere in the process reads the same store."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    home = store_home()
    (home / "models").mkdir(parents=True, exist_ok=True)
    current = BentoMLContainer.model_store.get()
    if Path(current._path).resolve() != (home / "models").resolve():
        BentoMLContainer.bentoml_home.set(str(home))
        BentoMLContainer.model_store.set(ModelStore(str(home / "models")))
    return BentoMLContainer.model_store.get()


def _pointer_path(name: str) -> Path:
    return store_home() / POINTER_DIR / f"{name}.json"


def save_to_store(checkpoint_dir: Path, name: str, labels: dict[str, str], metadata: dict) -> str:
    """Copy a checkpoint folder into the store as a new version of `name`; returns the tag "name:version".
    The stored model's path holds the checkpoint's files as they are (models.load_checkpoint reads it)."""
    import bentoml

    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        raise FileNotFoundError(f"checkpoint {checkpoint_dir} not found; run the train step first")
    bad = {k: v for k, v in labels.items() if not isinstance(v, str)}
    if bad:
        raise ValueError(f"model labels must be strings; got {bad} (format them, e.g. f'{{value:.4f}}')")
    with bentoml.models.create(name, labels=dict(labels), metadata=_metadata_safe(metadata), _model_store=_model_store()) as ref:
        for item in checkpoint_dir.iterdir():
            if item.is_file():
                shutil.copy2(item, Path(ref.path) / item.name)
    return str(ref.tag)


def _metadata_safe(obj: Any) -> Any:
    """BentoML metadata takes no None: drop None entries of mappings, write None list items as "n/a"."""
    if isinstance(obj, dict):
        return {str(k): _metadata_safe(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return ["n/a" if v is None else _metadata_safe(v) for v in obj]
    return obj


def _read_pointer(name: str) -> dict[str, Any]:
    path = _pointer_path(name)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RuntimeError(f"production pointer {path} is not valid JSON ({e}); fix or delete it") from e


def production_tag(name: str) -> str | None:
    """The tag of the production model named `name`, or None before the first promotion."""
    return _read_pointer(name).get("tag") or None


def set_production(name: str, tag: str) -> None:
    """Point production at `tag` (which must be a stored version of `name`), atomically; the previous
    tag is kept in "previous" and the "history" list, so a rollback is one more set_production."""
    import bentoml

    stored = bentoml.models.get(tag, _model_store=_model_store())
    if stored.tag.name != name:
        raise ValueError(f"tag {tag} is a version of '{stored.tag.name}', not of '{name}'")
    pointer = _read_pointer(name)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    history = (pointer.get("history") or []) + [{"tag": str(stored.tag), "since": now}]
    atomic_write_json(
        {"tag": str(stored.tag), "previous": pointer.get("tag"), "since": now, "history": history[-HISTORY_LIMIT:]},
        _pointer_path(name),
    )


def model_info(tag: str) -> dict[str, Any]:
    """Tag, path, labels and metadata of a stored model."""
    import bentoml

    stored = bentoml.models.get(tag, _model_store=_model_store())
    return {"tag": str(stored.tag), "path": str(stored.path), "labels": dict(stored.info.labels),
            "metadata": dict(stored.info.metadata)}


def champion_checkpoint(name: str) -> Path | None:
    """The checkpoint folder of the production model (inside the store), or None."""
    tag = production_tag(name)
    if tag is None:
        return None
    from bentoml.exceptions import NotFound

    try:
        return Path(model_info(tag)["path"])
    except NotFound as e:
        raise RuntimeError(
            f"production pointer {_pointer_path(name)} names {tag}, which is not in the store {store_home()}; "
            "restore the model or point production at another version"
        ) from e
