"""Package step: check the production model is in the BentoML store and record what will be served.

    python -m components.package --out metrics/package.json --params params.yaml

Writes {"tag", "path", "labels", "metadata"} of the production model (`serving.model_name`), which is
what `bentoml serve` / `bentoml build` pick up. With no production model yet (every candidate so
far refused) it writes {"tag": null, "reason": ...} and exits 0, so `dvc repro` completes and says why.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from components.io import atomic_write_json
from components.params import load_params, section


def package_step(model_name: str, out_path: Path) -> dict:
    """Until the serving service is built here: check the production model is in the store and write out_path
    (metrics/package.json: tag, path, labels). Raises if the pointer names a model the store lacks."""
    from components.model_registry import champion_checkpoint, model_info, production_tag, store_home

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
                  "labels": info["labels"], "metadata": info["metadata"]}
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
    print(f"production model: {result['tag']} ({result.get('path') or result.get('reason')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
