"""HL7 v2 data files: messages split on MSH, fields picked by paths like `PID-3.1`.

Only the segments some column references are handed to python-hl7; the others (Z-segments,
OBX, AL1...) are a record's unknown fields, kept verbatim as `{"ZPV": ["ZPV|..."]}`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import hl7

from lake_assets.catalog.models import Feed
from lake_assets.errors import ColumnSourceError
from lake_assets.ingest.records import BadRecord, ParsedFile, RawTable, Unknown, to_json

_PATH = re.compile(r"^([A-Z][A-Z0-9]{2})-([1-9]\d*)(?:\.([1-9]\d*))?(?:\.([1-9]\d*))?$")
_ENVELOPE = frozenset({"FHS", "FTS", "BHS", "BTS"})
_FRAMING = "\x0b\x1c"


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

    A path without a component means component 1 (python-hl7's rule); repetitions beyond the
    first are not addressable.
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
        message = _parse_message(layout, segments)
        if message is None:
            error = f"message {number}: no valid MSH header"
            parsed.add_bad(
                first, BadRecord(member, "malformed", error, to_json("\r".join(segments)))
            )
            continue
        found, extra = message
        for table in layout.tables:
            for occurrence in found.get(table.selector, ()):
                for name, path in table.paths:
                    rows[table.name][name].append(_value(found, occurrence, table.selector, path))
                unknown[table.name].append(extra)
    for table in layout.tables:
        parsed.tables[table.name] = RawTable.from_rows(rows[table.name], unknown[table.name])
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


def _parse_message(
    layout: Layout, segments: list[str]
) -> tuple[dict[str, list[hl7.Segment]], Unknown | None] | None:
    """Referenced segments by id, and the unreferenced ones; None for an invalid message."""
    if not _valid_header(segments[0]):
        return None
    separator = segments[0][3]
    wanted: list[str] = []
    extra: dict[str, list[str]] = {}
    for segment in segments:
        segment_id = segment.split(separator, 1)[0]
        if segment_id in layout.referenced:
            wanted.append(segment)
        else:
            extra.setdefault(segment_id, []).append(segment)
    try:
        message = hl7.parse("\r".join(wanted))
    except hl7.ParseException:
        return None
    found: dict[str, list[hl7.Segment]] = {}
    for segment in message:
        found.setdefault(str(segment[0][0]), []).append(segment)
    return found, (dict(extra) or None)


def _valid_header(segment: str) -> bool:
    """MSH, a field separator, then 4 or 5 distinct encoding characters."""
    if len(segment) < 8 or not segment.startswith("MSH"):
        return False
    separator = segment[3]
    if separator.isalnum() or separator.isspace():
        return False
    encoding = segment[4:].split(separator, 1)[0]
    return (
        len(encoding) in (4, 5)
        and len(set(encoding)) == len(encoding)
        and separator not in encoding
        and not any(ch.isalnum() or ch.isspace() for ch in encoding)
    )


def _value(
    found: dict[str, list[hl7.Segment]], occurrence: hl7.Segment, selector: str, path: FieldPath
) -> str | None:
    """The unescaped value at `path`: "" for an empty field, None when its segment is absent."""
    if path.segment == selector:
        segment = occurrence
    elif path.segment in found:
        segment = found[path.segment][0]
    else:
        return None
    try:
        return str(segment.extract_field(1, path.field, 1, path.component, path.subcomponent))
    except IndexError:
        # python-hl7 raises when a component is asked of a field that has none; in HL7 an
        # absent component is an empty value.
        return ""
