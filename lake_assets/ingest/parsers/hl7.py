"""HL7 v2 data files: messages split on MSH, fields picked by paths like `PID-3.1`.

Only referenced segments are read, with the separators each message declares in MSH-1/MSH-2;
the usual separators take a columnar path (see `parse_files`). python-hl7 built a full tree of
every field (about 450 µs a message here, against 25 µs) and its unescape logs field values on
bad escape sequences, which would put PHI in logs; it remains the reference the tests compare
against. Segments no column references (Z-segments, OBX, AL1...) are a record's unknown fields,
kept verbatim as `{"ZPV": ["ZPV|..."]}`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake_assets.catalog.models import Feed
from lake_assets.catalog.table_rules import HL7_PATH
from lake_assets.errors import ColumnSourceError
from lake_assets.ingest.parsers.hl7_text import (
    HL7_NULL,
    Encoding,
    field_value,
    read_encoding,
    unescape,
)
from lake_assets.ingest.records import (
    BadRecord,
    ParsedFile,
    RawTable,
    Unknown,
    as_array,
    to_json,
)

_ENVELOPE = frozenset({"FHS", "FTS", "BHS", "BTS"})
_FRAMING = "\x0b\x1c"

Segments = dict[str, list[str]]
"""Referenced segments of one message by id, in order."""
Fields = dict[str, list[list[str]]]
"""The same segments, each split into its fields."""

STANDARD = Encoding(field="|", component="^", repetition="~", escape="\\", subcomponent="&")
_STANDARD_HEADER = "MSH|^~\\&|"


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
    paths: tuple[tuple[str, tuple[FieldPath, ...]], ...]
    """Each column's paths, in order of preference: the first non-empty value wins."""
    segments: tuple[str, ...]
    """The segments the columns read, selector first."""


@dataclass(frozen=True)
class Layout:
    """A feed's tables and the segments its columns reference."""

    tables: tuple[TableLayout, ...]
    referenced: frozenset[str]


def build_layout(feed: Feed) -> Layout:
    """The HL7 layout of `feed`; raises ColumnSourceError for a source that is not a field path.

    A path without a component means component 1 (python-hl7's rule); only the first
    repetition of a field is addressable. A column may list several paths, for feeds that put
    the same data in different fields: the first non-empty one wins.
    """
    tables = []
    for table in feed.tables:
        paths = tuple(
            (column.name, tuple(_field_path(feed, table.name, column.name, source)
                                for source in column.sources))
            for column in table.columns
        )
        selector = table.selector or "MSH"
        read = [path.segment for _, column in paths for path in column]
        segments = tuple(dict.fromkeys([selector, *read]))
        tables.append(TableLayout(table.name, selector, paths, segments))
    referenced = {"MSH"} | {t.selector for t in tables}
    referenced |= {path.segment for t in tables for _, column in t.paths for path in column}
    return Layout(tuple(tables), frozenset(referenced))


def _field_path(feed: Feed, table: str, column: str, source: str) -> FieldPath:
    match = HL7_PATH.match(source)
    if not match:
        raise ColumnSourceError(
            f"feed {feed.name} table {table} column {column}: source {source!r} is not an HL7 "
            "field path like PID-3.1 (segment-field.component.subcomponent)"
        )
    segment, field, component, subcomponent = match.groups()
    return FieldPath(segment, int(field), int(component or 1), int(subcomponent or 1))


def parse(layout: Layout, *, member: str, text: str) -> ParsedFile:
    """Records of every table from one HL7 file; see `parse_files`."""
    return parse_files(layout, [(member, text)])


def parse_files(layout: Layout, files: Iterable[tuple[str, str]]) -> ParsedFile:
    """Records of every table from many HL7 files (member name, text), e.g. those of
    the archives a task reads together.

    A message without a valid MSH is one `malformed` bad record of the first table. Each
    RawTable names the member of every record.

    Files whose messages all declare the usual separators (`|^~\\&`) are read column by
    column (`_Columnar`): Arrow splits, groups and cuts the segments of all of them at once.
    Picking fields message by message in Python cost 70% of reading an ADT archive. Any other
    file is read message by message with the separators each message declares.
    """
    columnar = _Columnar()
    for member, text in files:
        columnar.add(member, text)
    parsed = ParsedFile()
    tables = columnar.tables(layout)
    other = {t.name: _Values.empty(t) for t in layout.tables}
    for member, text in columnar.other_files():
        _parse_messages(layout, member, text, parsed, other)
    for table in layout.tables:
        parsed.tables[table.name] = other[table.name].after(tables[table.name], table)
    return parsed


