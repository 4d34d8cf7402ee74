"""Pure DataFrame transforms that apply a batch of changes to the rows of a table.

`latest_rows` is SCD1: the newest record per key wins, whatever order records arrive in.
`history_rows` is SCD2: every record is a version with `valid_from`, `valid_to`, `is_current`,
and a late record slots into history where it belongs. Deletes are records flagged by
`DELETE_FLAG`. No Spark session is created here and nothing is collected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

DELETE_FLAG = "_lake_delete"
_T, _S, _RANK, _TS = "_lake_target", "_lake_source", "_lake_rank", "_lake_ts"


@dataclass(frozen=True)
class Scd2:
    """Column names of the SCD2 history shape."""

    valid_from: str = "valid_from"
    valid_to: str = "valid_to"
    is_current: str = "is_current"

    def columns(self) -> tuple[str, str, str]:
        """The three history column names."""
        return (self.valid_from, self.valid_to, self.is_current)


def conform(df: DataFrame, schema: StructType) -> DataFrame:
    """`df` with exactly the columns of `schema`, in order: missing ones null, others cast."""
    return df.select(*[_as(df, f) for f in schema.fields])


def dedupe_latest(source: DataFrame, *, keys: Sequence[str], sequence_by: str) -> DataFrame:
    """One row per key: the highest `sequence_by`, a delete winning a tie."""
    order = Window.partitionBy(*keys).orderBy(
        F.col(sequence_by).desc_nulls_last(), F.col(DELETE_FLAG).desc()
    )
    return source.withColumn(_RANK, F.row_number().over(order)).filter(F.col(_RANK) == 1).drop(
        _RANK
    )


def latest_rows(
    target: DataFrame, source: DataFrame, *, keys: Sequence[str], sequence_by: str,
    schema: StructType, target_keys: DataFrame | None = None,
) -> DataFrame:
    """The rows of `target` after applying `source`: newest per key wins, deletes remove.

    A source row replaces a target row only when its sequence is strictly greater, so replays
    and late records never overwrite newer data. `schema` is the output schema. Target rows are
    joined with the source without being shuffled (Spark broadcasts a small source), and new
    keys are found against `target_keys` (the key columns of `target`, possibly a cheaper scan).
    """
    columns = [f.name for f in schema.fields]
    latest = dedupe_latest(source, keys=keys, sequence_by=sequence_by)
    t = target.select(*[F.col(k).alias(f"_t_{k}") for k in keys],
                      F.struct(*[_as(target, f) for f in schema.fields]).alias(_T))
    s = latest.select(*[F.col(k).alias(f"_s_{k}") for k in keys],
                      F.struct(*[_as(latest, f) for f in schema.fields]).alias(_S),
                      F.col(DELETE_FLAG))
    on = [F.col(f"_t_{k}").eqNullSafe(F.col(f"_s_{k}")) for k in keys]
    joined = t.join(s, on=on, how="left")
    src_seq, tgt_seq = F.col(f"{_S}.{sequence_by}"), F.col(f"{_T}.{sequence_by}")
    take_source = F.col(_S).isNotNull() & src_seq.isNotNull() & (
        tgt_seq.isNull() | (src_seq > tgt_seq))
    kept = joined.filter(~(take_source & F.col(DELETE_FLAG)))
    row = F.when(take_source, F.col(_S)).otherwise(F.col(_T)).alias("_row")
    updated = kept.select(row).select(*[F.col(f"_row.{c}").alias(c) for c in columns])
    existing = (target if target_keys is None else target_keys).select(
        *[F.col(k).alias(f"_t_{k}") for k in keys])
    inserts = s.join(existing, on=on, how="left_anti").filter(~F.col(DELETE_FLAG))
    return updated.unionByName(inserts.select(*[F.col(f"{_S}.{c}").alias(c) for c in columns]))


def history_rows(
    target: DataFrame, source: DataFrame, *, keys: Sequence[str], sequence_by: str,
    scd2: Scd2, schema: StructType,
) -> DataFrame:
    """The SCD2 history of `target` after applying `source`, recomputed per key.

    Each version is an event at its `valid_from`; a delete is an event without a row. A closed
    version with no successor marks an earlier delete. Events are ordered per key, existing
    ones winning ties, and each row's `valid_to` is the next event's time.
    """
    data = [f for f in schema.fields if f.name not in scd2.columns()]
    vf, vt = scd2.valid_from, scd2.valid_to
    existing = target.select(*[_as(target, f) for f in data], F.col(vf).alias(_TS),
                             F.lit(False).alias(DELETE_FLAG), F.lit(0).alias(_RANK))
    starts = target.select(*keys, F.col(vf).alias("_start"))
    closed = target.filter(F.col(vt).isNotNull()).select(*keys, F.col(vt).alias("_end"))
    open_ends = closed.join(
        starts, on=[*[closed[k].eqNullSafe(starts[k]) for k in keys],
                    closed["_end"] == starts["_start"]], how="left_anti"
    )
    deletes = open_ends.select(*[_null_unless_key(f, keys) for f in data],
                               F.col("_end").alias(_TS), F.lit(True).alias(DELETE_FLAG),
                               F.lit(1).alias(_RANK))
    incoming = source.select(*[_as(source, f) for f in data],
                             F.col(sequence_by).cast(schema[vf].dataType).alias(_TS),
                             F.col(DELETE_FLAG),
                             F.when(F.col(DELETE_FLAG), 2).otherwise(3).alias(_RANK))
    events = existing.unionByName(deletes).unionByName(incoming)
    first = Window.partitionBy(*keys, _TS).orderBy(_RANK)
    events = events.withColumn("_n", F.row_number().over(first)).filter("_n = 1")
    timeline = Window.partitionBy(*keys).orderBy(_TS)
    events = events.withColumn("_next", F.lead(_TS).over(timeline))
    return events.filter(~F.col(DELETE_FLAG)).select(
        *[F.col(f.name) for f in data],
        F.col(_TS).alias(vf),
        F.col("_next").alias(vt),
        F.col("_next").isNull().alias(scd2.is_current),
    ).select(*[F.col(f.name).cast(f.dataType) for f in schema.fields])


def _as(df: DataFrame, field: StructField) -> Column:
    source = F.col(field.name) if field.name in df.columns else F.lit(None)
    return source.cast(field.dataType).alias(field.name)


def _null_unless_key(field: StructField, keys: Sequence[str]) -> Column:
    source = F.col(field.name) if field.name in keys else F.lit(None)
    return source.cast(field.dataType).alias(field.name)
