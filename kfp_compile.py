"""Compile the Kubeflow pipeline to YAML for upload in the Kubeflow Pipelines UI (or `kfp run create`).

    python kfp_compile.py                      # -> asymdiffrec_pipeline.yaml
    python kfp_compile.py --output out/p.yaml
    ASYMDIFFREC_IMAGE=registry.example.com/asymdiffrec:0.1.0 python kfp_compile.py
"""
from __future__ import annotations

import argparse
from pathlib import Path

from kfp import compiler

DEFAULT_OUTPUT = Path("asymdiffrec_pipeline.yaml")


def compile_pipeline(output: Path = DEFAULT_OUTPUT) -> Path:
    from pipelines.asymdiffrec_pipeline import asymdiffrec_pipeline

    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=asymdiffrec_pipeline, package_path=str(output))
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"pipeline YAML to write (default: {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    from pipelines.image import PROJECT_IMAGE

    print(f"wrote {compile_pipeline(args.output)} (image {PROJECT_IMAGE})")


if __name__ == "__main__":
    main()
