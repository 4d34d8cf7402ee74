"""Where Delta tables live: the lake root, table locations, and object-store options.

Tables are local directories or `s3://bucket/prefix/...` URIs. S3 options come from the caller
(the `DeltaLake` resource's `S3Config`) or from the environment at call time:
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` /
`AWS_DEFAULT_REGION` and `LAKE_S3_ENDPOINT` (or `AWS_ENDPOINT_URL`) for S3-compatible stores.

Concurrent writers are safe without a lock service because every commit writes the next
`_delta_log/<version>.json` with a conditional put (`If-None-Match: *`, `conditional_put=etag`):
the loser of a race gets `412 Precondition Failed` and delta-rs retries on the next version. The
S3 endpoint must therefore support conditional writes (`If-None-Match` on PutObject, as AWS S3
has since 2024, MinIO, Ceph RGW >= 19, moto >= 5), ListObjectsV2, ranged GET, multipart upload
and DeleteObject. See docs/storage.md.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow.fs as pafs

LAKE_ROOT_VARIABLE = "LAKE_ROOT"
DEFAULT_LAKE_ROOT = "./.lake"
# Raw patient data (bronze tables, quarantined rows and archives) may live under its own root,
# so it can be access-controlled apart from the de-identified silver and gold.
RAW_ROOT_VARIABLE = "LAKE_BRONZE_ROOT"
RAW_LAYERS = ("bronze", "quarantine")
S3_ENDPOINT_VARIABLE = "LAKE_S3_ENDPOINT"
ZONES = ("bronze", "silver", "gold", "quarantine", "_lake")

_ENV_TO_OPTION = {
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "AWS_SESSION_TOKEN": "aws_session_token",
    "AWS_DEFAULT_REGION": "aws_region",
    "AWS_REGION": "aws_region",
    "AWS_ENDPOINT_URL": "aws_endpoint_url",
    S3_ENDPOINT_VARIABLE: "aws_endpoint_url",
}


def is_s3(uri: str) -> bool:
    """Whether `uri` names an S3 (or S3-compatible) location."""
    return uri.startswith(("s3://", "s3a://"))


def lake_root(*, root: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The lake root: `root` if given, else `$LAKE_ROOT`, else `./.lake`, as an absolute URI."""
    env = os.environ if environ is None else environ
    value = root or env.get(LAKE_ROOT_VARIABLE) or DEFAULT_LAKE_ROOT
    if is_s3(value):
        return value.rstrip("/")
    return str(Path(value).expanduser().resolve())


def raw_root(*, root: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Root of the raw layers: `root`, else `$LAKE_BRONZE_ROOT`, else the lake root."""
    env = os.environ if environ is None else environ
    return lake_root(root=root or env.get(RAW_ROOT_VARIABLE), environ=env)


def root_for(
    table: str | Sequence[str], *, lake: str | None = None, raw: str | None = None
) -> str:
    """The root a table lives under: the raw root for bronze and quarantine, else the lake's."""
    first = (table.split("/", 1)[0] if isinstance(table, str) else table[0]).strip("/")
    if first in RAW_LAYERS and (raw or os.environ.get(RAW_ROOT_VARIABLE)):
        return raw_root(root=raw)
    return lake_root(root=lake)


def table_uri(table: str | Sequence[str], *, root: str) -> str:
    """The URI of `table` (`bronze/<feed>/<table>`, `silver/<t>`, ... or key parts) under `root`.

    Raises ValueError for an empty name or a part that would escape the lake root.
    """
    parts = table.split("/") if isinstance(table, str) else list(table)
    if not parts or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise ValueError(f"table name {'/'.join(parts)!r} is not a lake table path")
    return "/".join([root.rstrip("/"), *parts])


def storage_options(
    uri: str,
    *,
    s3: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """delta-rs storage options for `uri`: empty for local paths, S3 settings for `s3://`.

    `s3` (delta-rs option names) replaces what the environment would give.
    """
    if not is_s3(uri):
        return {}
    if s3 is not None:
        options = dict(s3)
    else:
        env = os.environ if environ is None else environ
        options = {opt: env[var] for var, opt in _ENV_TO_OPTION.items() if env.get(var)}
    endpoint = options.get("aws_endpoint_url") or options.get("endpoint") or ""
    if endpoint.startswith("http://"):
        options.setdefault("aws_allow_http", "true")
    options.setdefault("aws_region", "us-east-1")
    options.setdefault("conditional_put", "etag")
    return options


def data_filesystem(uri: str, options: Mapping[str, str]) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem for the data files of table `uri`, and the table's root within it."""
    if is_s3(uri):
        from deltalake.fs import DeltaStorageHandler

        handler = DeltaStorageHandler(uri, dict(options))
        return pafs.PyFileSystem(handler), ""
    local = uri.removeprefix("file://")
    return pafs.LocalFileSystem(), local.rstrip("/")


def join_path(root: str, relative: str) -> str:
    """`relative` (a storage path, not URL-encoded) under filesystem root `root`."""
    return f"{root}/{relative}" if root else relative


def storage_path(log_entry_path: str) -> str:
    """The relative storage path of a Delta log action's (URL-encoded) `path`."""
    return urllib.parse.unquote(log_entry_path)
