"""MERGE by keys as a Spark copy-on-write: rewrite only the files that hold a source key.

Driver memory stays bounded whatever the source size: the driver collects one row of key
bounds and the list of touched file paths. Spark rewrites the touched files with the changes
applied (`changes.py`), and the commit removes them and adds the new files in one transaction
at the version that was read. A concurrent commit that removed any of those files makes the
merge re-run from a fresh snapshot, up to `max_attempts` times.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, StructField, StructType, TimestampType
from pyspark.storagelevel import StorageLevel

from lake_assets.errors import DeltaConflictError, DeltaSchemaError
from lake_assets.storage.delta._changes import DELETE_FLAG, Scd2, history_rows, latest_rows
from lake_assets.storage.delta._predicate import Term
from lake_assets.storage.delta._reader import FILE_COLUMN
from lake_assets.storage.delta._schema import arrow_to_spark, reconcile, spark_to_arrow
from lake_assets.storage.delta._snapshot import (
    arrow_schema,
    list_files,
    may_match,
    open_table,
    table_exists,
)
from lake_assets.storage.delta._tables import TableRef, WriteResult, read, write

SMALL_TABLE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class MergeResult:
    """What a merge did: the version committed and the files it swapped."""

    table: str
    uri: str
    version: int | None
    files_removed: int
    files_added: int
    rows_written: int

    def as_metadata(self) -> dict[str, Any]:
        """Materialization metadata for the merge."""
        return {"table_uri": self.uri, "delta_version": self.version,
                "files_removed": self.files_removed, "files_added": self.files_added,
                "rows_written": self.rows_written}


def merge_into(
    source: DataFrame,
    ref: TableRef,
    *,
    keys: Sequence[str],
    sequence_by: str,
    delete_when: Column | str | None = None,
    scd2: Scd2 | None = None,
    drop_columns: Sequence[str] = (),
    partition_by: Sequence[str] | None = None,
    evolve_schema: bool = False,
    max_attempts: int = 3,
    rewrite_below_bytes: int = SMALL_TABLE_BYTES,
) -> MergeResult:
    """Upsert `source` into `ref` by `keys`; the highest `sequence_by` wins per key.

    `delete_when` (a Column or SQL expression on source rows) marks deletes; `drop_columns`
    are source columns used for that and not stored. With `scd2` the table keeps history.
    A table smaller than `rewrite_below_bytes` is rewritten whole, saving two Spark jobs.
    Creates the table if missing. Raises DeltaSchemaError naming the table and column, and
    DeltaConflictError if concurrent commits conflict `max_attempts` times.
    """
    for column in [*keys, sequence_by]:
        if column not in source.columns:
            raise DeltaSchemaError(
                f"table {ref.name}: merge column {column!r} is not in the source"
            )
    flag = F.expr(delete_when) if isinstance(delete_when, str) else delete_when
    flagged = source.withColumn(DELETE_FLAG, F.coalesce(flag, F.lit(False)) if flag is not None
                                else F.lit(False)).drop(*drop_columns)
    if scd2 is not None:
        flagged = flagged.drop(*[c for c in scd2.columns() if c in flagged.columns])
    spec = _Spec(keys=tuple(keys), sequence_by=sequence_by, scd2=scd2, evolve=evolve_schema)
    attempt = 1
    while True:
        try:
            return _merge_once(flagged, ref, spec, partition_by=partition_by,
                               small=rewrite_below_bytes)
        except DeltaConflictError:
            if attempt >= max_attempts:
                raise
            attempt += 1


@dataclass(frozen=True)
class _Spec:
    keys: tuple[str, ...]
    sequence_by: str
    scd2: Scd2 | None
    evolve: bool


def _merge_once(source: DataFrame, ref: TableRef, spec: _Spec, *,
                partition_by: Sequence[str] | None, small: int) -> MergeResult:
    if not table_exists(ref.uri, options=ref.options):
        schema = _new_schema(source, scd2=spec.scd2, sequence_by=spec.sequence_by)
        empty = source.sparkSession.createDataFrame([], schema)
        rows = _apply(empty, source, spec, schema=schema, target_keys=None)
        done = write(rows, ref, partition_by=partition_by, extra={"operation": "MERGE"})
        return _result(ref, done, removed=0)
    delta = open_table(ref.uri, options=ref.options, table=ref.name)
    version = delta.version()
    schema = _table_schema(arrow_to_spark(arrow_schema(delta)), source, ref=ref,
                           evolve=spec.evolve)
    entries = list_files(delta)
    if sum(e.size for e in entries) < small:
        return _rewrite(source, ref, spec, [e.path for e in entries], version=version,
                        schema=schema, target_keys=None)
    bounds = _key_bounds(source, spec.keys)
    candidates = [e.path for e in entries if may_match(e, bounds)]
    scan = read(source.sparkSession, ref, version=version, with_file_column=True,
                only_files=candidates, columns=spec.keys).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        touched = _touched_files(scan, source, spec.keys, candidates) if candidates else []
        # keys of every candidate file: a superset of the touched files' keys is enough
        return _rewrite(source, ref, spec, touched, version=version, schema=schema,
                        target_keys=scan)
    finally:
        scan.unpersist()


def _rewrite(source: DataFrame, ref: TableRef, spec: _Spec, touched: list[str], *,
             version: int, schema: StructType, target_keys: DataFrame | None) -> MergeResult:
    """Rewrite the `touched` files with the changes applied, swapping them in one commit."""
    target = read(source.sparkSession, ref, version=version, only_files=touched)
    rows = _apply(target, source, spec, schema=schema, target_keys=target_keys)
    extra = {"removeFiles": json.dumps(touched), "readVersion": str(version),
             "operation": "MERGE"}
    done = write(rows, ref, evolve_schema=spec.evolve, extra=extra)
    return _result(ref, done, removed=len(touched))


def _apply(target: DataFrame, source: DataFrame, spec: _Spec, *, schema: StructType,
           target_keys: DataFrame | None) -> DataFrame:
    if spec.scd2 is None:
        return latest_rows(target, source, keys=spec.keys, sequence_by=spec.sequence_by,
                           schema=schema, target_keys=target_keys)
    return history_rows(target, source, keys=spec.keys, sequence_by=spec.sequence_by,
                        scd2=spec.scd2, schema=schema)


def _new_schema(source: DataFrame, *, scd2: Scd2 | None, sequence_by: str) -> StructType:
    fields = [f for f in source.schema.fields if f.name != DELETE_FLAG]
    if scd2 is not None:
        kind = source.schema[sequence_by].dataType
        fields += [StructField(scd2.valid_from, kind), StructField(scd2.valid_to, kind),
                   StructField(scd2.is_current, BooleanType())]
    return StructType([StructField(f.name, f.dataType, True) for f in fields])


def _table_schema(table: StructType, source: DataFrame, *, ref: TableRef,
                  evolve: bool) -> StructType:
    """The table schema, extended by new source columns when evolving; checks source types."""
    incoming = StructType([f for f in source.schema.fields if f.name != DELETE_FLAG])
    merged, _ = reconcile(spark_to_arrow(table), spark_to_arrow(incoming), table=ref.name,
                          evolve=evolve)
    return arrow_to_spark(merged)


def _key_bounds(source: DataFrame, keys: Sequence[str]) -> list[Term]:
    """Min/max terms per key, for pruning files by statistics (one small row collected)."""
    usable = [k for k in keys if not isinstance(source.schema[k].dataType, TimestampType)]
    if not usable:
        return []
    aggs = []
    for k in usable:
        aggs += [F.min(k), F.max(k), F.count(F.when(F.col(k).isNull(), 1))]
    row = source.agg(*aggs).first()
    terms: list[Term] = []
    for i, k in enumerate(usable):
        low, high, nulls = row[3 * i], row[3 * i + 1], row[3 * i + 2]
        if nulls == 0 and low is not None:
            terms += [Term(k, ">=", low), Term(k, "<=", high)]
    return terms


def _touched_files(
    scan: DataFrame, source: DataFrame, keys: Sequence[str], candidates: Sequence[str]
) -> list[str]:
    """Paths of the candidate files holding at least one source key."""
    wanted = source.select(*[F.col(k).alias(f"_k_{k}") for k in keys]).distinct()
    on = [scan[k].eqNullSafe(wanted[f"_k_{k}"]) for k in keys]
    hits = scan.join(wanted, on=on, how="left_semi").select(FILE_COLUMN).distinct()
    return sorted(candidates[r[0]] for r in hits.collect())


def _result(ref: TableRef, done: WriteResult, *, removed: int) -> MergeResult:
    return MergeResult(ref.name, ref.uri, done.version, files_removed=removed,
                       files_added=done.files, rows_written=done.rows)
