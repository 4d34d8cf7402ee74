"""The `delta_rs` Spark data source: Delta tables read and written through delta-rs.

    spark.dataSource.register(DeltaRsDataSource)
    df.write.format("delta_rs").mode("append").option("partitionBy", "day").save(uri)
    spark.read.format("delta_rs").option("versionAsOf", 3).load(uri)

Executors write Parquet files and send back only their descriptions; the driver commits them in
one Delta transaction. Reads plan the file list from the snapshot, prune it with pushed-down
filters, and read file groups in parallel. Options are listed in `options.py`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pyspark.sql.datasource import (
    DataSource,
    DataSourceArrowWriter,
    DataSourceReader,
    EqualTo,
    Filter,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    InputPartition,
    IsNotNull,
    IsNull,
    LessThan,
    LessThanOrEqual,
    Not,
    WriterCommitMessage,
)
from pyspark.sql.types import StructType

from lake_assets.errors import NotADeltaTableError
from lake_assets.storage.delta._commit import CommitPlan, commit, discard, find_commit
from lake_assets.storage.delta._files import DataFile, write_batches
from lake_assets.storage.delta._options import SourceOptions, plan_write
from lake_assets.storage.delta._predicate import Term, coerce_terms
from lake_assets.storage.delta._reader import (
    ReadSpec,
    group_files,
    output_schema,
    read_files,
    task_count,
)
from lake_assets.storage.delta._schema import arrow_to_spark
from lake_assets.storage.delta._snapshot import (
    FileEntry,
    arrow_schema,
    list_files,
    may_match,
    open_table,
)

FORMAT = "delta_rs"
_SIMPLE = {EqualTo: "=", GreaterThan: ">", GreaterThanOrEqual: ">=", LessThan: "<",
           LessThanOrEqual: "<="}


class DeltaRsDataSource(DataSource):
    """Spark data source `delta_rs` for Delta tables, backed by delta-rs."""

    @classmethod
    def name(cls) -> str:
        return FORMAT

    def schema(self) -> StructType:
        return arrow_to_spark(output_schema(self._read_spec()[0]))

    def reader(self, schema: StructType) -> DeltaRsReader:
        spec, version = self._read_spec()
        opts = SourceOptions.parse(self.options)
        return DeltaRsReader(spec, version=version, tasks=opts.min_partitions,
                             split_bytes=opts.split_bytes, only_files=opts.only_files)

    def writer(self, schema: StructType, overwrite: bool) -> DeltaRsWriter:
        return DeltaRsWriter(plan_write(SourceOptions.parse(self.options), schema, overwrite))

    def _read_spec(self) -> tuple[ReadSpec, int]:
        opts = SourceOptions.parse(self.options)
        delta = open_table(opts.uri, options=opts.storage, table=opts.table,
                           version=opts.version, as_of=opts.as_of)
        spec = ReadSpec(uri=opts.uri, table=opts.table, schema=arrow_schema(delta),
                        options=opts.storage, with_file_column=opts.with_file_column,
                        columns=opts.columns)
        return spec, delta.version()


class DeltaRsReader(DataSourceReader):
    """Plans file groups from one pinned snapshot version and reads them on executors."""

    def __init__(self, spec: ReadSpec, *, version: int, tasks: int, split_bytes: int,
                 only_files: tuple[str, ...] | None) -> None:
        self.spec = spec
        self.version = version
        self.tasks = tasks
        self.split_bytes = split_bytes
        self.only_files = only_files
        self.terms: list[Term] = []

    def pushFilters(self, filters: list[Filter]) -> Iterator[Filter]:
        for f in filters:
            term = _term(f)
            if term is not None and _prunable(term, self.spec.schema):
                self.terms.extend(coerce_terms([term], self.spec.schema))
            yield f  # pruning is by file, so Spark re-checks every row

    def partitions(self) -> Sequence[InputPartition]:
        delta = open_table(self.spec.uri, options=self.spec.options, table=self.spec.table,
                           version=self.version)
        listed = sorted(list_files(delta), key=lambda e: e.path)
        order = self.only_files or tuple(e.path for e in listed)
        ids = {path: i for i, path in enumerate(order)}
        entries = [e for e in listed if e.path in ids and may_match(e, self.terms)]
        tasks = task_count(entries, parallelism=self.tasks, split_bytes=self.split_bytes)
        groups = group_files(entries, tasks=tasks)
        return [FileGroup(g, [ids[e.path] for e in g]) for g in groups] or [FileGroup([], [])]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, FileGroup)
        yield from read_files(partition.files, self.spec, file_ids=partition.ids)


class FileGroup(InputPartition):
    """The files one read task reads, with their numbers for the file column."""

    def __init__(self, files: list[FileEntry], ids: list[int]) -> None:
        super().__init__(len(files))
        self.files = files
        self.ids = ids


@dataclass
class FilesWritten(WriterCommitMessage):
    """The commit message of one write task: descriptions of its files, never rows."""

    files: list[DataFile]


class DeltaRsWriter(DataSourceArrowWriter):
    """Writes Parquet on executors and commits the files on the driver."""

    def __init__(self, plan: CommitPlan) -> None:
        self.plan = plan

    def write(self, iterator: Iterator[pa.RecordBatch]) -> FilesWritten:
        return FilesWritten(write_batches(iterator, self.plan.spec))

    def commit(self, messages: list[WriterCommitMessage | None]) -> None:
        commit(self.plan, _files(messages))

    def abort(self, messages: list[WriterCommitMessage | None]) -> None:
        spec = self.plan.spec
        try:
            delta = open_table(spec.uri, options=spec.options, table=spec.table)
            if find_commit(delta, self.plan.write_id) is not None:
                return  # the commit landed: its files are live
        except NotADeltaTableError:
            pass  # no table: nothing can reference the files
        discard(spec, [f.path for f in _files(messages)])


def _files(messages: list[WriterCommitMessage | None]) -> list[DataFile]:
    return [f for m in messages if isinstance(m, FilesWritten) for f in m.files]


def _prunable(term: Term, schema: pa.Schema) -> bool:
    """Whether `term` can prune safely: a known column and a value of an unambiguous type.

    A timestamp without a zone could be local time, so it never prunes a zoned column.
    """
    index = schema.get_field_index(term.column)
    if index < 0:
        return False
    kind = schema.field(index).type
    values = term.value if isinstance(term.value, tuple) else (term.value,)
    if pa.types.is_timestamp(kind):
        return all(isinstance(v, dt.datetime) and (v.tzinfo is not None) == (kind.tz is not None)
                   for v in values if v is not None)
    return all(_python_type_fits(v, kind) for v in values if v is not None)


def _python_type_fits(value: Any, kind: pa.DataType) -> bool:
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if pa.types.is_string(kind):
        return isinstance(value, str)
    if pa.types.is_date(kind):
        return isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    return False  # other types prune nothing


def _term(f: Filter) -> Term | None:
    if isinstance(f, Not):
        inner = _term(f.child)
        return Term(inner.column, "!=", inner.value) if inner and inner.op == "=" else None
    column: Any = getattr(f, "attribute", None)
    if not column or len(column) != 1:
        return None
    name = column[0]
    if type(f) in _SIMPLE:
        return Term(name, _SIMPLE[type(f)], f.value)  # type: ignore[attr-defined]
    if isinstance(f, In):
        return Term(name, "in", tuple(f.value))
    if isinstance(f, IsNull):
        return Term(name, "is null")
    if isinstance(f, IsNotNull):
        return Term(name, "is not null")
    return None
