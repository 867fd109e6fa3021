"""The BentoML model store and its production pointer: save a checkpoint, find and move production.

BentoML keeps versions of a model under `$BENTOML_HOME/models/<name>/` but has no notion of which
one serves. The production pointer is one small JSON file, `$BENTOML_HOME/production/<name>.json`
({"tag", "previous", "history"}), replaced with a rename, so readers see the old champion or the
new one and never a half-written file. Labels on a stored model record the stage it had when it
was saved; the pointer is what counts.

The store is `$BENTOML_HOME`, else the project's own `data/bentoml` (components.lifecycle.model_store), read
on every call: BentoML itself reads it once per process, so the functions here point BentoML at it.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path
from typing import Any

from common.files import atomic_write_json
from components.lifecycle.model_store import bentoml_home, bentoml_model_store
from common.jsonable import jsonable

POINTER_DIR = "production"
HISTORY_LIMIT = 50
FULL_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*:[A-Za-z0-9_.-]+$")  # name:version, as BentoML writes tags


class StoreError(RuntimeError):
    """The model store or its production pointer is not usable as found; the message names the fix."""


def store_home() -> Path:
    """The model store's root: $BENTOML_HOME, else <project>/data/bentoml (never ~/bentoml, which
    every checkout on the machine would share)."""
    return bentoml_home()


def _model_store() -> Any:
    """BentoML's store at the current store_home(), also made BentoML's default for this process."""
    return bentoml_model_store()


def pointer_path(name: str) -> Path:
    """The production pointer file of the model `name`."""
    return store_home() / POINTER_DIR / f"{name}.json"


def save_to_store(checkpoint_dir: Path, name: str, labels: dict[str, str], metadata: dict,
                  files: dict[str, str] | None = None) -> str:
    """Copy a checkpoint folder into the store as a new version of `name`; returns the tag "name:version".
    The stored model's path holds the checkpoint's files as they are (models.load_checkpoint reads it),
    plus `files` (name -> text, e.g. the model card)."""
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
        for file_name, text in (files or {}).items():
            (Path(ref.path) / file_name).write_text(text)
    return str(ref.tag)


def _metadata_safe(obj: Any) -> Any:
    """Metadata as BentoML takes it: plain JSON values (common.jsonable: NaN -> None, numpy -> Python,
    tuples -> lists), then no None (BentoML refuses it): None entries of mappings are dropped, None
    list items written "n/a"; anything else that is not a JSON value becomes its str()."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return ["n/a" if v is None else strip(v) for v in value]
        return value if isinstance(value, (str, int, float, bool)) else str(value)

    return strip(jsonable(obj))


def _read_pointer(name: str) -> dict[str, Any]:
    """The pointer of `name` ({} before the first promotion), checked: a hand-edited or truncated file
    must stop every reader with the file and the fix named, not with a traceback deep in a step."""
    path = pointer_path(name)
    if not path.exists():
        return {}
    fix = (
        f'fix it to {{"tag": "{name}:<version>"}} with a version `bentoml models list {name}` shows '
        f"(BENTOML_HOME={store_home()}), or delete it to start with no production model"
    )
    try:
        pointer = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise StoreError(f"production pointer {path} is not valid JSON ({e}); {fix}") from e
    if not isinstance(pointer, dict):
        raise StoreError(f"production pointer {path} holds {json.dumps(pointer)[:80]}, not a JSON object; {fix}")
    tag = pointer.get("tag")
    if not isinstance(tag, str) or not FULL_TAG.match(tag):
        raise StoreError(f"production pointer {path} has tag {json.dumps(tag)[:80]}, not a string \"name:version\"; {fix}")
    if tag.split(":", 1)[0] != name:
        raise StoreError(f"production pointer {path} names {tag}, a version of another model than '{name}'; {fix}")
    return pointer


def production_tag(name: str) -> str | None:
    """The tag of the production model named `name`, or None before the first promotion."""
    return _read_pointer(name).get("tag")


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
        pointer_path(name),
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
        raise StoreError(
            f"production pointer {pointer_path(name)} names {tag}, which is not in the store {store_home()}; "
            "restore the model or point production at another version"
        ) from e


def served_tag(tag_or_name: str) -> str:
    """The model a user's tag names for serving. A full "name:version" is taken as given; a bare name
    (or "name:latest") means that name's production model: BentoML would resolve it to the newest
    version, which may be a refused candidate (promote keeps those as stage=candidate)."""
    name, _, version = tag_or_name.strip().partition(":")
    if version and version != "latest":
        if not FULL_TAG.match(tag_or_name.strip()):
            raise StoreError(f"model tag {tag_or_name!r} is not \"name:version\"; e.g. asymdiffrec:6ge4s2hl26v32ax4")
        return tag_or_name.strip()
    tag = production_tag(name)
    if tag is None:
        raise StoreError(
            f"'{tag_or_name}' names no version and '{name}' has no production model in {store_home()} "
            f"(no {pointer_path(name)}); promote a model first (make pipeline) or give a full tag {name}:<version>"
        )
    return tag
