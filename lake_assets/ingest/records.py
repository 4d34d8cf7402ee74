"""Raw records as parsers hand them over: string values per declared column, plus bad records.

A raw value of None means the field is absent from the record (a missing header, element or
segment); an empty string means it is present and empty. Conforming turns both into nulls but
reports them differently for non-nullable columns (`missing_column` versus `bad_value`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pyarrow as pa

Unknown = dict[str, object]
"""Undeclared fields of one record: field name -> raw string, or a list of them when repeated."""


RawColumn = pa.Array | list[str | None]
"""Raw values of one column: an Arrow string array, or a Python list (XML and HL7 build lists,
which are turned into Arrow once per archive rather than once per file)."""


@dataclass
class RawTable:
    """Raw records of one table, column by column."""

    columns: dict[str, RawColumn]
    unknown: list[Unknown | None]
    members: RawColumn | None = None
    """The member each record came from, when the records span several data files."""

    @property
    def num_rows(self) -> int:
        """How many records."""
        return len(self.unknown)

    def column(self, name: str) -> pa.Array:
        """Column `name` as an Arrow string array."""
        return as_array([self.columns[name]])

    @classmethod
    def concat(cls, chunks: list[RawTable], names: list[str]) -> RawTable:
        """One RawTable of every chunk's records, with columns `names` as Arrow arrays."""
        columns: dict[str, RawColumn] = {
            name: as_array([chunk.columns[name] for chunk in chunks]) for name in names
        }
        unknown = [fields for chunk in chunks for fields in chunk.unknown]
        return cls(columns=columns, unknown=unknown)


def as_array(chunks: list[RawColumn]) -> pa.Array:
    """The chunks as one Arrow string array; consecutive lists become one array at once."""
    arrays: list[pa.Array] = []
    pending: list[str | None] = []
    for chunk in chunks:
        if isinstance(chunk, list):
            pending.extend(chunk)
            continue
        if pending:
            arrays.append(pa.array(pending, pa.string()))
            pending = []
        arrays.append(chunk)
    if pending or not arrays:
        arrays.append(pa.array(pending, pa.string()))
    return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)


@dataclass(frozen=True)
class BadRecord:
    """A record that cannot load: why (a reason code), which field, and the raw record as JSON."""

    member: str
    reason: str
    error: str
    raw: str


@dataclass
class ParsedFile:
    """What a parser read from one data file: raw tables by table name, and bad records."""

    tables: dict[str, RawTable] = field(default_factory=dict)
    bad: dict[str, list[BadRecord]] = field(default_factory=dict)

    def add_bad(self, table: str, record: BadRecord) -> None:
        """Count `record` as a bad row of `table`."""
        self.bad.setdefault(table, []).append(record)


def to_json(value: object) -> str:
    """Compact JSON that keeps non-ASCII characters as they are."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


BAD_SCHEMA = pa.schema(
    [
        pa.field("_source_member", pa.string()),
        pa.field("_reason", pa.string()),
        pa.field("_error", pa.string()),
        pa.field("_raw", pa.string()),
    ]
)


def bad_table(records: list[BadRecord]) -> pa.Table:
    """Bad records as an Arrow table of BAD_SCHEMA."""
    return pa.table(
        [
            pa.array([r.member for r in records], pa.string()),
            pa.array([r.reason for r in records], pa.string()),
            pa.array([r.error for r in records], pa.string()),
            pa.array([r.raw for r in records], pa.string()),
        ],
        schema=BAD_SCHEMA,
    )
