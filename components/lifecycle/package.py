"""Package step: `bentoml build` of the serving service around the production model.

    python -m components.lifecycle.package --out metrics/package.json --params params.yaml

Writes {"tag", "bento", "path", "labels", "metadata", "files"}: the production model
(`serving.model_name`) and the Bento built around it (`bentoml containerize <bento>` makes the image).
With no production model yet (every candidate so far refused) it writes {"tag": null, "reason": ...}
and exits 0, so `dvc repro` completes and says why.

`bentoml build` refuses any path under a hidden folder, and the checkout may lie under one
(~/.cache/x/...). So the build runs in a temporary build context outside the checkout holding
exactly the files bentofile.yaml selects, plus `serving/packaged_model.json`, which names the model
the Bento serves (serving/config.py reads it; a checkout never has one).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import yaml

from common.files import atomic_write_json
from common.params import PROJECT_ROOT, load_params, section
from components.lifecycle.model_card import CARD_FILE
from models.checkpoint import CONFIG, SCHEMA, WEIGHTS
from serving.config import PACKAGED_MODEL_FILE

BENTOFILE = "bentofile.yaml"
PACKAGED_MODEL = Path("serving") / PACKAGED_MODEL_FILE  # in the build context only; serving/config.py reads it
ALWAYS_EXCLUDED = ["__pycache__/", "*.pyc", ".*"]  # never shipped: caches, hidden files (BentoML skips these too)
# bentofile keys naming files `bentoml build` reads from the build context (not shipped as sources)
BUILD_FILES = (("python", "requirements_txt"), ("conda", "environment_yml"), ("docker", "setup_script"),
               ("docker", "dockerfile_template"))


def read_bentofile(project_dir: Path = PROJECT_ROOT) -> dict[str, Any]:
    path = Path(project_dir) / BENTOFILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; the package step builds the Bento that bentofile.yaml describes")
    config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config, dict) or not config.get("service"):
        raise ValueError(f"{path} must be a mapping with a 'service:' (e.g. serving.service:AsymDiffRecService)")
    return config


def bento_sources(project_dir: Path = PROJECT_ROOT) -> list[str]:
    """The project files the Bento ships, as posix paths from the project root: bentofile.yaml's
    `include` patterns (paths from the root) minus its `exclude` patterns, matched as BentoML
    matches them (gitignore-style)."""
    from pathspec import PathSpec

    project_dir = Path(project_dir)
    config = read_bentofile(project_dir)
    include = [str(p) for p in config.get("include") or []]
    if not include:
        raise ValueError(f"{project_dir / BENTOFILE} has no 'include:'; list what the service imports (the package step ships only that)")
    exclude = PathSpec.from_lines("gitwildmatch", [str(p) for p in config.get("exclude") or []] + ALWAYS_EXCLUDED)
    selected: set[str] = set()
    for pattern in include:
        found = [p for p in project_dir.glob(pattern.lstrip("/")) if p.is_file()]
        if not found and not any(c in pattern for c in "*?[") and Path(pattern) not in (PACKAGED_MODEL, Path(CARD_FILE)):
            raise FileNotFoundError(f"{project_dir / BENTOFILE} includes {pattern}, which does not exist; fix the list "
                                    "(it names the files the service imports)")
        selected.update(p.relative_to(project_dir).as_posix() for p in found)
    return sorted(p for p in selected if not exclude.match_file(p))


def build_context(model_tag: str, project_dir: Path = PROJECT_ROOT, model_card: str | None = None) -> Path:
    """A fresh folder outside any hidden folder with bentofile.yaml, the files it selects, the files
    `bentoml build` reads (requirements), serving/packaged_model.json naming `model_tag` and the
    model's card (model_card.md at the root)."""
    project_dir = Path(project_dir)
    config = read_bentofile(project_dir)
    ctx = Path(tempfile.mkdtemp(prefix="asymdiffrec-bento-")).resolve()
    hidden = [part for part in ctx.parts if part.startswith(".")]
    if hidden:
        shutil.rmtree(ctx, ignore_errors=True)
        raise RuntimeError(f"the temporary folder {ctx} lies under hidden folder(s) {hidden}, which `bentoml build` refuses; "
                           "set TMPDIR to a folder without a leading dot in its path")
    build_files = [config.get(a, {}).get(b) for a, b in BUILD_FILES if isinstance(config.get(a), dict)]
    for name in [BENTOFILE, *bento_sources(project_dir), *(str(f) for f in build_files if f)]:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or not (project_dir / rel).is_file():
            shutil.rmtree(ctx, ignore_errors=True)
            raise FileNotFoundError(f"{name} (named by {BENTOFILE}) is not a file inside {project_dir}; use a path from the project root")
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project_dir / rel, ctx / rel)
    atomic_write_json({"tag": model_tag}, ctx / PACKAGED_MODEL)
    if model_card is not None:
        (ctx / CARD_FILE).write_text(model_card)
    return ctx


