"""The peer's frames: a feed's staged files through Spark's own readers, typed as declared.

CSV and delimited files are typed by the reader (a schema, the feed's date and timestamp
format, PERMISSIVE mode with a corrupt-record column), and so is XML (`rowTag`, a nested schema
built from the column paths, nested records taken out with `transform`). HL7 files are read
whole (`text` with `wholetext`), split into fields by a Python UDF (`mapInArrow` over the
project's HL7 field parser) and typed with Spark expressions. Every frame holds one row per
table row: `_table`, the declared columns of all the feed's tables, `_source_file` and `_bad`
(the row failed typing, left a required column empty or holds a date before the floor).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator

import pyarrow as pa
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, DataFrameReader, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_type
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    StringType,
    StructField,
    StructType,
)

from lake_assets.catalog.formats import HL7, PRECISIONS
from lake_assets.catalog.models import Column, Feed, Table
from lake_assets.ingest.convert import arrow_type
from lake_assets.ingest.parsers import hl7
from lake_assets.ingest.records import as_array

TABLE, SOURCE, BAD = "_table", "_source_file", "_bad"
CORRUPT = "_corrupt_record"
_UNPARSED = "_unparsed"  # an HL7 message without a valid MSH: one bad row of the first table
_HL7_DTM = r"^([0-9]{4}(?:[0-9]{2}){0,5})(?:\.([0-9]{1,4}))?([+-][0-9]{4})?$"
_JAVA = {"Y": "yyyy", "m": "MM", "d": "dd", "H": "HH", "M": "mm", "S": "ss"}


def output_columns(feed: Feed) -> dict[str, DataType]:
    """The typed columns of every table of `feed` (an HL7 time followed by its precision).

    Raises ValueError when two tables declare one column name with different types.
    """
    found: dict[str, DataType] = {}
    for table in feed.tables:
        for column in table.columns:
            fields = {column.name: from_arrow_type(arrow_type(column))}
            if column.precision_column is not None:
                fields[column.precision_column] = StringType()
            for name, kind in fields.items():
                if found.setdefault(name, kind) != kind:
                    raise ValueError(f"feed {feed.name}: column {name} has two types")
    return found


def read_feed(spark: SparkSession, feed: Feed, folder: str) -> DataFrame:
    """Every row of every table of `feed` in the staged `folder`, typed and tagged."""
    reader = spark.read.option("pathGlobFilter", feed.format.member_pattern)
    kind = feed.format.kind
    if kind in ("csv", "delimited"):
        return _delimited(reader, feed, folder)
    if kind == "xml":
        return _xml(reader, feed, folder)
    return _hl7(reader, feed, folder)


def _delimited(reader: DataFrameReader, feed: Feed, folder: str) -> DataFrame:
    (table,) = feed.tables
    fields = [StructField(c.name, from_arrow_type(arrow_type(c))) for c in table.columns]
    schema = StructType([*fields, StructField(CORRUPT, StringType())])
    frame = (reader.schema(schema).options(**_formats(table))
             .option("header", str(feed.format.header).lower())
             .option("sep", feed.format.delimiter or ",")
             .option("encoding", _java_charset(feed.encoding))
             .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
             .csv(folder))
    row = _tagged(feed, table, F.col, F.col(CORRUPT).isNotNull())
    return frame.select(row.alias("row"), F.col("_metadata.file_path").alias(SOURCE)) \
        .select("row.*", SOURCE)


def _xml(reader: DataFrameReader, feed: Feed, folder: str) -> DataFrame:
    """One read of the row element; tables selected below it come out of its nested array."""
    row_tag = _steps(feed.tables[0].selector)[0]
    tree: dict = {}
    arrays: set[tuple[str, ...]] = set()
    placed: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for table in feed.tables:
        selector = _steps(table.selector)
        if selector[0] != row_tag:
            raise ValueError(f"feed {feed.name} table {table.name}: not under <{row_tag}>")
        within = tuple(selector[1:])
        if within:
            arrays.add(within)
        for column in table.columns:
            path = _resolve(within, column.source_or_name)
            inner = path[len(within):] if within and path[:len(within)] == within else ()
            placed[(table.name, column.name)] = (within if inner else (), inner or path)
            _insert(tree, path, from_arrow_type(arrow_type(column)))
    schema = _struct(tree, arrays, ()).add(CORRUPT, StringType())
    frame = (reader.schema(schema).options(**_formats(*feed.tables)).option("rowTag", row_tag)
             .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
             .xml(folder))
    corrupt = F.col(CORRUPT).isNotNull()
    top = [t for t in feed.tables if len(_steps(t.selector)) == 1]
    rows = F.array(*[_tagged(feed, t, lambda name, t=t: _pick(None, *placed[(t.name, name)]),
                             corrupt) for t in top])
    for table in (t for t in feed.tables if len(_steps(t.selector)) > 1):
        items = F.col(".".join(_steps(table.selector)[1:]))
        made = F.transform(items, _nested_row(feed, table, placed, corrupt))
        rows = F.when(items.isNull(), rows).otherwise(F.concat(rows, made))
    return frame.select(F.inline(rows), F.col("_metadata.file_path").alias(SOURCE))


def _nested_row(feed: Feed, table: Table, placed: dict, corrupt: SparkColumn
                ) -> Callable[[SparkColumn], SparkColumn]:
    """The row of `table` made of one item of its nested array (a lambda of one argument, as
    `transform` wants)."""
    def row(item: SparkColumn) -> SparkColumn:
        return _tagged(feed, table, lambda name: _pick(item, *placed[(table.name, name)]),
                       corrupt)

    return row


def _pick(item: SparkColumn | None, within: tuple[str, ...], path: tuple[str, ...]
          ) -> SparkColumn:
    """A value of the row element (`within` empty) or of the nested `item`."""
    if item is None or not within:
        return F.col(".".join(path))
    value = item
    for step in path:
        value = value.getField(step)
    return value


def _hl7(reader: DataFrameReader, feed: Feed, folder: str) -> DataFrame:
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
        required = [t.name for t in feed.tables if not _nullable(t, column.name)]
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
        pattern = F.lit(_java_pattern(column.format or ""))
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


def _tagged(feed: Feed, table: Table, value: Callable[[str], SparkColumn],
            corrupt: SparkColumn) -> SparkColumn:
    """One table's row as a struct of the feed's columns (others null), typed by the reader."""
    mine = {c.name: c for c in table.columns}
    bad = corrupt
    fields = [F.lit(table.name).alias(TABLE)]
    for name, kind in output_columns(feed).items():
        column = mine.get(name)
        found = value(name) if column is not None else F.lit(None)
        fields.append(found.cast(kind).alias(name))
        if column is not None and not column.nullable:
            bad = bad | found.isNull()
        if column is not None and column.type in ("date", "timestamp"):
            bad = bad | F.coalesce(found < F.lit(column.floor), F.lit(False))
    return F.struct(*fields, bad.alias(BAD))


def _nullable(table: Table, name: str) -> bool:
    column = next((c for c in table.columns if c.name == name), None)
    return column is None or column.nullable


def _formats(*tables: Table) -> dict[str, str]:
    """The reader's date and timestamp options: one format per type for the whole read."""
    found: dict[str, str] = {}
    for column in (c for t in tables for c in t.columns):
        if column.type not in ("date", "timestamp"):
            continue
        key = "dateFormat" if column.type == "date" else "timestampNTZFormat"
        pattern = _java_pattern(column.format or "")
        if found.setdefault(key, pattern) != pattern:
            raise ValueError(f"column {column.name}: a second {key} in one read")
    return found


