"""Table upkeep: what keeps a Delta table fast as it ages, one table at a time.

Bronze commits once per micro-batch, so a day's partition collects hundreds of small files and
the log thousands of versions. `upkeep` compacts each sealed partition (no more arrivals
expected) that holds more than one file, Z-ordered by the facility so one facility's rows sit
together; tables without a date partition are compacted once they hold many small files.
`tidy` also checkpoints the log, drops expired log files and vacuums files older than the
retention. Compaction commits with dataChange=false, so readers and appends are unaffected.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from lake_assets.storage.delta import (
    TableStats,
    checkpoint,
    optimize,
    table_exists,
    table_stats,
    vacuum,
)
from lake_assets.storage.lake import Lake, TableName

# A table or partition without dates is compacted once it holds this many files.
MANY_FILES = 32


@dataclass(frozen=True)
class UpkeepSpec:
    """One table to keep: its name, its partition column (a date column when `daily`), the
    columns to Z-order by, and how long vacuum keeps removed files."""

    table: TableName
    partition_column: str | None = None
    daily: bool = False
    zorder_by: tuple[str, ...] = ()
    vacuum_hours: int = 7 * 24


@dataclass
class UpkeepResult:
    """What one pass did to one table, and its shape before and after."""

    table: str
    before: TableStats
    after: TableStats
    compacted: list[str] = field(default_factory=list)
    files_removed: int = 0
    files_added: int = 0
    checkpoint_version: int | None = None
    vacuumed: int = 0

    def as_metadata(self) -> dict[str, object]:
        """The table's shape now (plotted day over day) and what this pass did."""
        return self.after.as_metadata() | {
            "compacted_partitions": len(self.compacted),
            "files_removed": self.files_removed, "files_added": self.files_added,
            "files_vacuumed": self.vacuumed,
        }


def upkeep(lake: Lake, spec: UpkeepSpec, *, sealed_before: dt.date,
           tidy: bool = False) -> UpkeepResult | None:
    """Compact `spec.table`'s sealed partitions (dates before `sealed_before`) with more than
    one file, or any partition with MANY_FILES; with `tidy`, checkpoint and vacuum too.

    Returns None for a table not written yet. Raises DeltaMaintenanceError for a Z-order
    column the table lacks, DeltaConflictError when a concurrent rewrite of the same files won
    (the next pass tries again).
    """
    ref = lake.ref(spec.table)
    if not table_exists(ref.uri, options=ref.options):
        return None
    before = table_stats(ref, partition_column=spec.partition_column)
    result = UpkeepResult(ref.name, before, before)
    for value in _to_compact(spec, before, sealed_before):
        where = {spec.partition_column: value} if spec.partition_column else None
        metrics = optimize(ref, zorder_by=spec.zorder_by or None, where=where)
        result.compacted.append(value)
        result.files_removed += int(metrics.get("numFilesRemoved", 0))
        result.files_added += int(metrics.get("numFilesAdded", 0))
    if tidy:
        result.checkpoint_version = checkpoint(ref, cleanup_logs=True)
        result.vacuumed = len(vacuum(ref, retention_hours=spec.vacuum_hours,
                                     allow_short_retention=True))
    result.after = table_stats(ref, partition_column=spec.partition_column)
    return result


def _to_compact(spec: UpkeepSpec, stats: TableStats, sealed_before: dt.date) -> list[str]:
    """Partition values to compact now ("" standing for the whole unpartitioned table)."""
    if spec.partition_column is None:
        return [""] if stats.files >= MANY_FILES else []
    found = []
    for value, files in sorted(stats.files_by_partition.items()):
        if spec.daily and value != "None" and files > 1 and \
                dt.date.fromisoformat(value) < sealed_before:
            found.append(value)
        elif not spec.daily and files >= MANY_FILES:
            found.append(value)
    return found