def build_bento(model_tag: str, project_dir: Path = PROJECT_ROOT, model_card: str | None = None) -> str:
    """`bentoml build` in a build context holding exactly what the Bento needs, with the service pinned
    to `model_tag` and BentoML reading the project's model store; returns the Bento's tag."""
    from components.lifecycle.model_registry import store_home

    bentoml = Path(sys.executable).parent / "bentoml"
    env = dict(os.environ, ASYMDIFFREC_MODEL_TAG=model_tag, BENTOML_HOME=str(store_home()))
    ctx = build_context(model_tag, project_dir, model_card)
    try:
        proc = subprocess.run([str(bentoml), "build", "--output", "tag"], cwd=ctx, env=env, capture_output=True, text=True)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bentoml build failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    tags = [line.split("__tag__:", 1)[1].strip() for line in proc.stdout.splitlines() if "__tag__:" in line]
    if not tags:
        raise RuntimeError(f"bentoml build printed no tag:\n{proc.stdout[-2000:]}")
    return tags[-1]


def package_step(
    model_name: str, out_path: Path, build: bool = True, project_dir: Path = PROJECT_ROOT, bentoml_home: str = ""
) -> dict:
    """Build the Bento around the production model of the store `bentoml_home` ("": $BENTOML_HOME, else
    the project's data/bentoml) and write out_path (metrics/package.json). Raises if the pointer names a
    model the store lacks."""
    from components.lifecycle.model_store import use_bentoml_home
    from components.lifecycle.model_registry import champion_checkpoint, model_info, production_tag, store_home

    use_bentoml_home(bentoml_home)
    tag = production_tag(model_name)
    result: dict[str, Any]
    if tag is None:
        result = {"tag": None, "model_name": model_name, "store": str(store_home()),
                  "reason": f"no production model named '{model_name}' yet; promote a candidate first"}
    else:
        path = champion_checkpoint(model_name)  # raises, naming the fix, if the store lost the model
        if path is None:  # the pointer went away since production_tag read it
            raise RuntimeError(f"the production pointer of '{model_name}' vanished while packaging; re-run the package step")
        missing = [f for f in (WEIGHTS, SCHEMA, CONFIG) if not (path / f).exists()]
        if missing:
            raise FileNotFoundError(f"production model {tag} at {path} lacks {missing}; promote a complete checkpoint")
        info = model_info(tag)
        card = path / CARD_FILE  # promote writes it beside the weights; models promoted before it have none
        card_text = card.read_text() if card.exists() else None
        result = {"tag": tag, "model_name": model_name, "store": str(store_home()), "path": info["path"],
                  "labels": info["labels"], "metadata": info["metadata"], "model_card": CARD_FILE if card_text else None,
                  "bento": build_bento(tag, project_dir, card_text) if build else None, "files": bento_sources(project_dir)}
    atomic_write_json(result, Path(out_path))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Bento of the serving service around the production model.")
    parser.add_argument("--out", type=Path, default=Path("metrics/package.json"))
    parser.add_argument("--params", default="params.yaml", help="reads serving.model_name")
    args = parser.parse_args(argv)
    try:
        result = package_step(section(load_params(args.params), "serving", "model_name"), args.out)
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as e:
        print(f"package: {e}", file=sys.stderr)
        return 2
    print(f"production model: {result['tag']} ({result.get('path') or result.get('reason')}); bento: {result.get('bento')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
