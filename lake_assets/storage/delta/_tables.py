"""Writing and reading Delta tables from Spark: the driver-side calls behind the resource.

Each call goes through the `delta_rs` data source, pins what it needs (the snapshot version a
read sees, the write id a commit carries) and turns errors raised inside Spark's Python workers
back into the lakehouse's own exception types.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import pyarrow as pa
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import from_arrow_schema

from lake_assets import errors
from lake_assets.storage.delta._commit import CommitPlan, commit, find_commit
from lake_assets.storage.delta._files import DataFile
from lake_assets.storage.delta._options import STORAGE_PREFIX, SourceOptions, plan_arrow_write
from lake_assets.storage.delta._predicate import PredicateSpec, parse_predicate, to_json
from lake_assets.storage.delta._reader import ReadSpec, output_schema
from lake_assets.storage.delta._schema import arrow_to_spark, spark_to_arrow
from lake_assets.storage.delta._snapshot import (
    arrow_schema,
    check_readable,
    open_table,
    table_exists,
)
from lake_assets.storage.delta._source import FORMAT, DeltaRsDataSource
from lake_assets.storage.spark import default_parallelism, is_connect

_LAKE_ERROR = re.compile(r"lake_assets\.errors\.(\w+): (.+)")
_PUSHDOWN_CONF = "spark.sql.python.filterPushdown.enabled"
_REGISTER_LOCK = threading.Lock()
_REGISTERED: weakref.WeakSet[SparkSession] = weakref.WeakSet()


@dataclass(frozen=True)
class TableRef:
    """A lake table: its name (`silver/encounters`), URI and storage options."""

    name: str
    uri: str
    options: dict[str, str] = field(default_factory=dict)

    def source_options(self) -> dict[str, str]:
        """Data source options naming this table and its storage."""
        opts = {"table": self.name}
        opts.update({f"{STORAGE_PREFIX}{k}": v for k, v in self.options.items()})
        return opts


@dataclass(frozen=True)
class WriteResult:
    """What a write did: the version it committed (None when skipped as already applied)."""

    table: str
    uri: str
    version: int | None
    rows: int = 0
    files: int = 0
    skipped: bool = False

    def as_metadata(self) -> dict[str, Any]:
        """Materialization metadata: table URI, Delta version, rows and files written."""
        return {"table_uri": self.uri, "delta_version": self.version, "rows_written": self.rows,
                "files_written": self.files, "skipped_as_already_written": self.skipped}


def register(spark: SparkSession) -> None:
    """Register the `delta_rs` data source with `spark` once, and enable its filter pushdown.

    Registering again replaces the source, which fails writes running in other threads, so
    each session is registered only once.
    """
    with _REGISTER_LOCK:
        if spark in _REGISTERED:
            return
        spark.dataSource.register(DeltaRsDataSource)
        spark.conf.set(_PUSHDOWN_CONF, "true")
        _REGISTERED.add(spark)


@overload
def write(df: DataFrame, ref: TableRef, *, mode: Literal["append"] = "append",
          partition_by: Sequence[str] | None = None, evolve_schema: bool = False,
          app_txn: tuple[str, int] | None = None,
          extra: Mapping[str, str] | None = None) -> WriteResult: ...


@overload
def write(df: DataFrame, ref: TableRef, *, mode: Literal["overwrite"],
          replace_where: PredicateSpec = None, partition_by: Sequence[str] | None = None,
          evolve_schema: bool = False, app_txn: tuple[str, int] | None = None,
          extra: Mapping[str, str] | None = None) -> WriteResult: ...


def write(
    df: DataFrame,
    ref: TableRef,
    *,
    mode: Literal["append", "overwrite"] = "append",
    replace_where: PredicateSpec = None,
    partition_by: Sequence[str] | None = None,
    evolve_schema: bool = False,
    app_txn: tuple[str, int] | None = None,
    extra: Mapping[str, str] | None = None,
) -> WriteResult:
    """Write `df` to `ref` in one commit; returns the committed version and counts.

    `replace_where` ({col: value} or [(col, op, value)]) with mode overwrite replaces just that
    slice. With `app_txn` (app id, version) a write whose version was already committed is
    skipped. Raises DeltaSchemaError, DeltaPredicateError, NotADeltaTableError or
    DeltaConflictError naming the table.
    """
    if app_txn and _already_written(ref, app_txn):
        return WriteResult(ref.name, ref.uri, None, skipped=True)
    write_id = str(uuid.uuid4())
    opts = _write_options(ref, write_id, replace_where=replace_where, partition_by=partition_by,
                          evolve_schema=evolve_schema, app_txn=app_txn) | dict(extra or {})
    register(df.sparkSession)
    _activate(df.sparkSession)
    with lake_errors():
        df.write.format(FORMAT).mode(mode).options(**opts).save(ref.uri)
    return _result(ref, write_id)


@overload
def plan_files(ref: TableRef, schema: pa.Schema, *, mode: Literal["append"] = "append",
               partition_by: Sequence[str] | None = None,
               app_txn: tuple[str, int] | None = None) -> CommitPlan: ...


@overload
def plan_files(ref: TableRef, schema: pa.Schema, *, mode: Literal["overwrite"],
               replace_where: PredicateSpec = None, partition_by: Sequence[str] | None = None,
               app_txn: tuple[str, int] | None = None) -> CommitPlan: ...


def plan_files(
    ref: TableRef,
    schema: pa.Schema,
    *,
    mode: Literal["append", "overwrite"] = "append",
    replace_where: PredicateSpec = None,
    partition_by: Sequence[str] | None = None,
    app_txn: tuple[str, int] | None = None,
) -> CommitPlan:
    """The plan for a write whose files tasks produce themselves with `files.TableWriter`.

    For Spark tasks that build Arrow rows and write them in the same pass: they write
    `plan.spec` and return only `DataFile`s, which `commit_files` commits on the driver. The
    schema is normalised through Spark's types, so the table matches a `write` of the same rows.
    Raises as `write`.
    """
    opts = _write_options(ref, str(uuid.uuid4()), replace_where=replace_where,
                          partition_by=partition_by, evolve_schema=False, app_txn=app_txn)
    incoming = spark_to_arrow(from_arrow_schema(schema))
    with lake_errors():
        return plan_arrow_write(SourceOptions.parse(opts | {"path": ref.uri}), incoming,
                                mode == "overwrite")


def commit_files(plan: CommitPlan, files: Sequence[DataFile]) -> WriteResult:
    """Commit the files written for `plan` in one transaction (deleted if it cannot commit)."""
    spec = plan.spec
    with lake_errors():
        version = commit(plan, files)
    if version is None:
        return WriteResult(spec.table, spec.uri, None, skipped=True)
    return WriteResult(spec.table, spec.uri, version, rows=sum(f.num_records for f in files),
                       files=len(files))


def _write_options(
    ref: TableRef,
    write_id: str,
    *,
    replace_where: PredicateSpec,
    partition_by: Sequence[str] | None,
    evolve_schema: bool,
    app_txn: tuple[str, int] | None,
) -> dict[str, str]:
    opts = ref.source_options() | {"writeId": write_id}
    if replace_where is not None:
        opts["replaceWhere"] = to_json(parse_predicate(replace_where))
    if partition_by:
        opts["partitionBy"] = ",".join(partition_by)
    if evolve_schema:
        opts["mergeSchema"] = "true"
    if app_txn:
        opts |= {"txnAppId": app_txn[0], "txnVersion": str(app_txn[1])}
    return opts


def _activate(spark: SparkSession) -> None:
    """Make `spark` the JVM's active session on this thread.

    Classic Spark 4 looks up Python data sources for a write in the thread's active session, so
    a write from a thread that never touched the session would not find `delta_rs`. PySpark has
    no public call that sets the JVM's thread-local session, hence its private handles here.
    """
    if not is_connect(spark):
        jsession = spark._jsparkSession  # type: ignore[attr-defined]
        spark._jvm.org.apache.spark.sql.SparkSession.setActiveSession(jsession)  # type: ignore[attr-defined]


def _already_written(ref: TableRef, app_txn: tuple[str, int]) -> bool:
    if not table_exists(ref.uri, options=ref.options):
        return False
    delta = open_table(ref.uri, options=ref.options, table=ref.name)
    done = delta.transaction_version(app_txn[0])
    return done is not None and done >= app_txn[1]


def _result(ref: TableRef, write_id: str) -> WriteResult:
    delta = open_table(ref.uri, options=ref.options, table=ref.name)
    entry = find_commit(delta, write_id)
    if entry is None:  # the commit found its app transaction already applied
        return WriteResult(ref.name, ref.uri, None, skipped=True)
    return WriteResult(ref.name, ref.uri, entry["version"], rows=int(entry.get("lake.rows", 0)),
                       files=int(entry.get("lake.files", 0)))


def read(
    spark: SparkSession,
    ref: TableRef,
    *,
    version: int | None = None,
    as_of: dt.datetime | str | None = None,
    with_file_column: bool = False,
    only_files: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> DataFrame:
    """The table as a DataFrame, pinned to `version`, to time `as_of`, or to the latest version.

    `columns` limits what executors read from the files (the data source cannot prune columns
    by itself); `only_files` limits the scan to those files.

    Raises NotADeltaTableError if `ref` is not a Delta table, DeltaStorageError if the version or
    time is outside the table's history or it uses deletion vectors or column mapping.
    """
    delta = open_table(ref.uri, options=ref.options, table=ref.name, version=version, as_of=as_of)
    check_readable(delta)
    spec = ReadSpec(uri=ref.uri, table=ref.name, schema=arrow_schema(delta),
                    with_file_column=with_file_column,
                    columns=tuple(columns) if columns is not None else None)
    opts = ref.source_options() | {"versionAsOf": str(delta.version())}
    opts["minPartitions"] = str(_parallelism(spark))
    if with_file_column:
        opts["includeFileColumn"] = "true"
    if columns is not None:
        opts["columns"] = ",".join(columns)
    if only_files is not None:
        opts["onlyFiles"] = json.dumps(list(only_files))
    register(spark)
    schema = arrow_to_spark(output_schema(spec))
    return spark.read.format(FORMAT).schema(schema).options(**opts).load(ref.uri)


def _parallelism(spark: SparkSession) -> int:
    return max(2, default_parallelism(spark))


@contextmanager
def lake_errors() -> Iterator[None]:
    """Re-raise a lakehouse error that Spark wrapped in its own exception as the original type."""
    try:
        yield
    except (PySparkException, Py4JJavaError) as exc:
        found = _LAKE_ERROR.findall(str(exc))
        if found:
            name, message = found[-1]
            kind = getattr(errors, name, None)
            if isinstance(kind, type) and issubclass(kind, errors.LakehouseError):
                raise kind(message.strip()) from exc
        raise
