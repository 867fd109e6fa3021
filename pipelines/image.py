"""The one image every pipeline component runs in: built from the repository's Dockerfile.

Set ASYMDIFFREC_IMAGE before compiling to point the pipeline at your registry, e.g.
`ASYMDIFFREC_IMAGE=registry.example.com/ml/asymdiffrec:0.1.0 python kfp_compile.py`.
"""
from __future__ import annotations

import os

DEFAULT_IMAGE = "localhost:5001/asymdiffrec:0.1.0"  # the kind cluster's local registry (deploy/README.md)
PROJECT_IMAGE = os.environ.get("ASYMDIFFREC_IMAGE", DEFAULT_IMAGE)
