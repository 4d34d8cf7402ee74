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


@dataclass
class RawTable:
    """Raw records of one table from one data file, column by column."""

    columns: dict[str, pa.Array]
    unknown: list[Unknown | None]

    @property
    def num_rows(self) -> int:
        """How many records."""
        return len(self.unknown)

    @classmethod
    def from_rows(
        cls, rows: dict[str, list[str | None]], unknown: list[Unknown | None]
    ) -> RawTable:
        """A RawTable from Python lists of raw values, one list per declared column."""
        columns = {name: pa.array(values, pa.string()) for name, values in rows.items()}
        return cls(columns=columns, unknown=unknown)


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
