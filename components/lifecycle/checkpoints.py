"""Where the train step leaves its checkpoints, as every lifecycle step reads them."""
from __future__ import annotations

from pathlib import Path

from common.files import file_digest
from models.checkpoint import WEIGHTS

CANDIDATE = "asymdiffrec"  # <models>/asymdiffrec: the candidate for production
BASE = "base"  # <models>/base: its base model, trained beside it on the same data and seed
FOLDERS = {CANDIDATE: "asymdiffrec", BASE: "base"}  # checkpoint folder -> the model variant trained into it
SUMMARY = "train.json"


def candidate_dir(models_dir: Path) -> Path:
    return Path(models_dir) / CANDIDATE


def base_dir(models_dir: Path) -> Path:
    return Path(models_dir) / BASE


def weights_digest(checkpoint_dir: Path) -> str:
    """md5 of a checkpoint's weights: names exactly which weights were scored or promoted."""
    path = Path(checkpoint_dir) / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; a checkpoint folder holds {WEIGHTS}")
    return file_digest(path)
