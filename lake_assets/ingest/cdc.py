"""Silver changes from bronze rows: typed, de-identified, one row per key, deletes flagged.

`prepare` turns bronze rows into the rows a CDC merge applies. Deletes stay in force against
records that arrive after them: `tombstones` are the delete events to keep, `drop_deleted`
(SCD1) drops records no newer than a key's last delete, and `with_deletes` (SCD2) replays a key's
delete events so history closes where they happened. Pure transforms: no Dagster, no session.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from lake_assets.catalog.models import ColumnType, Table
from lake_assets.ingest.mask import mask_table, masked_type, spark_type

SEQUENCE = "_lake_sequence"
DELETED = "_lake_deleted"
ARRIVAL = "_arrival_date"
# Bronze lineage kept in silver; `_rescued_data` is not: undeclared fields are never masked.
LINEAGE: tuple[tuple[str, DataType], ...] = (
    ("_facility_id", StringType()),
    (ARRIVAL, DateType()),
    ("_source_archive", StringType()),
    ("_source_member", StringType()),
    ("_archive_sha256", StringType()),
    ("_ingested_at", TimestampType()),
    ("_batch_id", StringType()),
)
# After the sequence and the delete flag, later ingestion wins, then archive and member names.
TIE_BREAK = ("_ingested_at", "_source_archive", "_source_member")
SCD2_COLUMNS = ("valid_from", "valid_to", "is_current")
_LAST_DELETE = "_lake_last_delete"


def merge_keys(table: Table) -> tuple[str, ...]:
    """The columns identifying a row: the table's keys, or every declared column if none."""
    return table.keys or tuple(c.name for c in table.columns)


def merge_sequence(table: Table) -> str:
    """The column whose greater value replaces a row: `SEQUENCE` for SCD1, else `sequence_by`.

    An append table without `sequence_by` orders by its first key, which never differs between
    a row and its duplicate, so rows already present are kept.
    """
    if table.cdc == "scd1":
        return SEQUENCE
    return table.sequence_by or merge_keys(table)[0]


def change_keys(table: Table) -> tuple[str, ...]:
    """What `latest` keeps one row per: the keys, and for SCD2 `sequence_by` too."""
    return (*merge_keys(table), *((table.sequence_by,) if table.cdc == "scd2" else ()))


def delete_keys(table: Table) -> list[str]:
    """What identifies a stored delete event: the keys and `sequence_by`."""
    return [*merge_keys(table), *([table.sequence_by] if table.sequence_by else [])]


def prepare(bronze: DataFrame, table: Table, *, key: str, reference_year: int) -> DataFrame:
    """Bronze rows of `table` as silver changes: `latest(typed_changes(...))`.

    `key` is the HMAC key for hashed columns; `reference_year` anchors `year_only`.
    """
    return latest(typed_changes(bronze, table, key=key, reference_year=reference_year), table)


def typed_changes(bronze: DataFrame, table: Table, *, key: str, reference_year: int
                  ) -> DataFrame:
    """Every bronze row of `table` as silver stores it: declared columns cast and masked,
    lineage and the `DELETED` flag; several rows may share a key."""
    typed = bronze.select(
        *[_cast(bronze, name, kind) for name, kind in declared_columns(table)],
        *[_cast(bronze, name, kind) for name, kind in LINEAGE],
        _delete_flag(bronze, table).alias(DELETED),
    )
    return mask_table(typed, table, key=key, reference_year=reference_year)


def latest(changes: DataFrame, table: Table) -> DataFrame:
    """One row per key (per key and `sequence_by` for SCD2), and for SCD1 the `SEQUENCE`
    struct: the greatest `SEQUENCE` wins, that is the latest `sequence_by`, a delete before an
    update, then the latest ingestion, archive and member."""
    sequenced = changes.withColumn(SEQUENCE, _sequence(table))
    order = Window.partitionBy(*change_keys(table)).orderBy(F.col(SEQUENCE).desc())
    ranked = sequenced.withColumn("_lake_rank", F.row_number().over(order))
    ranked = ranked.where(F.col("_lake_rank") == 1).drop("_lake_rank")
    return ranked if table.cdc == "scd1" else ranked.drop(SEQUENCE)


