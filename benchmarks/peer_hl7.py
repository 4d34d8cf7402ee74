"""The peer's HL7 frames: whole files split into fields by a Python UDF, typed by Spark.

Files are read whole (`text` with `wholetext`); the UDF (`mapInArrow`) runs the project's HL7
field parser, so the fields are ours; Spark expressions then type them, HL7 DTM included
(missing parts, fractions, offsets to UTC, the precision sent). Rows as `peer_read` makes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, DataFrameReader
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_type
from pyspark.sql.types import BooleanType, StringType, StructField, StructType

from benchmarks.peer_read import BAD, SOURCE, TABLE, java_pattern, nullable, output_columns
from lake_assets.catalog.formats import HL7, PRECISIONS
from lake_assets.catalog.models import Column, Feed
from lake_assets.ingest.convert import arrow_type
from lake_assets.ingest.parsers import hl7
from lake_assets.ingest.records import as_array

_UNPARSED = "_unparsed"  # an HL7 message without a valid MSH: one bad row of the first table
_HL7_DTM = r"^([0-9]{4}(?:[0-9]{2}){0,5})(?:\.([0-9]{1,4}))?([+-][0-9]{4})?$"


def read_hl7(reader: DataFrameReader, feed: Feed, folder: str) -> DataFrame:
    """Whole files through the HL7 field parser, then each value typed by Spark.

    Typing takes three projections (text and its parts, values, then precisions and the bad
    flag), so Spark computes each regular expression once per value instead of inlining it
    into every expression that reads it (which also outgrew Java's 64 KB method limit).
    """
    declared = {c.name: c for t in feed.tables for c in t.columns}
    names = list(declared)
    raw = StructType([StructField(TABLE, StringType()),
                      *[StructField(n, StringType()) for n in names],
                      StructField(SOURCE, StringType()), StructField(_UNPARSED, BooleanType())])
    files = reader.text(folder, wholetext=True)
    files = files.select(F.col("_metadata.file_path").alias(SOURCE), "value")
    fields = files.mapInArrow(_hl7_fields(feed, names), raw)
    parts = fields.select(TABLE, SOURCE, _UNPARSED, *[
        e for c in declared.values() for e in _text_parts(c)])
    values = parts.select("*", *[_value(c).alias(c.name) for c in declared.values()])
    bad = F.col(_UNPARSED)
    for column in declared.values():
        required = [t.name for t in feed.tables if not nullable(t, column.name)]
        if required:
            bad = bad | (F.col(TABLE).isin(required) & F.col(column.name).isNull())
        if column.type != "string":
            sent = F.col(_part(column, "text")).isNotNull()
            bad = bad | (sent & F.col(column.name).isNull())
    typed = {n: F.col(n) for n in names} | {
        c.precision_column: _precision(c) for c in declared.values() if c.precision_column}
    return values.select(TABLE, *[typed[n].cast(k).alias(n)
                                  for n, k in output_columns(feed).items()],
                         SOURCE, bad.alias(BAD))


def _hl7_fields(
    feed: Feed, names: list[str]
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The UDF body: each batch of whole files parsed to raw string fields per table."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        layout = hl7.build_layout(feed)
        for batch in batches:
            files = zip(batch.column(SOURCE).to_pylist(), batch.column("value").to_pylist(),
                        strict=True)
            parsed = hl7.parse_files(layout, files)
            for name, table in parsed.tables.items():
                count = table.num_rows
                members = table.members if table.members is not None else [None] * count
                yield pa.RecordBatch.from_pydict({
                    TABLE: pa.repeat(pa.scalar(name), count),
                    **{n: table.column(n) if n in table.columns else pa.nulls(count, pa.string())
                       for n in names},
                    SOURCE: as_array([members]),
                    _UNPARSED: pa.repeat(pa.scalar(False), count),
                }, schema=_raw_arrow(names))
            for name, records in parsed.bad.items():
                yield pa.RecordBatch.from_pydict({
                    TABLE: [name] * len(records), **{n: [None] * len(records) for n in names},
                    SOURCE: [r.member for r in records], _UNPARSED: [True] * len(records),
                }, schema=_raw_arrow(names))

    return run


def _raw_arrow(names: list[str]) -> pa.Schema:
    return pa.schema([(TABLE, pa.string()), *[(n, pa.string()) for n in names],
                      (SOURCE, pa.string()), (_UNPARSED, pa.bool_())])


def _part(column: Column, part: str) -> str:
    return f"_{column.name}__{part}"


def _text_parts(column: Column) -> list[SparkColumn]:
    """The sent text of a column (null when empty) and, for HL7 times, its DTM parts."""
    if column.type == "string":
        return [F.nullif(F.col(column.name), F.lit("")).alias(_part(column, "text"))]
    text = F.nullif(F.trim(F.col(column.name)), F.lit(""))
    found = [text.alias(_part(column, "text"))]
    if column.format == HL7:
        found += [F.regexp_extract(text, _HL7_DTM, i).alias(_part(column, part))
                  for i, part in ((1, "digits"), (2, "fraction"), (3, "zone"))]
    return found


def _value(column: Column) -> SparkColumn:
    """A column typed as declared from its text parts; null when it does not convert or is
    before the column's floor."""
    text = F.col(_part(column, "text"))
    if column.type == "string":
        return text
    if column.format == HL7:
        value = _hl7_time(column)
    elif column.type in ("date", "timestamp"):
        pattern = F.lit(java_pattern(column.format or ""))
        value = F.try_to_date(text, pattern) if column.type == "date" \
            else F.try_to_timestamp(text, pattern)
    else:
        value = text.try_cast(from_arrow_type(arrow_type(column)))
    if column.type in ("date", "timestamp"):
        value = F.when(value >= F.lit(column.floor), value)
    return value


def _hl7_time(column: Column) -> SparkColumn:
    """HL7 DTM as ours reads it: missing parts are the start of the period, a fraction only
    after seconds, an offset shifts to UTC (a date keeps its day)."""
    digits, fraction, zone = (F.col(_part(column, p)) for p in ("digits", "fraction", "zone"))
    padded = F.concat(digits, F.substr(F.lit("0101000000"), F.length(digits) - 3))
    local = F.try_to_timestamp(padded, F.lit("yyyyMMddHHmmss"))
    fine = (digits != "") & ((fraction == "") | (F.length(digits) == 14))
    hours = F.substr(zone, F.lit(2), F.lit(2)).try_cast("int")
    minutes = F.substr(zone, F.lit(4), F.lit(2)).try_cast("int")
    sign = F.when(F.substr(zone, F.lit(1), F.lit(1)) == "-", -1).otherwise(1)
    offset = F.when(zone == "", 0).when((hours <= 14) & (minutes < 60),
                                        sign * (hours * 3600 + minutes * 60) * 1_000_000)
    if column.type == "date":
        return F.when(fine & offset.isNotNull(), F.to_date(local))
    micros = F.when(fraction == "", 0).otherwise(F.rpad(fraction, 6, "0").try_cast("long"))
    return F.when(fine, F.timestamp_micros(F.unix_micros(local) + micros - offset))


def _precision(column: Column) -> SparkColumn:
    """Which parts of an HL7 time were sent: `year` ... `second.4`."""
    digits, fraction = F.col(_part(column, "digits")), F.col(_part(column, "fraction"))
    step = ((F.length(digits) - 4) / 2).cast("int") + F.length(fraction) + 1
    listed = F.array(*map(F.lit, PRECISIONS))
    return F.when(F.col(column.name).isNotNull(), F.try_element_at(listed, step))