def _java_pattern(strptime: str) -> str:
    """A strptime format of fixed-width directives as a Java datetime pattern."""
    out = []
    for token in re.findall(r"%.|[^%]", strptime):
        if token.startswith("%"):
            if token[1] not in _JAVA:
                raise ValueError(f"format {strptime!r}: the peer reads %Y %m %d %H %M %S only")
            out.append(_JAVA[token[1]])
        else:
            out.append(f"'{token}'" if token.isalpha() else token)
    return "".join(out)


def _java_charset(encoding: str) -> str:
    """Spark's name for a Python codec: `latin-1` is `iso-8859-1`."""
    name = codecs.lookup(encoding).name
    return "us-ascii" if name == "ascii" else name.replace("iso8859", "iso-8859")


def _steps(path: str | None) -> list[str]:
    return [s for s in (path or "").strip("/").split("/") if s]


def _resolve(within: tuple[str, ...], source: str) -> tuple[str, ...]:
    """An XPath relative to the selector `within` the row element, as steps from the row."""
    steps = list(within)
    for step in source.split("/"):
        if step == "..":
            steps.pop()
        elif step not in ("", "."):
            steps.append(step)
    return tuple(steps)


def _insert(tree: dict, path: tuple[str, ...], kind: DataType) -> None:
    for step in path[:-1]:
        tree = tree.setdefault(step, {})
    tree[path[-1]] = kind


def _struct(tree: dict, arrays: set[tuple[str, ...]], at: tuple[str, ...]) -> StructType:
    fields = []
    for name, node in tree.items():
        here = (*at, name)
        kind = _struct(node, arrays, here) if isinstance(node, dict) else node
        fields.append(StructField(name, ArrayType(kind) if here in arrays else kind))
    return StructType(fields)
