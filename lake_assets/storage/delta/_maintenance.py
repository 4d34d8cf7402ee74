"""Table maintenance through delta-rs: compaction, Z-order, vacuum, history and checkpoints.

Compaction and Z-order run in delta-rs on the calling process (DataFusion, streaming, spilling
past `max_spill_bytes`); they commit with dataChange=false, so readers and merges are unaffected.
Vacuum keeps at least 7 days of removed files unless told otherwise, so time travel inside the
retention window never breaks; it also deletes orphan files left by failed writes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import CommitProperties

from lake_assets.errors import DeltaConflictError, DeltaMaintenanceError
from lake_assets.storage.delta._predicate import PredicateSpec, parse_predicate
from lake_assets.storage.delta._snapshot import (
    all_match,
    arrow_schema,
    list_files,
    may_match,
    open_table,
    partition_string,
)
from lake_assets.storage.delta._tables import TableRef

RETENTION_FLOOR_HOURS = 7 * 24
_MAX_SPILL_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class TableStats:
    """The shape of a table's latest version: what makes it slow to open and read."""

    version: int
    files: int
    bytes: int
    partitions: int
    files_by_partition: dict[str, int]
    # From the files' statistics; None where a file has none (written without stats).
    rows: int | None = None
    rows_by_partition: dict[str, int | None] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, int]:
        """Numbers for an asset observation, which the UI plots day over day."""
        return {"delta_version": self.version, "versions": self.version + 1,
                "files": self.files, "bytes": self.bytes, "partitions": self.partitions}


def table_stats(ref: TableRef, *, partition_column: str | None = None) -> TableStats:
    """Files, bytes and versions of `ref`'s latest version; files per value of
    `partition_column` (as the log writes it) when given."""
    delta = open_table(ref.uri, options=ref.options, table=ref.name)
    files = list_files(delta)
    counts: Counter[str] = Counter()
    rows_by: dict[str, int | None] = {}
    if partition_column is not None:
        for f in files:
            value = str(partition_string(f.partition_values.get(partition_column)))
            counts[value] += 1
            rows_by[value] = _plus(rows_by.get(value, 0), f.num_records)
    rows: int | None = 0
    for f in files:
        rows = _plus(rows, f.num_records)
    return TableStats(version=delta.version(), files=len(files),
                      bytes=sum(f.size for f in files),
                      partitions=len({tuple(sorted(f.partition_values.items())) for f in files}),
                      files_by_partition=dict(counts), rows=rows, rows_by_partition=rows_by)


@dataclass(frozen=True)
class RowCounts:
    """A table's rows at `version`, and those matching a predicate (None where file statistics
    lack row counts), with the version's schema as Delta JSON."""

    version: int
    total: int | None
    matching: int | None
    schema_json: str


def count_rows(ref: TableRef, where: PredicateSpec = None) -> RowCounts:
    """Rows of `ref`'s latest version, all and those matching `where`, from one snapshot: file
    statistics, and reading the one column `where` names from files whose statistics cannot
    tell (some of their rows match, some do not)."""
    delta = open_table(ref.uri, options=ref.options, table=ref.name)
    terms = parse_predicate(where)
    total: int | None = 0
    matching: int | None = 0
    unsure = False
    for entry in list_files(delta):
        total = _plus(total, entry.num_records)
        if all_match(entry, terms):
            matching = _plus(matching, entry.num_records)
        elif may_match(entry, terms):
            unsure = True
    if unsure:
        filters = [(t.column, t.op, list(t.value) if isinstance(t.value, tuple) else t.value)
                   for t in terms]
        matching = delta.to_pyarrow_table(columns=[terms[0].column], filters=filters).num_rows
    return RowCounts(delta.version(), total, matching, delta.schema().to_json())


def rows_by_partition(ref: TableRef, *, column: str, version: int | None = None
                      ) -> dict[Any, int] | None:
    """Rows of `ref` per value of its partition column `column` (typed values), at `version`
    (latest by default), from the files' statistics alone. None when `column` does not
    partition the table or a file has no row count, so the caller must count the rows."""
    delta = open_table(ref.uri, options=ref.options, table=ref.name, version=version)
    rows: dict[Any, int] = {}
    for entry in list_files(delta):
        if column not in entry.partition_values or entry.num_records is None:
            return None
        value = entry.partition_values[column]
        rows[value] = rows.get(value, 0) + entry.num_records
    return rows


