"""Package step: `bentoml build` of the serving service around the production model.

    python -m components.lifecycle.package --out metrics/package.json --params params.yaml

Writes {"tag", "bento", "path", "labels", "metadata"}: the production model (`serving.model_name`)
and the Bento built around it (`bentoml containerize <bento>` makes the image). With no production
model yet (every candidate so far refused) it writes {"tag": null, "reason": ...} and exits 0, so
`dvc repro` completes and says why.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from components.common.files import atomic_write_json
from components.common.params import PROJECT_ROOT, load_params, section




def build_bento(model_tag: str, project_dir: Path = PROJECT_ROOT) -> str:
    """`bentoml build` of bentofile.yaml with the service pinned to `model_tag`; returns the Bento's tag."""
    bentoml = Path(sys.executable).parent / "bentoml"
    env = dict(os.environ, ASYMDIFFREC_MODEL_TAG=model_tag)
    proc = subprocess.run(
        [str(bentoml), "build", "--output", "tag"], cwd=project_dir, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bentoml build failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    tags = [line.split("__tag__:", 1)[1].strip() for line in proc.stdout.splitlines() if "__tag__:" in line]
    if not tags:
        raise RuntimeError(f"bentoml build printed no tag:\n{proc.stdout[-2000:]}")
    return tags[-1]


def package_step(model_name: str, out_path: Path, build: bool = True) -> dict:
    """Build the Bento around the production model and write out_path (metrics/package.json).
    Raises if the pointer names a model the store lacks."""
    from components.lifecycle.model_registry import champion_checkpoint, model_info, production_tag, store_home

    tag = production_tag(model_name)
    if tag is None:
        result = {"tag": None, "model_name": model_name, "store": str(store_home()),
                  "reason": f"no production model named '{model_name}' yet; promote a candidate first"}
    else:
        path = champion_checkpoint(model_name)  # raises, naming the fix, if the store lost the model
        missing = [f for f in ("weights.pt", "schema.json", "config.json") if not (path / f).exists()]
        if missing:
            raise FileNotFoundError(f"production model {tag} at {path} lacks {missing}; promote a complete checkpoint")
        info = model_info(tag)
        result = {"tag": tag, "model_name": model_name, "store": str(store_home()), "path": info["path"],
                  "labels": info["labels"], "metadata": info["metadata"], "bento": build_bento(tag) if build else None}
    atomic_write_json(result, Path(out_path))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check the production model and record what will be served.")
    parser.add_argument("--out", type=Path, default=Path("metrics/package.json"))
    parser.add_argument("--params", default="params.yaml", help="reads serving.model_name")
    args = parser.parse_args(argv)
    try:
        result = package_step(section(load_params(args.params), "serving", "model_name"), args.out)
    except (FileNotFoundError, RuntimeError) as e:
        print(f"package: {e}", file=sys.stderr)
        return 2
    print(f"production model: {result['tag']} ({result.get('path') or result.get('reason')}); bento: {result.get('bento')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
