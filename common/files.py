"""Files: atomic writes (a crash or a failed check never leaves a half-written file behind) and digests."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tmp_beside(path: Path) -> Path:
    """An empty file beside `path` with the permissions a plain open() would give (mkstemp's are 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    return Path(tmp)


def atomic_write_parquet(frame: pd.DataFrame, path: Path) -> None:
    tmp = _tmp_beside(path)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(text: str, path: Path) -> None:
    tmp = _tmp_beside(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(obj: Any, path: Path) -> None:
    atomic_write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", path)


def replace_dir(staged: Path, target: Path) -> None:
    """Swap a fully written `staged` folder into `target`; the old one is removed only after."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(staged, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def staging_dir_for(target: Path) -> Path:
    """A fresh empty folder beside `target` (same filesystem, so the final rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".staging", dir=target.parent))
    staged.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would make the published folder private
    return staged


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file's bytes (md5 is what DVC records; sha256 where tampering matters)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()
