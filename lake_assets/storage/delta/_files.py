"""Executor side of a write: Arrow batches into Parquet data files with Delta statistics.

Runs inside Spark tasks (and in the committing process for partial rewrites). Each call returns
small `DataFile` descriptions — path, size, partition values, statistics — never the rows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
import urllib.parse
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark import TaskContext

from lake_assets.errors import DeltaPredicateError, DeltaSchemaError
from lake_assets.storage.delta._locations import data_filesystem, join_path
from lake_assets.storage.delta._predicate import Term, arrow_mask
from lake_assets.storage.delta._snapshot import partition_string

NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
_MAX_STAT_CHARS = 64
WRITER_KEY = "lake.writer"


@dataclass(frozen=True)
class WriteSpec:
    """What executors need to write files for one table; small and picklable."""

    uri: str
    table: str
    schema: pa.Schema
    options: dict[str, str] = field(default_factory=dict)
    partition_by: tuple[str, ...] = ()
    slice_terms: tuple[Term, ...] = ()
    max_rows_per_file: int = 1_000_000


@dataclass(frozen=True)
class DataFile:
    """One written Parquet file, as the commit needs it; `path` is relative and not encoded."""

    path: str
    size: int
    partition_values: dict[str, str | None]
    num_records: int
    stats: str
    modification_time: int


def write_batches(batches: Iterable[pa.RecordBatch], spec: WriteSpec) -> list[DataFile]:
    """Write `batches` as Parquet files of the table in `spec`; returns the files written.

    Raises DeltaSchemaError if a batch has a column the table lacks or a type it cannot take,
    DeltaPredicateError if a row falls outside the replaceWhere slice.
    """
    writer = TableWriter(spec)
    try:
        for batch in batches:
            writer.write(batch)
    except BaseException:
        writer.abandon()
        raise
    return writer.close()


class TableWriter:
    """Parquet files of one table written incrementally: one open file per partition value.

    `write` takes Arrow batches or tables (errors as `write_batches`); `close` returns the
    files; `abandon` deletes them when they will never be committed.
    """

    def __init__(self, spec: WriteSpec) -> None:
        self.spec = spec
        self.fs, self.root = data_filesystem(spec.uri, spec.options)
        self.open_files: dict[tuple[str | None, ...], _OpenFile] = {}
        self.done: list[DataFile] = []

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Append `batch` to the files of its partitions."""
        if batch.num_rows == 0:
            return
        data = align_batch(batch, self.spec.schema, table=self.spec.table)
        _check_slice(data, self.spec)
        for key, part in _split_partitions(data, self.spec.partition_by):
            current = self.open_files.get(key)
            if current is None:
                current = self.open_files[key] = _OpenFile(self.fs, self.root, self.spec, key)
            current.write(part)
            if current.rows >= self.spec.max_rows_per_file:
                self.done.append(self.open_files.pop(key).close())

    def close(self) -> list[DataFile]:
        """Finish every open file; returns all files written."""
        self.done.extend(f.close() for f in self.open_files.values())
        self.open_files.clear()
        return self.done

    def abandon(self) -> None:
        """Delete every file written so far, open or finished."""
        for f in self.open_files.values():
            f.abandon()
        self.open_files.clear()
        for f in self.done:
            try:
                self.fs.delete_file(join_path(self.root, f.path))
            except FileNotFoundError:
                continue
        self.done.clear()


