"""Rules about one table that need its feed: sources fit the format, and keys can be merged
once masked. `lakehouse validate` and the definitions load run them through `load_catalog`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lxml import etree

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.models import Feed, Table
from lake_assets.errors import MetadataProblem

HL7_PATH = re.compile(r"^([A-Z][A-Z0-9]{2})-([1-9]\d*)(?:\.([1-9]\d*))?(?:\.([1-9]\d*))?$")
"""An HL7 field path: segment-field[.component[.subcomponent]], e.g. PID-3.1."""


def table_problems(catalog: Catalog) -> list[MetadataProblem]:
    """Every problem of a table in its feed: sources, precision columns and merge roles."""
    problems: list[MetadataProblem] = []
    for feed in catalog.feeds:
        file = catalog.file_of("feed", feed.name)
        for table in feed.tables:
            for key, message in (*_sources(feed, table), *_siblings(table), *_merging(table)):
                problems.append(MetadataProblem(file, f"tables[{table.name}].{key}", message))
    return problems


def _sources(feed: Feed, table: Table) -> Iterator[tuple[str, str]]:
    """Each source must be something the feed's format parser can read."""
    kind = feed.format.kind
    for column in table.columns:
        key = f"columns[{column.name}].source"
        if isinstance(column.source, tuple) and kind != "hl7v2":
            yield key, f"format {kind} reads one source per column; only hl7v2 takes a list"
            continue
        for source in column.sources:
            if kind == "hl7v2" and not HL7_PATH.match(source):
                yield key, (f"{source!r} is not an HL7 field path like PID-3.1 "
                            "(segment-field.component.subcomponent)")
            if kind == "xml" and not _is_xpath(source):
                yield key, f"{source!r} is not a valid XPath"
    if kind == "xml" and table.selector and not _is_xpath(table.selector):
        yield "selector", f"{table.selector!r} is not a valid XPath"


def _is_xpath(expression: str) -> bool:
    try:
        etree.XPath(expression)
    except etree.XPathSyntaxError:
        return False
    return True


def _siblings(table: Table) -> Iterator[tuple[str, str]]:
    """An `hl7` date or timestamp adds `<column>_precision`, which must not be declared too."""
    names = {column.name for column in table.columns}
    for column in table.columns:
        sibling = column.precision_column
        if sibling is not None and sibling in names:
            yield (f"columns[{column.name}].format",
                   f"format hl7 adds column {sibling!r}, which the table also declares")


def _merging(table: Table) -> Iterator[tuple[str, str]]:
    """Silver merges by keys and orders by `sequence_by` once values are masked, so the table
    must say how to order, and masks must not merge different records."""
    if table.cdc != "append" and not table.sequence_by:
        yield "sequence_by", f"cdc {table.cdc} needs sequence_by to order records"
    if table.cdc == "append" and table.deletes is not None:
        yield "deletes", "deletes need cdc scd1 or scd2; append keeps every row"
    deletes = table.deletes.column if table.deletes else None
    for column in table.columns:
        role = "key" if column.name in table.keys else (
            "ordering" if column.name in (table.sequence_by, deletes) else None)
        allowed = (None, "hash") if role == "key" else (None,)
        if role is not None and column.phi not in allowed:
            yield (f"columns[{column.name}].phi",
                   f"{column.name!r} is used for merging ({role}); phi {column.phi} would merge "
                   "different records together; only keys may be tagged, and only with hash")
