"""Options of the `delta_rs` data source, and planning a write from them on the driver.

| option | meaning |
|---|---|
| `path` | table URI (local path or `s3://…`) |
| `table` | table name used in error messages (default: the path) |
| `storage.<key>` | a delta-rs storage option, e.g. `storage.aws_endpoint_url` |
| `versionAsOf` / `timestampAsOf` | read an older snapshot (a version, or an ISO-8601 time) |
| `partitionBy` | comma-separated partition columns of a new table |
| `replaceWhere` | JSON list of `[column, op, value]`: overwrite only that slice |
| `mergeSchema` | `true` to add incoming columns the table lacks |
| `txnAppId` / `txnVersion` | app transaction: skip the write if this version was committed |
| `removeFiles` / `readVersion` | JSON list of files this commit replaces, read at that version |
| `onlyFiles` / `includeFileColumn` | read only these files / add a `_lake_file` column: the
  file's position in `onlyFiles` (or in the path-sorted file list) |
| `columns` | comma-separated columns to read (default: all) |
| `writeId`, `operation`, `dataChange` | tags recorded in the commit |
| `maxRowsPerFile`, `minPartitions`, `splitBytes` | file size and read parallelism |
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyspark.sql.types import StructType

from lake_assets.errors import DeltaPredicateError, DeltaSchemaError, NotADeltaTableError
from lake_assets.storage.delta._commit import CommitPlan
from lake_assets.storage.delta._files import WRITER_KEY, WriteSpec
from lake_assets.storage.delta._locations import data_filesystem
from lake_assets.storage.delta._predicate import Term, check_columns, coerce_terms, from_json
from lake_assets.storage.delta._schema import check_partition_columns, reconcile, spark_to_arrow
from lake_assets.storage.delta._snapshot import arrow_schema, open_table, table_exists

STORAGE_PREFIX = "storage."
_MAX_CHECKED = 1000


@dataclass(frozen=True)
class SourceOptions:
    """The parsed options of one read or write."""

    uri: str
    table: str
    storage: dict[str, str]
    version: int | None = None
    as_of: str | None = None
    partition_by: tuple[str, ...] = ()
    replace_where: tuple[Term, ...] = ()
    evolve: bool = False
    app_txn: tuple[str, int] | None = None
    remove_files: tuple[str, ...] | None = None
    read_version: int | None = None
    only_files: tuple[str, ...] | None = None
    with_file_column: bool = False
    columns: tuple[str, ...] | None = None
    write_id: str = ""
    operation: str = "WRITE"
    data_change: bool = True
    max_rows_per_file: int = 1_000_000
    min_partitions: int = 2
    split_bytes: int = 128 * 1024 * 1024

    @classmethod
    def parse(cls, raw: Mapping[str, str]) -> SourceOptions:
        """Options from the data source's (case-insensitive) option map."""
        opts = {k.lower(): v for k, v in raw.items()}
        uri = opts.get("path")
        if not uri:
            raise NotADeltaTableError("the delta_rs data source needs a path: .load(uri)")
        app_id = opts.get("txnappid")
        return cls(
            uri=uri,
            table=opts.get("table") or uri,
            storage={k[len(STORAGE_PREFIX):]: v for k, v in opts.items()
                     if k.startswith(STORAGE_PREFIX)},
            version=_int(opts.get("versionasof")),
            as_of=opts.get("timestampasof"),
            partition_by=tuple(c.strip() for c in opts.get("partitionby", "").split(",")
                               if c.strip()),
            replace_where=from_json(opts.get("replacewhere")),
            evolve=_bool(opts.get("mergeschema")),
            app_txn=(app_id, int(opts["txnversion"])) if app_id else None,
            remove_files=_paths(opts.get("removefiles")),
            read_version=_int(opts.get("readversion")),
            only_files=_paths(opts.get("onlyfiles")),
            with_file_column=_bool(opts.get("includefilecolumn")),
            columns=tuple(opts["columns"].split(",")) if opts.get("columns") else None,
            write_id=opts.get("writeid") or str(uuid.uuid4()),
            operation=opts.get("operation", "WRITE"),
            data_change=_bool(opts.get("datachange", "true")),
            max_rows_per_file=int(opts.get("maxrowsperfile", 1_000_000)),
            min_partitions=int(opts.get("minpartitions", 2)),
            split_bytes=int(opts.get("splitbytes", 128 * 1024 * 1024)),
        )


