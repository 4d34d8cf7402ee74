"""HL7 v2 data files: messages split on MSH, fields picked by paths like `PID-3.1`.

Only referenced segments are split, with the separators each message declares in MSH-1/MSH-2.
python-hl7 built a full tree of every field (about 450 µs a message here, against 25 µs) and its
unescape logs field values on bad escape sequences, which would put PHI in logs; it remains the
reference the tests compare against. Segments no column references (Z-segments, OBX, AL1...) are
a record's unknown fields, kept verbatim as `{"ZPV": ["ZPV|..."]}`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from lake_assets.catalog.models import Feed
from lake_assets.errors import ColumnSourceError
from lake_assets.ingest.parsers.hl7_text import Encoding, field_value, read_encoding
from lake_assets.ingest.records import BadRecord, ParsedFile, RawTable, Unknown, to_json

_PATH = re.compile(r"^([A-Z][A-Z0-9]{2})-([1-9]\d*)(?:\.([1-9]\d*))?(?:\.([1-9]\d*))?$")
_ENVELOPE = frozenset({"FHS", "FTS", "BHS", "BTS"})
_FRAMING = "\x0b\x1c"

Segments = dict[str, list[list[str]]]
"""Referenced segments of one message by id, each split into its fields."""


@dataclass(frozen=True)
class FieldPath:
    """Segment, field, component and subcomponent of an HL7 field path (1-based)."""

    segment: str
    field: int
    component: int
    subcomponent: int


@dataclass(frozen=True)
class TableLayout:
    """One table: its selector segment and the path of each column."""

    name: str
    selector: str
    paths: tuple[tuple[str, FieldPath], ...]


@dataclass(frozen=True)
class Layout:
    """A feed's tables and the segments its columns reference."""

    tables: tuple[TableLayout, ...]
    referenced: frozenset[str]


def build_layout(feed: Feed) -> Layout:
    """The HL7 layout of `feed`; raises ColumnSourceError for a source that is not a field path.

    A path without a component means component 1 (python-hl7's rule); only the first
    repetition of a field is addressable.
    """
    tables = []
    for table in feed.tables:
        paths = tuple(
            (column.name, _field_path(feed, table.name, column.name, column.source_or_name))
            for column in table.columns
        )
        tables.append(TableLayout(table.name, table.selector or "MSH", paths))
    referenced = {"MSH"} | {t.selector for t in tables}
    referenced |= {path.segment for t in tables for _, path in t.paths}
    return Layout(tuple(tables), frozenset(referenced))


def _field_path(feed: Feed, table: str, column: str, source: str) -> FieldPath:
    match = _PATH.match(source)
    if not match:
        raise ColumnSourceError(
            f"feed {feed.name} table {table} column {column}: source {source!r} is not an HL7 "
            "field path like PID-3.1 (segment-field.component.subcomponent)"
        )
    segment, field, component, subcomponent = match.groups()
    return FieldPath(segment, int(field), int(component or 1), int(subcomponent or 1))


def parse(layout: Layout, *, member: str, text: str) -> ParsedFile:
    """Records of every table from one HL7 file; a message without a valid MSH is one
    `malformed` bad record of the first table."""
    parsed = ParsedFile()
    rows = {t.name: {name: [] for name, _ in t.paths} for t in layout.tables}
    unknown: dict[str, list[Unknown | None]] = {t.name: [] for t in layout.tables}
    first = layout.tables[0].name
    for number, segments in enumerate(_messages(text), start=1):
        encoding = read_encoding(segments[0])
        if encoding is None:
            raw = to_json("\r".join(segments))
            error = f"message {number}: no valid MSH header"
            parsed.add_bad(first, BadRecord(member, "malformed", error, raw))
            continue
        found, extra = _split(layout, segments, encoding)
        for table in layout.tables:
            for occurrence in found.get(table.selector, ()):
                for name, path in table.paths:
                    value = _value(found, occurrence, table.selector, path, encoding)
                    rows[table.name][name].append(value)
                unknown[table.name].append(extra)
    for table in layout.tables:
        parsed.tables[table.name] = RawTable(
            columns=dict(rows[table.name]), unknown=unknown[table.name]
        )
    return parsed


def _messages(text: str) -> Iterator[list[str]]:
    """Segments grouped into messages; segments before the first MSH form one group too."""
    current: list[str] = []
    for line in text.replace("\r\n", "\r").replace("\n", "\r").split("\r"):
        segment = line.strip(_FRAMING)
        if not segment.strip() or segment[:3] in _ENVELOPE:
            continue
        if segment.startswith("MSH") and current:
            yield current
            current = []
        current.append(segment)
    if current:
        yield current


def _split(
    layout: Layout, segments: list[str], encoding: Encoding
) -> tuple[Segments, Unknown | None]:
    """Referenced segments split into fields, and the unreferenced ones verbatim by id."""
    found: Segments = {}
    extra: dict[str, list[str]] = {}
    for segment in segments:
        fields = segment.split(encoding.field)
        if fields[0] in layout.referenced:
            found.setdefault(fields[0], []).append(fields)
        else:
            extra.setdefault(fields[0], []).append(segment)
    return found, (dict(extra) or None)


def _value(
    found: Segments, occurrence: list[str], selector: str, path: FieldPath, encoding: Encoding
) -> str | None:
    """The unescaped value at `path`: "" for an empty field, None when its segment is absent."""
    if path.segment == selector:
        fields = occurrence
    elif path.segment in found:
        fields = found[path.segment][0]
    else:
        return None
    return field_value(fields, path.field, path.component, path.subcomponent, encoding)
