"""The peer's frames: a feed's staged files through Spark's own readers, typed as declared.

CSV and delimited files are typed by the reader (a schema, the feed's date and timestamp
format, PERMISSIVE mode with a corrupt-record column), and so is XML (`rowTag`, a nested schema
built from the column paths, nested records taken out with `transform`); HL7 is read in
`benchmarks/peer_hl7.py`. Every frame holds one row per table row: `_table`, the declared
columns of all the feed's tables, `_source_file` and `_bad` (the row failed typing, left a
required column empty or holds a date before the floor).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, DataFrameReader
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_type
from pyspark.sql.types import (
    ArrayType,
    DataType,
    StringType,
    StructField,
    StructType,
)

from lake_assets.catalog.models import Feed, Table
from lake_assets.ingest.convert import arrow_type

TABLE, SOURCE, BAD = "_table", "_source_file", "_bad"
CORRUPT = "_corrupt_record"
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


def read_delimited(reader: DataFrameReader, feed: Feed, folder: str) -> DataFrame:
    """The feed's one table from CSV or delimited files, typed by the reader."""
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


def read_xml(reader: DataFrameReader, feed: Feed, folder: str) -> DataFrame:
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


def nullable(table: Table, name: str) -> bool:
    column = next((c for c in table.columns if c.name == name), None)
    return column is None or column.nullable


def _formats(*tables: Table) -> dict[str, str]:
    """The reader's date and timestamp options: one format per type for the whole read."""
    found: dict[str, str] = {}
    for column in (c for t in tables for c in t.columns):
        if column.type not in ("date", "timestamp"):
            continue
        key = "dateFormat" if column.type == "date" else "timestampNTZFormat"
        pattern = java_pattern(column.format or "")
        if found.setdefault(key, pattern) != pattern:
            raise ValueError(f"column {column.name}: a second {key} in one read")
    return found


def java_pattern(strptime: str) -> str:
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