def plan_write(opts: SourceOptions, schema: StructType, overwrite: bool) -> CommitPlan:
    """The commit plan of a write of rows with Spark `schema`, checked against the table.

    Raises DeltaSchemaError, DeltaPredicateError or NotADeltaTableError naming the table.
    """
    return plan_arrow_write(opts, spark_to_arrow(schema), overwrite)


def plan_arrow_write(opts: SourceOptions, incoming: pa.Schema, overwrite: bool) -> CommitPlan:
    """`plan_write` for rows with Arrow schema `incoming` (as Spark would write them)."""
    if table_exists(opts.uri, options=opts.storage):
        delta = open_table(opts.uri, options=opts.storage, table=opts.table)
        partition_by = tuple(delta.metadata().partition_columns)
        if opts.partition_by and opts.partition_by != partition_by:
            raise DeltaSchemaError(
                f"table {opts.table}: partitioned by {list(partition_by)},"
                f" not {list(opts.partition_by)}"
            )
        write_schema, _ = reconcile(arrow_schema(delta), incoming, table=opts.table,
                                    evolve=opts.evolve)
    else:
        _check_location(opts)
        write_schema, partition_by = incoming, opts.partition_by
        check_partition_columns(write_schema, partition_by, table=opts.table)
    if opts.replace_where and not overwrite:
        raise DeltaPredicateError(f"table {opts.table}: replaceWhere needs mode overwrite")
    check_columns(opts.replace_where, write_schema, table=opts.table)
    spec = WriteSpec(
        uri=opts.uri, table=opts.table, schema=write_schema, options=opts.storage,
        partition_by=partition_by, slice_terms=coerce_terms(opts.replace_where, write_schema),
        max_rows_per_file=opts.max_rows_per_file,
    )
    return CommitPlan(
        spec=spec, write_id=opts.write_id, mode="overwrite" if overwrite else "append",
        evolve=opts.evolve, app_txn=opts.app_txn, remove_paths=opts.remove_files,
        read_version=opts.read_version, operation=opts.operation, data_change=opts.data_change,
    )


def _check_location(opts: SourceOptions) -> None:
    """Raises NotADeltaTableError if a new table's location holds files this layer did not write.

    Parquet files tagged by our writer are leftovers of an earlier failed write and are allowed;
    they stay unreferenced until vacuum deletes them.
    """
    fs, root = data_filesystem(opts.uri, opts.storage)
    selector = pafs.FileSelector(root or "", allow_not_found=True, recursive=True)
    try:
        infos = fs.get_file_info(selector)
    except OSError as exc:
        raise NotADeltaTableError(f"table {opts.table}: {opts.uri} is not a directory") from exc
    for info in infos[:_MAX_CHECKED]:
        name = info.path[len(root):].lstrip("/")
        if info.type != pafs.FileType.File or name.startswith("_delta_log/"):
            continue
        if not _written_here(fs, info.path):
            raise NotADeltaTableError(
                f"table {opts.table}: {opts.uri} is not a Delta table but holds {name!r};"
                " refusing to create a table over other files"
            )


def _written_here(fs: pafs.FileSystem, path: str) -> bool:
    if not path.endswith(".parquet"):
        return False
    try:
        with fs.open_input_file(path) as handle:
            metadata = pq.read_schema(handle).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return False
    return WRITER_KEY.encode() in metadata


def _int(value: str | None) -> int | None:
    return None if value in (None, "") else int(value)


def _bool(value: str | None) -> bool:
    return str(value).lower() == "true"


def _paths(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(json.loads(value))