def align_batch(batch: pa.RecordBatch | pa.Table, schema: pa.Schema, *, table: str) -> pa.Table:
    """`batch` with the columns and types of `schema`: missing columns become nulls.

    Raises DeltaSchemaError naming the table and column for an extra column or a bad type.
    """
    extra = [n for n in batch.schema.names if schema.get_field_index(n) < 0]
    if extra:
        raise DeltaSchemaError(f"table {table}: column {extra[0]!r} is not in the table schema")
    columns = []
    for target in schema:
        if batch.schema.get_field_index(target.name) < 0:
            columns.append(pa.nulls(batch.num_rows, target.type))
            continue
        column = batch.column(target.name)
        if column.type != target.type:
            try:
                column = column.cast(target.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DeltaSchemaError(
                    f"table {table}: column {target.name!r} has type {column.type},"
                    f" the table has {target.type}"
                ) from exc
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _check_slice(data: pa.Table, spec: WriteSpec) -> None:
    if not spec.slice_terms:
        return
    outside = data.num_rows - pc.sum(arrow_mask(spec.slice_terms, data)).as_py()
    if outside:
        where = " and ".join(f"{t.column} {t.op} {t.value!r}" for t in spec.slice_terms)
        raise DeltaPredicateError(
            f"table {spec.table}: {outside} rows fall outside the replaceWhere slice {where}"
        )


def _split_partitions(
    data: pa.Table, partition_by: tuple[str, ...]
) -> Iterable[tuple[tuple[str | None, ...], pa.Table]]:
    if not partition_by:
        yield (), data
        return
    keys = data.select(list(partition_by)).group_by(list(partition_by), use_threads=False)
    combos = keys.aggregate([]).to_pylist()
    for combo in combos:
        part = data
        if len(combos) > 1:  # usually a batch is one arrival date: nothing to filter
            terms = [Term(c, "is null" if combo[c] is None else "=", combo[c])
                     for c in partition_by]
            part = data.filter(arrow_mask(terms, data))
        yield tuple(partition_string(combo[c]) for c in partition_by), \
            part.drop_columns(list(partition_by))


class _OpenFile:
    """A Parquet file being written; its statistics come from the footer the writer builds."""

    def __init__(self, fs: Any, root: str, spec: WriteSpec, key: tuple[str | None, ...]) -> None:
        self.partition_values = dict(zip(spec.partition_by, key, strict=True))
        dirs = [f"{c}={_dir_value(v)}" for c, v in self.partition_values.items()]
        name = f"part-{_task_id():05d}-{uuid.uuid4()}-c000.snappy.parquet"
        self.relative = "/".join([*dirs, name])
        self.full = join_path(root, self.relative)
        self.fs = fs
        if root:
            fs.create_dir(self.full.rsplit("/", 1)[0], recursive=True)
        self.schema = pa.schema([f for f in spec.schema if f.name not in spec.partition_by])
        writer = {WRITER_KEY: f"{socket.gethostname()}:{os.getpid()}"}
        self.sink = fs.open_output_stream(self.full)
        self.footers: list[pq.FileMetaData] = []
        self.writer = pq.ParquetWriter(
            self.sink, self.schema.with_metadata(writer), compression="snappy",
            metadata_collector=self.footers,
        )
        self.floats = [f.name for f in self.schema if pa.types.is_floating(f.type)]
        self.with_nan: set[str] = set()
        self.rows = 0

    def write(self, part: pa.Table) -> None:
        self.writer.write_table(part)
        for name in self.floats:  # Parquet leaves NaN out of min/max; Delta must not skip it
            if name not in self.with_nan and pc.any(pc.is_nan(part.column(name))).as_py():
                self.with_nan.add(name)
        self.rows += part.num_rows

    def close(self) -> DataFile:
        self.writer.close()
        size = self.sink.tell()
        self.sink.close()
        return DataFile(
            path=self.relative,
            size=size,
            partition_values=self.partition_values,
            num_records=self.rows,
            stats=_footer_stats(self.footers[0], self.schema, self.rows, self.with_nan),
            modification_time=int(time.time() * 1000),
        )

    def abandon(self) -> None:
        """Close and delete a file that will never be committed."""
        try:
            self.writer.close()
            self.sink.close()
        finally:
            self.fs.delete_file(self.full)


def _footer_stats(footer: pq.FileMetaData, schema: pa.Schema, rows: int,
                  unusable: set[str]) -> str:
    """Delta statistics of a written file from its Parquet footer: the writer has already
    computed each row group's min, max and null count, so no second pass over the data.

    A top-level primitive column gets bounds only when every row group with values has them
    (the writer leaves them out for very long values) and it holds no NaN (left out of them).
    """
    index = {footer.schema.column(i).path: i for i in range(footer.num_columns)}
    lows: dict[str, Any] = {}
    highs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for f in schema:
        if not _counts_nulls(f.type) or f.name not in index:
            continue
        column = [footer.row_group(g).column(index[f.name]).statistics
                  for g in range(footer.num_row_groups)]
        if all(s is not None and s.has_null_count for s in column):
            nulls[f.name] = sum(s.null_count for s in column)
        if not _has_stats(f.type) or f.name in unusable or nulls.get(f.name, -1) == rows:
            continue
        bounded = [s for s in column if s is None or s.num_values > 0]  # non-null values
        if bounded and all(s is not None and s.has_min_max for s in bounded):
            lows[f.name] = _stat_value(min(s.min for s in bounded), low=True)
            highs[f.name] = _stat_value(max(s.max for s in bounded), low=False)
    return json.dumps({
        "numRecords": rows,
        "minValues": {k: v for k, v in lows.items() if v is not None},
        "maxValues": {k: v for k, v in highs.items() if v is not None},
        "nullCount": nulls,
    })


def _has_stats(kind: pa.DataType) -> bool:
    return (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_string(kind)
            or pa.types.is_large_string(kind) or pa.types.is_date(kind)
            or pa.types.is_timestamp(kind))


def _counts_nulls(kind: pa.DataType) -> bool:
    return not pa.types.is_nested(kind)


def _stat_value(value: Any, *, low: bool) -> Any:
    if isinstance(value, str):
        if len(value) <= _MAX_STAT_CHARS:
            return value
        return value[:_MAX_STAT_CHARS] if low else None  # a prefix is still a lower bound
    if isinstance(value, dt.datetime):
        text = value.astimezone(dt.UTC) if value.tzinfo else value
        stamp = text.strftime("%Y-%m-%dT%H:%M:%S.") + f"{text.microsecond // 1000:03d}"
        return stamp + ("Z" if value.tzinfo else "")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _dir_value(value: str | None) -> str:
    return NULL_PARTITION if value is None else urllib.parse.quote(value, safe="")


def _task_id() -> int:
    context = TaskContext.get()
    return context.partitionId() if context is not None else 0
