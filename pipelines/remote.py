"""Copy a folder from object storage (or a local path) to this machine: how a pipeline pod reads a serving
log that the service mirrors to a bucket. pyarrow's filesystems do the work (S3, GCS, HDFS, local);
an S3-compatible store such as MinIO is reached through the endpoint in FEAST_S3_ENDPOINT_URL (the
pipeline's Feast ConfigMap) or AWS_ENDPOINT_URL, with the credentials of the usual AWS variables
(the conventions of components/lifecycle/object_store.py, which both share)."""
from __future__ import annotations

from pathlib import Path

from components.lifecycle.object_store import download_folder


def fetch_folder(uri: str, dest: Path) -> Path:
    """Copy every file under `uri` (a path, file://, s3://, gs://, hdfs://) into the folder `dest`; returns it.
    A missing source is a FileNotFoundError naming the URI."""
    try:
        return download_folder(uri, dest)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e}; point it at the folder the service's serving log is mirrored to") from e
    except ValueError as e:
        raise ValueError(f"{e}; pass the folder that holds the serving log files") from e
