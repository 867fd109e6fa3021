"""Copy a folder from object storage (or a local path) to this machine: how a pipeline pod reads a serving
log that the service mirrors to a bucket. pyarrow's filesystems do the work (S3, GCS, HDFS, local);
an S3-compatible store such as MinIO is reached through the endpoint in FEAST_S3_ENDPOINT_URL (the
pipeline's Feast ConfigMap) or AWS_ENDPOINT_URL, with the credentials of the usual AWS variables."""
from __future__ import annotations

import os
from pathlib import Path


def _filesystem(uri: str):
    import pyarrow.fs as pafs

    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).resolve())
    if uri.startswith("s3://"):
        endpoint = os.environ.get("FEAST_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        scheme, _, host = (endpoint or "").partition("://")
        options = {"endpoint_override": host or scheme, "scheme": scheme if host else "https"} if endpoint else {}
        return pafs.S3FileSystem(**options), uri.removeprefix("s3://")
    return pafs.FileSystem.from_uri(uri)


def fetch_folder(uri: str, dest: Path) -> Path:
    """Copy every file under `uri` (a path, file://, s3://, gs://, hdfs://) into the folder `dest`; returns it.
    A missing source is a FileNotFoundError naming the URI."""
    import pyarrow.fs as pafs

    fs, path = _filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"nothing at {uri}; point it at the folder the service's serving log is mirrored to")
    if info.type != pafs.FileType.Directory:
        raise ValueError(f"{uri} is a file; pass the folder that holds the serving log files")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    pafs.copy_files(path, str(dest.resolve()), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return dest
