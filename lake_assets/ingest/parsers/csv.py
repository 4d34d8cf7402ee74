"""CSV data files (RFC 4180): pyarrow's reader with every column read as a string.

Type inference is never used: it turns ZIP code 01234 into the integer 1234. Conforming to the
declared types happens later, column by column.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv

from lake_assets.catalog.models import Feed
from lake_assets.ingest.records import BadRecord, ParsedFile, RawTable, Unknown, to_json

_MIN_BLOCK = 1 << 20
_NOT_CSV = "the file cannot be split into fields"
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n|$)")


def parse(feed: Feed, *, member: str, text: str) -> ParsedFile:
    """Records of every table of `feed` from one CSV file; rows with a wrong field count are
    `malformed` bad records of the feed's first table."""
    return parse_text_table(feed, member=member, text=text, quote=feed.format.quote)


def parse_text_table(feed: Feed, *, member: str, text: str, quote: str | None) -> ParsedFile:
    """Records of a delimited text file; `quote` is the quote character, or None for none.

    Fields map to columns by header name (stripped of surrounding blanks), or by position in the
    first table's column order when the format has no header. Header fields no table declares
    are the records' unknown fields. A file pyarrow cannot split is one `malformed` record.
    """
    parsed = ParsedFile()
    first = feed.tables[0].name
    delimiter = feed.format.delimiter or ","
    bad: list[BadRecord] = []
    try:
        header = _header(feed, text, delimiter=delimiter, quote=quote)
        if not header:
            return parsed
        body = _read(
            text,
            header,
            skip_header=feed.format.header,
            quote=quote,
            bad=bad,
            member=member,
            delimiter=delimiter,
        )
    except (csv.Error, pa.ArrowInvalid):
        parsed.add_bad(first, BadRecord(member, "malformed", _NOT_CSV, to_json(text)))
        return parsed
    for record in bad:
        parsed.add_bad(first, record)
    _map_columns(feed, header, body, parsed)
    return parsed


def _map_columns(feed: Feed, header: list[str], body: pa.Table, parsed: ParsedFile) -> None:
    """Each table's declared columns from the file's fields; the rest are unknown fields."""
    positions = _positions(header)
    claimed: set[int] = set()
    for table in feed.tables:
        columns: dict[str, pa.Array] = {}
        for column in table.columns:
            position = positions.get(column.source_or_name)
            if position is None:
                columns[column.name] = pa.nulls(body.num_rows, pa.string())
            else:
                columns[column.name] = body.column(position).combine_chunks()
                claimed.add(position)
        parsed.tables[table.name] = RawTable(columns=columns, unknown=[])
    unknown = _unknown(body, header, claimed)
    for raw in parsed.tables.values():
        raw.unknown = unknown


def _header(feed: Feed, text: str, *, delimiter: str, quote: str | None) -> list[str]:
    if not feed.format.header:
        return [column.source_or_name for column in feed.tables[0].columns] if text else []
    options = (
        {"quotechar": quote, "quoting": csv.QUOTE_MINIMAL} if quote else {"quoting": csv.QUOTE_NONE}
    )
    reader = csv.reader(_lines(text), delimiter=delimiter, **options)  # type: ignore[arg-type]
    return [name.strip() for name in next(reader, [])]


def _lines(text: str) -> Iterator[str]:
    """Lines of `text` (ending in \\r\\n, \\n or \\r) one at a time, without copying the file."""
    for match in _LINE.finditer(text):
        if match.group():
            yield match.group()


def _read(
    text: str,
    header: list[str],
    *,
    skip_header: bool,
    delimiter: str,
    quote: str | None,
    bad: list[BadRecord],
    member: str,
) -> pa.Table:
    expected = len(header)

    def invalid(row: pacsv.InvalidRow) -> str:
        error = f"record {row.number}: {row.actual_columns} fields, expected {expected}"
        bad.append(BadRecord(member, "malformed", error, to_json(row.text)))
        return "skip"

    data = text.encode("utf-8")
    names = [f"f{index}" for index in range(expected)]
    return pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(
            column_names=names,
            skip_rows=1 if skip_header else 0,
            use_threads=False,
            block_size=max(_MIN_BLOCK, len(data) + 1),
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter,
            quote_char=quote or False,
            newlines_in_values=bool(quote),
            invalid_row_handler=invalid,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _positions(header: list[str]) -> dict[str, int]:
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        positions.setdefault(name, index)
    return positions


def _unknown(body: pa.Table, header: list[str], claimed: set[int]) -> list[Unknown | None]:
    extra = [index for index in range(len(header)) if index not in claimed]
    if not extra:
        return [None] * body.num_rows
    first = _positions(header)
    keys = [
        header[index] if first[header[index]] == index else f"{header[index]}#{index + 1}"
        for index in extra
    ]
    values = [body.column(index).to_pylist() for index in extra]
    return [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]