class _Columnar:
    """Every segment of many files, split and grouped into messages with Arrow."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.texts: list[str] = []
        self.lines: list[str] = []
        self.file_of: list[int] = []
        self.other: np.ndarray = np.zeros(0, dtype=bool)

    def add(self, member: str, text: str) -> None:
        lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
        self.file_of += [len(self.names)] * len(lines)
        self.lines += lines
        self.names.append(member)
        self.texts.append(text)

    def other_files(self) -> Iterator[tuple[str, str]]:
        """Files the columnar path left out: another separator, or a message without MSH."""
        for index in np.flatnonzero(self.other):
            yield self.names[index], self.texts[index]

    def tables(self, layout: Layout) -> dict[str, RawTable]:
        """Each table's records from the files whose messages all use the usual separators."""
        segments, files = self._segments()
        is_msh = _flags(pc.starts_with(segments, "MSH"))
        usual = _flags(pc.starts_with(segments, _STANDARD_HEADER))
        self.other = np.zeros(len(self.names), dtype=bool)
        self.other[files[is_msh & ~usual]] = True
        starts = np.flatnonzero(np.diff(files, prepend=-1) != 0)
        self.other[files[starts[~is_msh[starts]]]] = True
        keep = ~self.other[files]
        segments, files, is_msh = segments.filter(pa.array(keep)), files[keep], is_msh[keep]
        message = np.cumsum(is_msh) - 1  # every kept file starts with MSH
        ids = pc.dictionary_encode(
            pc.list_element(pc.split_pattern(segments, "|", max_splits=1), 0))
        codes = ids.indices.to_numpy(zero_copy_only=False)
        dictionary: list[str] = ids.dictionary.to_pylist()
        unknown = _unknown(layout, segments, message, codes, dictionary)
        members = pa.array(self.names, pa.string())

        def where(name: str) -> np.ndarray:
            found = dictionary.index(name) if name in dictionary else -1
            return np.flatnonzero(codes == found)

        tables = {}
        for table in layout.tables:
            rows = where(table.selector)
            read = {table.selector: segments.take(pa.array(rows, pa.int64()))}
            for name in table.segments[1:]:
                read[name] = segments.take(_first_in_message(where(name), message, rows))
            columns = {name: _first_filled(read, paths) for name, paths in table.paths}
            tables[table.name] = RawTable(
                columns=columns,
                unknown=[unknown.get(m) for m in message[rows]] if unknown else [None] * len(rows),
                members=members.take(pa.array(files[rows], pa.int64())),
            )
        return tables

    def _segments(self) -> tuple[pa.Array, np.ndarray]:
        """The non-blank segments without framing characters or batch/file envelopes, and the
        file of each."""
        lines = pc.utf8_trim(pa.array(self.lines, pa.string()), _FRAMING)
        blank = pc.equal(pc.utf8_trim_whitespace(lines), "")
        envelope = pc.is_in(pc.utf8_slice_codeunits(lines, 0, 3), pa.array(sorted(_ENVELOPE)))
        keep = _flags(pc.invert(pc.or_(blank, envelope)))
        return lines.filter(pa.array(keep)), np.asarray(self.file_of, dtype=np.int64)[keep]


def _flags(mask: pa.Array) -> np.ndarray:
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def _first_in_message(positions: np.ndarray, message: np.ndarray, rows: np.ndarray) -> pa.Array:
    """For each row, the position of the first of `positions` in the row's message; null
    when its message has none."""
    first = np.full(int(message[-1]) + 1 if len(message) else 0, -1, dtype=np.int64)
    groups, index = np.unique(message[positions], return_index=True)
    first[groups] = positions[index]
    taken = first[message[rows]]
    return pa.array(taken, pa.int64(), mask=taken < 0)


def _unknown(layout: Layout, segments: pa.Array, message: np.ndarray, codes: np.ndarray,
             dictionary: list[str]) -> dict[int, Unknown]:
    """Segments no column reads, verbatim by id, for each message that has any."""
    known = [code for code, name in enumerate(dictionary) if name in layout.referenced]
    extra = np.flatnonzero(~np.isin(codes, known))
    found: dict[int, dict[str, list[str]]] = {}
    for position, text in zip(extra, segments.take(pa.array(extra, pa.int64())).to_pylist(),
                              strict=True):
        by_id = found.setdefault(int(message[position]), {})
        by_id.setdefault(dictionary[codes[position]], []).append(text)
    return found  # type: ignore[return-value]


