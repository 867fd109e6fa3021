"""Copy folders between this machine and object storage (s3://, gs://, hdfs://, file://, or a path).

Pods that share no disk hand files over this way: a pipeline step and the Kubeflow Trainer pods it
starts, or the service and the monitor. pyarrow's filesystems do the work; an S3-compatible store such
as MinIO is reached through the endpoint in FEAST_S3_ENDPOINT_URL (the pipeline's Feast ConfigMap) or
AWS_ENDPOINT_URL, with the credentials of the usual AWS variables (the pipeline's S3 Secret).

    python -m components.lifecycle.object_store get s3://bucket/prefix ./local-folder
    python -m components.lifecycle.object_store put ./local-folder s3://bucket/prefix
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

OBJECT_STORE_SCHEMES = ("s3://", "gs://", "gcs://", "hdfs://")


def filesystem(uri: str):
    """The pyarrow filesystem for `uri` and the path inside it (a bare path is the local disk)."""
    import pyarrow.fs as pafs

    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).resolve())
    if uri.startswith("s3://"):
        endpoint = os.environ.get("FEAST_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        scheme, _, host = (endpoint or "").partition("://")
        options = {"endpoint_override": host or scheme, "scheme": scheme if host else "https"} if endpoint else {}
        return pafs.S3FileSystem(**options), uri.removeprefix("s3://")
    return pafs.FileSystem.from_uri(uri)


def is_object_store(uri: str) -> bool:
    """Whether `uri` names shared object storage (not a disk only this pod sees)."""
    return uri.startswith(OBJECT_STORE_SCHEMES)


def join(uri: str, *parts: str) -> str:
    """`uri` with `parts` appended by '/', for URIs and paths alike."""
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def download_folder(uri: str, dest: Path) -> Path:
    """Copy every file under the folder `uri` into the local folder `dest`; returns it.
    A missing source is a FileNotFoundError naming the URI."""
    import pyarrow.fs as pafs

    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"nothing at {uri}")
    if info.type != pafs.FileType.Directory:
        raise ValueError(f"{uri} is a file, not a folder")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    pafs.copy_files(path, str(dest.resolve()), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return dest


def upload_folder(src: Path, uri: str) -> str:
    """Copy every file under the local folder `src` to the folder `uri`; returns `uri`."""
    import pyarrow.fs as pafs

    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"no folder {src} to upload to {uri}")
    fs, path = filesystem(uri)
    fs.create_dir(path, recursive=True)
    pafs.copy_files(str(src.resolve()), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
    return uri


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Copy a folder from or to object storage.")
    parser.add_argument("direction", choices=["get", "put"], help="get: URI -> local folder; put: local folder -> URI")
    parser.add_argument("source")
    parser.add_argument("dest")
    args = parser.parse_args(argv)
    try:
        if args.direction == "get":
            download_folder(args.source, Path(args.dest))
        else:
            upload_folder(Path(args.source), args.dest)
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"object_store {args.direction}: {e}", file=sys.stderr)
        return 2
    print(f"copied {args.source} -> {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
