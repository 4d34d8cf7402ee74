"""Read one landed archive into typed good rows and bad rows per table: the ingest core.

Pure and picklable-friendly: bytes in, Arrow tables out, no Spark or Dagster. The caller adds
the lineage columns (`ingest.schema.LINEAGE`) and writes bronze and quarantine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

from lake_assets.catalog.models import Feed, Table
from lake_assets.errors import ArchiveRejected
from lake_assets.ingest.archives import Member, iter_members
from lake_assets.ingest.conform import conform
from lake_assets.ingest.parsers import build_files_parser
from lake_assets.ingest.records import (
    BadRecord,
    ParsedFile,
    RawColumn,
    RawTable,
    as_array,
    bad_table,
)
from lake_assets.ingest.schema import record_schema

Status = Literal["loaded", "quarantined"]


@dataclass(frozen=True)
class TableRows:
    """One table's rows from an archive: `good` (record_schema) and `bad` (quarantine columns)."""

    good: pa.Table
    bad: pa.Table


@dataclass(frozen=True)
class ArchiveResult:
    """The outcome for one archive; a quarantined archive has empty tables and a reason code."""

    status: Status
    reason: str | None
    message: str | None
    members: int
    uncompressed_bytes: int
    tables: dict[str, TableRows]

    @property
    def good_rows(self) -> int:
        """Good rows over every table."""
        return sum(rows.good.num_rows for rows in self.tables.values())

    @property
    def bad_rows(self) -> int:
        """Bad rows over every table."""
        return sum(rows.bad.num_rows for rows in self.tables.values())


@dataclass
class _Gathered:
    """Raw records of one table across the data files of an archive."""

    chunks: list[RawTable] = field(default_factory=list)
    members: list[RawColumn] = field(default_factory=list)
    bad: list[BadRecord] = field(default_factory=list)

    def combined(self, table: Table) -> tuple[RawTable, pa.Array]:
        """Every file's records as one RawTable, and the member name of each record."""
        raw = RawTable.concat(self.chunks, [column.name for column in table.columns])
        return raw, as_array(self.members)


def read_archive(feed: Feed, *, data: bytes, path: str, password: str | None) -> ArchiveResult:
    """Every table's good and bad rows from one archive of `feed`.

    A damaged, empty, oversized, undecodable or wrongly-keyed archive is returned quarantined
    with its reason code (docs/landing-contract.md) and no rows. Raises ColumnSourceError when
    the feed's metadata does not fit its format; any other exception is a bug and propagates.
    """
    parse = build_files_parser(feed)
    gathered = {table.name: _Gathered() for table in feed.tables}
    files = _Files(feed, data=data, path=path, password=password)
    try:
        for parsed in parse(files):
            _gather(parsed, gathered)
    except ArchiveRejected as exc:
        return quarantined(feed, reason=exc.reason, message=str(exc))
    tables = {}
    for table in feed.tables:
        found = gathered[table.name]
        raw, names = found.combined(table)
        good, bad = conform(table, raw, members=names)
        tables[table.name] = TableRows(good, bad_table(found.bad + bad))
    return ArchiveResult("loaded", None, None, files.count, files.size, tables)


def quarantined(feed: Feed, *, reason: str, message: str) -> ArchiveResult:
    """A quarantined result for `feed`: the reason, and empty tables with the right schemas."""
    tables = {
        table.name: TableRows(record_schema(table).empty_table(), bad_table([]))
        for table in feed.tables
    }
    return ArchiveResult("quarantined", reason, message, 0, 0, tables)


class _Files:
    """The archive's data files as (member name, decoded text), counted as they are read."""

    def __init__(self, feed: Feed, *, data: bytes, path: str, password: str | None) -> None:
        self.feed, self.data, self.path, self.password = feed, data, path, password
        self.count = self.size = 0

    def __iter__(self) -> Iterator[tuple[str, str]]:
        members = iter_members(self.feed, data=self.data, path=self.path, password=self.password)
        for member in members:
            self.count += 1
            self.size += len(member.data)
            yield member.name, _decode(self.feed, member, index=self.count, path=self.path)


def _decode(feed: Feed, member: Member, *, index: int, path: str) -> str:
    """The member's text in the feed's encoding, without a byte-order mark."""
    try:
        text = member.data.decode(feed.encoding)
    except UnicodeDecodeError as exc:
        raise ArchiveRejected(
            "bad_encoding",
            f"member #{index} is not valid {feed.encoding} (at byte {exc.start:,})",
            path=path,
            feed=feed.name,
        ) from exc
    return text[1:] if text.startswith("\ufeff") else text


def _gather(parsed: ParsedFile, gathered: dict[str, _Gathered]) -> None:
    for name, records in parsed.bad.items():
        gathered[name].bad.extend(records)
    for name, raw in parsed.tables.items():
        if raw.num_rows:
            assert raw.members is not None  # files parsers name each record's member
            gathered[name].chunks.append(raw)
            gathered[name].members.append(raw.members)
