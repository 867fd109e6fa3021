"""Compile the Kubeflow pipelines to YAML for upload in the Kubeflow Pipelines UI (or `kfp run create`):
the training pipeline and the monitoring pipeline that starts it.

    python kfp_compile.py                      # -> asymdiffrec_pipeline.yaml, asymdiffrec_monitoring_pipeline.yaml
    python kfp_compile.py --output out/p.yaml --monitoring-output out/m.yaml
    ASYMDIFFREC_IMAGE=registry.example.com/asymdiffrec:0.1.0 python kfp_compile.py
"""
from __future__ import annotations

import argparse
from pathlib import Path

from kfp import compiler

DEFAULT_OUTPUT = Path("asymdiffrec_pipeline.yaml")
DEFAULT_MONITORING_OUTPUT = Path("asymdiffrec_monitoring_pipeline.yaml")


def compile_pipeline(output: Path = DEFAULT_OUTPUT) -> Path:
    from pipelines.asymdiffrec_pipeline import asymdiffrec_pipeline

    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=asymdiffrec_pipeline, package_path=str(output))
    return output


def compile_monitoring_pipeline(output: Path = DEFAULT_MONITORING_OUTPUT) -> Path:
    from pipelines.monitoring_pipeline import monitoring_pipeline

    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=monitoring_pipeline, package_path=str(output))
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"pipeline YAML to write (default: {DEFAULT_OUTPUT})")
    parser.add_argument("--monitoring-output", type=Path, default=DEFAULT_MONITORING_OUTPUT,
                        help=f"monitoring pipeline YAML to write (default: {DEFAULT_MONITORING_OUTPUT})")
    args = parser.parse_args(argv)
    from pipelines.image import PROJECT_IMAGE

    print(f"wrote {compile_pipeline(args.output)} and {compile_monitoring_pipeline(args.monitoring_output)} (image {PROJECT_IMAGE})")


if __name__ == "__main__":
    main()
