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

from lake_assets.errors import DeltaConflictError, DeltaSchemaError
from resources.delta.changes import DELETE_FLAG, Scd2, history_rows, latest_rows
from resources.delta.predicate import Term
from resources.delta.reader import FILE_COLUMN
from resources.delta.schema import arrow_to_spark, reconcile, spark_to_arrow
from resources.delta.snapshot import arrow_schema, list_files, may_match, open_table, table_exists
from resources.delta.tables import TableRef, WriteResult, read, write

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
    attempt = 1
    while True:
        try:
            return _merge_once(flagged, ref, keys=keys, sequence_by=sequence_by, scd2=scd2,
                               partition_by=partition_by, evolve=evolve_schema,
                               small=rewrite_below_bytes)
        except DeltaConflictError:
            if attempt >= max_attempts:
                raise
            attempt += 1


def _merge_once(
    source: DataFrame, ref: TableRef, *, keys: Sequence[str], sequence_by: str,
    scd2: Scd2 | None, partition_by: Sequence[str] | None, evolve: bool, small: int,
) -> MergeResult:
    spark = source.sparkSession
    if not table_exists(ref.uri, options=ref.options):
        schema = _new_schema(source, scd2=scd2, sequence_by=sequence_by)
        empty = spark.createDataFrame([], schema)
        rows = _apply(empty, source, keys=keys, sequence_by=sequence_by, scd2=scd2, schema=schema)
        done = write(rows, ref, partition_by=partition_by, extra={"operation": "MERGE"})
        return _result(ref, done, removed=0)
    delta = open_table(ref.uri, options=ref.options, table=ref.name)
    version = delta.version()
    schema = _table_schema(arrow_to_spark(arrow_schema(delta)), source, ref=ref, evolve=evolve)
    entries = list_files(delta)
    if sum(e.size for e in entries) < small:
        touched = [e.path for e in entries]
    else:
        bounds = _key_bounds(source, keys)
        candidates = [e.path for e in entries if may_match(e, bounds)]
        scan = read(spark, ref, version=version, with_file_column=True, only_files=candidates,
                    columns=keys)
        touched = _touched_files(scan, source, keys) if candidates else []
    target = read(spark, ref, version=version, only_files=touched)
    target_keys = read(spark, ref, version=version, only_files=touched, columns=keys)
    rows = _apply(target, source, keys=keys, sequence_by=sequence_by, scd2=scd2, schema=schema,
                  target_keys=target_keys)
    extra = {"removeFiles": json.dumps(touched), "readVersion": str(version),
             "operation": "MERGE"}
    done = write(rows, ref, evolve_schema=evolve, extra=extra)
    return _result(ref, done, removed=len(touched))


def _apply(target: DataFrame, source: DataFrame, *, keys: Sequence[str], sequence_by: str,
           scd2: Scd2 | None, schema: StructType,
           target_keys: DataFrame | None = None) -> DataFrame:
    if scd2 is None:
        return latest_rows(target, source, keys=keys, sequence_by=sequence_by, schema=schema,
                           target_keys=target_keys)
    return history_rows(target, source, keys=keys, sequence_by=sequence_by, scd2=scd2,
                        schema=schema)


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


def _touched_files(target: DataFrame, source: DataFrame, keys: Sequence[str]) -> list[str]:
    """Paths of target files holding at least one source key."""
    wanted = source.select(*[F.col(k).alias(f"_k_{k}") for k in keys]).distinct()
    on = [target[k].eqNullSafe(wanted[f"_k_{k}"]) for k in keys]
    hits = target.join(wanted, on=on, how="left_semi").select(FILE_COLUMN).distinct()
    return sorted(r[0] for r in hits.collect())


def _result(ref: TableRef, done: WriteResult, *, removed: int) -> MergeResult:
    return MergeResult(ref.name, ref.uri, done.version, files_removed=removed,
                       files_added=done.files, rows_written=done.rows)
