"""Executor side of a read: Delta data files into Arrow batches of the table schema.

Partition columns come from the log (files do not store them), columns a file lacks (added later
by schema evolution) come back as nulls, and files are grouped into evenly sized read tasks.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from lake_assets.storage.delta._locations import data_filesystem, join_path
from lake_assets.storage.delta._snapshot import FileEntry

FILE_COLUMN = "_lake_file"
_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class ReadSpec:
    """What executors need to read files of one snapshot; small and picklable."""

    uri: str
    table: str
    schema: pa.Schema
    options: dict[str, str] = field(default_factory=dict)
    with_file_column: bool = False
    columns: tuple[str, ...] | None = None


def output_schema(spec: ReadSpec) -> pa.Schema:
    """The schema of the batches `read_files` yields: the chosen columns, then the file column."""
    schema = spec.schema
    if spec.columns is not None:
        schema = pa.schema([schema.field(c) for c in spec.columns])
    if spec.with_file_column:
        schema = schema.append(pa.field(FILE_COLUMN, pa.int32()))
    return schema


def read_files(
    entries: Sequence[FileEntry], spec: ReadSpec, *, file_ids: Sequence[int] | None = None
) -> Iterator[pa.RecordBatch]:
    """Batches of every row of `entries`, in the table schema.

    With `spec.with_file_column`, each row also carries its file's number from `file_ids` (a
    small integer rather than the path, which would cost a string per row).
    """
    fs, root = data_filesystem(spec.uri, spec.options)
    schema = output_schema(spec)
    ids = file_ids if file_ids is not None else range(len(entries))
    for entry, file_id in zip(entries, ids, strict=True):
        with fs.open_input_file(join_path(root, entry.path)) as handle:
            parquet = pq.ParquetFile(handle)
            present = set(parquet.schema_arrow.names)
            wanted = [f.name for f in schema if f.name in present]
            for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=wanted):
                yield _complete(batch, entry, schema, file_id)


def _complete(
    batch: pa.RecordBatch, entry: FileEntry, schema: pa.Schema, file_id: int
) -> pa.RecordBatch:
    rows = batch.num_rows
    columns = []
    for target in schema:
        if target.name == FILE_COLUMN:
            columns.append(pa.array([file_id] * rows, pa.int32()))
        elif target.name in entry.partition_values:
            value = entry.partition_values[target.name]
            columns.append(pa.array([value] * rows, target.type))
        elif batch.schema.get_field_index(target.name) >= 0:
            column = batch.column(target.name)
            columns.append(column if column.type == target.type else column.cast(target.type))
        else:
            columns.append(pa.nulls(rows, target.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def group_files(entries: Sequence[FileEntry], *, tasks: int) -> list[list[FileEntry]]:
    """`entries` spread over at most `tasks` groups of similar total size (largest first)."""
    count = max(1, min(tasks, len(entries)))
    heap: list[tuple[int, int]] = [(0, i) for i in range(count)]
    groups: list[list[FileEntry]] = [[] for _ in range(count)]
    for entry in sorted(entries, key=lambda e: e.size, reverse=True):
        load, index = heapq.heappop(heap)
        groups[index].append(entry)
        heapq.heappush(heap, (load + entry.size, index))
    return [g for g in groups if g]


def task_count(entries: Sequence[FileEntry], *, parallelism: int, split_bytes: int) -> int:
    """How many read tasks suit `entries`: at least `parallelism`, at most one per file."""
    total = sum(e.size for e in entries)
    return max(parallelism, -(-total // split_bytes))