def _plus(total: int | None, more: int | None) -> int | None:
    """A sum that is unknown once one part is."""
    return None if total is None or more is None else total + more


def optimize(
    ref: TableRef,
    *,
    zorder_by: Sequence[str] | None = None,
    where: PredicateSpec = None,
    target_size: int | None = None,
    max_spill_bytes: int = _MAX_SPILL_BYTES,
) -> dict[str, Any]:
    """Compact small files (and Z-order them by `zorder_by`); returns delta-rs metrics.

    `where` restricts the work to partitions ({partition column: value}). Raises
    DeltaMaintenanceError naming the table and column for an unknown or non-partition column.
    """
    delta = open_table(ref.uri, options=ref.options, table=ref.name)
    filters = _partition_filters(delta, ref, where)
    names = arrow_schema(delta).names
    for column in zorder_by or ():
        if column not in names:
            raise DeltaMaintenanceError(f"table {ref.name}: cannot Z-order by unknown {column!r}")
    props = CommitProperties(custom_metadata={"lake.operation": "OPTIMIZE"})
    try:
        if zorder_by:
            return delta.optimize.z_order(list(zorder_by), partition_filters=filters,
                                          target_size=target_size,
                                          max_spill_size=max_spill_bytes,
                                          commit_properties=props)
        return delta.optimize.compact(partition_filters=filters, target_size=target_size,
                                      max_spill_size=max_spill_bytes, commit_properties=props)
    except CommitFailedError as exc:  # a concurrent rewrite removed files this one read
        raise DeltaConflictError(f"table {ref.name}: compaction lost a race with a concurrent "
                                 f"rewrite; the next pass compacts again ({exc})") from exc


def _partition_filters(
    delta: DeltaTable, ref: TableRef, where: PredicateSpec
) -> list[tuple[str, str, Any]] | None:
    terms = parse_predicate(where)
    partitions = delta.metadata().partition_columns
    filters = []
    for term in terms:
        if term.column not in partitions or term.op not in ("=", "!=", "in", "not in"):
            raise DeltaMaintenanceError(
                f"table {ref.name}: optimize can only select partitions; {term.column!r}"
                f" {term.op} is not a partition filter (partition columns: {partitions})"
            )
        value = ([partition_string(v) for v in term.value] if isinstance(term.value, tuple)
                 else partition_string(term.value))
        filters.append((term.column, term.op, value))
    return filters or None


def vacuum(
    ref: TableRef,
    *,
    retention_hours: int = RETENTION_FLOOR_HOURS,
    dry_run: bool = False,
    allow_short_retention: bool = False,
) -> list[str]:
    """Delete files older than `retention_hours` that no version in that window needs.

    Also deletes files no commit ever referenced (orphans of failed writes) once they are that
    old. Returns the paths deleted (or that would be, with `dry_run`). Raises
    DeltaMaintenanceError for a retention under 7 days unless `allow_short_retention`.
    """
    if retention_hours < RETENTION_FLOOR_HOURS and not allow_short_retention:
        raise DeltaMaintenanceError(
            f"table {ref.name}: vacuum retention {retention_hours} h is under the"
            f" {RETENTION_FLOOR_HOURS} h floor and would break time travel"
        )
    delta = open_table(ref.uri, options=ref.options, table=ref.name)
    return delta.vacuum(
        retention_hours=retention_hours,
        dry_run=dry_run,
        enforce_retention_duration=not allow_short_retention,
        full=True,
    )


def history(ref: TableRef, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The table's commits, newest first: version, timestamp, operation and metrics."""
    return open_table(ref.uri, options=ref.options, table=ref.name).history(limit)


def checkpoint(ref: TableRef, *, cleanup_logs: bool = False) -> int:
    """Write a checkpoint of the latest version (and drop expired log files); returns it."""
    delta = open_table(ref.uri, options=ref.options, table=ref.name)
    delta.create_checkpoint()
    if cleanup_logs:
        delta.cleanup_metadata()
    return delta.version()