def tombstones(changes: DataFrame, table: Table) -> DataFrame:
    """The delete events among `changes`: keys, `sequence_by` and for SCD1 `SEQUENCE`."""
    columns = [*merge_keys(table), *_sequence_columns(table)]
    return changes.where(F.col(DELETED)).select(*columns)


def drop_deleted(changes: DataFrame, deletes: DataFrame, table: Table) -> DataFrame:
    """SCD1 `changes` without the records that are not newer than their key's last delete."""
    keys = merge_keys(table)
    last = deletes.groupBy(*keys).agg(F.max(SEQUENCE).alias(_LAST_DELETE))
    last = last.select(*[F.col(k).alias(f"_d_{k}") for k in keys], _LAST_DELETE)
    on = [changes[k].eqNullSafe(last[f"_d_{k}"]) for k in keys]
    joined = changes.join(last, on=on, how="left")
    keep = (F.col(DELETED) | F.col(_LAST_DELETE).isNull()
            | (F.col(SEQUENCE) > F.col(_LAST_DELETE)))
    return joined.where(keep).select(*changes.columns)


def with_deletes(changes: DataFrame, deletes: DataFrame, table: Table) -> DataFrame:
    """SCD2 `changes` plus the stored delete events of their keys that they do not hold."""
    keys = merge_keys(table)
    events = [*keys, *_sequence_columns(table)]
    mine = deletes.join(changes.select(*keys).distinct(), on=list(keys), how="left_semi")
    missing = mine.join(changes.select(*events), on=events, how="left_anti")
    replayed = missing.select(*[
        F.col(f.name) if f.name in events
        else F.lit(True).alias(DELETED) if f.name == DELETED
        else F.lit(None).cast(f.dataType).alias(f.name)
        for f in changes.schema.fields
    ])
    return changes.unionByName(replayed)


def silver_schema(table: Table) -> StructType:
    """The schema of `silver/<table>`: masked declared columns, lineage, then `SEQUENCE` (SCD1)
    or the SCD2 history columns."""
    masked = {c.name: spark_type(masked_type(c)) for c in table.columns}
    fields = [StructField(name, masked.get(name, kind)) for name, kind in declared_columns(table)]
    fields += [StructField(name, kind) for name, kind in LINEAGE]
    declared = {c.name: c.type for c in table.columns}
    if table.cdc == "scd1":
        fields.append(StructField(SEQUENCE, _sequence_type(table, declared)))
    if table.cdc == "scd2" and table.sequence_by:
        kind = spark_type(declared[table.sequence_by])
        fields += [StructField("valid_from", kind), StructField("valid_to", kind),
                   StructField("is_current", BooleanType())]
    return StructType(fields)


def declared_columns(table: Table) -> list[tuple[str, DataType]]:
    """The declared columns with their Spark types, each `hl7` date or timestamp followed by its
    precision column (a string)."""
    columns: list[tuple[str, DataType]] = []
    for column in table.columns:
        columns.append((column.name, spark_type(column.type)))
        if column.precision_column is not None:
            columns.append((column.precision_column, StringType()))
    return columns


def _cast(df: DataFrame, name: str, kind: DataType) -> Column:
    source = F.col(name) if name in df.columns else F.lit(None)
    return source.cast(kind).alias(name)


def _delete_flag(df: DataFrame, table: Table) -> Column:
    signal = table.deletes
    if signal is None or signal.column not in df.columns:
        return F.lit(False)
    return F.coalesce(F.col(signal.column).cast("string").isin(*signal.values), F.lit(False))


def _sequence(table: Table) -> Column:
    first = F.col(table.sequence_by) if table.sequence_by else F.lit(None).cast("string")
    return F.struct(first.alias("sequence"), F.col(DELETED).alias("deleted"),
                    *[F.col(c) for c in TIE_BREAK])


def _sequence_type(table: Table, declared: dict[str, ColumnType]) -> StructType:
    first = spark_type(declared[table.sequence_by]) if table.sequence_by else StringType()
    lineage = dict(LINEAGE)
    return StructType([StructField("sequence", first),
                       StructField("deleted", BooleanType()),
                       *[StructField(c, lineage[c]) for c in TIE_BREAK]])


def _sequence_columns(table: Table) -> list[str]:
    columns = [table.sequence_by] if table.sequence_by else []
    return [*columns, SEQUENCE] if table.cdc == "scd1" else columns