@dataclass
class _Values:
    """One table's records read message by message: the values of each column."""

    values: dict[str, list[str | None]]
    members: list[str]
    unknown: list[Unknown | None]

    @classmethod
    def empty(cls, table: TableLayout) -> _Values:
        return cls({name: [] for name, _ in table.paths}, [], [])

    def add(self, table: TableLayout, found: Segments, encoding: Encoding, member: str,
            extra: Unknown | None) -> None:
        """One record per selector occurrence, its values picked field by field."""
        split = {key: [s.split(encoding.field) for s in value] for key, value in found.items()}
        for occurrence in split.get(table.selector, ()):
            for name, paths in table.paths:
                self.values[name].append(_first_value(split, occurrence, table.selector, paths,
                                                      encoding))
            self.members.append(member)
            self.unknown.append(extra)

    def after(self, columnar: RawTable, table: TableLayout) -> RawTable:
        """`columnar`'s records followed by these."""
        if not self.members:
            return columnar
        columns = {name: pa.concat_arrays([as_array([columnar.columns[name]]),
                                           pa.array(self.values[name], pa.string())])
                   for name, _ in table.paths}
        members = as_array([columnar.members or [], self.members])
        return RawTable(columns=columns, unknown=columnar.unknown + self.unknown,
                        members=members)


def _parse_messages(layout: Layout, member: str, text: str, parsed: ParsedFile,
                    tables: dict[str, _Values]) -> None:
    """Read one file message by message, with the separators each message declares."""
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
            tables[table.name].add(table, found, encoding, member, extra)


def _cut(segments: pa.Array, path: FieldPath) -> pa.Array:
    """The value at `path` of each segment (standard separators), as `field_value` gives it;
    null where the segment is absent."""
    if path.segment == "MSH" and path.field == 1:
        return pc.if_else(segments.is_valid(), STANDARD.field, pa.scalar(None, pa.string()))
    found = pc.struct_field(pc.extract_regex(segments, _pattern(path)), [0])
    values = pc.if_else(segments.is_valid(), pc.coalesce(found, ""), found)
    if path.segment == "MSH" and path.field == 2:
        return values  # the encoding characters, as sent
    values = pc.if_else(pc.equal(values, HL7_NULL), "", values)
    escaped = np.flatnonzero(
        pc.fill_null(pc.match_substring(values, STANDARD.escape), False).to_numpy(
            zero_copy_only=False))
    if not len(escaped):
        return values
    decoded = values.to_pylist()
    for index in escaped:
        decoded[index] = unescape(decoded[index], STANDARD)
    return pa.array(decoded, pa.string())


@cache
def _pattern(path: FieldPath) -> str:
    """An RE2 pattern whose group `v` is the value at `path` (standard separators): skip to
    the field, keep its first repetition, then skip to the component and subcomponent."""
    index = path.field - 1 if path.segment == "MSH" else path.field  # MSH-1 is the separator
    if index == 1 and path.segment == "MSH":
        return r"^[^|]*\|(?P<v>[^|]*)"
    return (
        rf"^[^|]*(?:\|[^|]*){{{index - 1}}}\|"
        rf"(?:[^|~^]*\^){{{path.component - 1}}}"
        rf"(?:[^|~^&]*&){{{path.subcomponent - 1}}}"
        r"(?P<v>[^|~^&]*)"
    )


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
    """Referenced segments by id, and the unreferenced ones verbatim by id."""
    found: Segments = {}
    extra: dict[str, list[str]] = {}
    for segment in segments:
        name = segment.partition(encoding.field)[0]
        if name in layout.referenced:
            found.setdefault(name, []).append(segment)
        else:
            extra.setdefault(name, []).append(segment)
    return found, (dict(extra) or None)


def _first_value(found: Fields, occurrence: list[str], selector: str,
                 paths: tuple[FieldPath, ...], encoding: Encoding) -> str | None:
    """The first non-empty value of `paths`; else "" when one of them is present, else None."""
    first = None
    for path in paths:
        value = _value(found, occurrence, selector, path, encoding)
        if value:
            return value
        first = value if first is None else first
    return first


def _first_filled(read: dict[str, pa.Array], paths: tuple[FieldPath, ...]) -> pa.Array:
    """Row by row, the value of the first path that is non-empty; else "" when one is present,
    else null. A later path is cut only when an earlier one left a row empty."""
    result = _cut(read[paths[0].segment], paths[0])
    for path in paths[1:]:
        empty = pc.fill_null(pc.equal(result, ""), True)
        if not pc.any(empty).as_py():
            break
        other = _cut(read[path.segment], path)
        better = pc.and_(empty, pc.fill_null(pc.not_equal(other, ""), False))
        result = pc.if_else(better, other, pc.coalesce(result, other))
    return result


def _value(
    found: Fields, occurrence: list[str], selector: str, path: FieldPath, encoding: Encoding
) -> str | None:
    """The unescaped value at `path`: "" for an empty field, None when its segment is absent."""
    if path.segment == selector:
        fields = occurrence
    elif path.segment in found:
        fields = found[path.segment][0]
    else:
        return None
    return field_value(fields, path.field, path.component, path.subcomponent, encoding)
