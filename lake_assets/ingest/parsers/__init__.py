"""One parser per data-file format, each driven by the feed's column metadata.

A parser turns the decoded text of one data file into raw string records per table, plus bad
records (`malformed`) with their reason. Types are conformed later, in `ingest.conform`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial

from lake_assets.catalog.models import Feed
from lake_assets.ingest.parsers import csv, delimited, hl7, xml
from lake_assets.ingest.records import ParsedFile

Parser = Callable[..., ParsedFile]
"""Called as `parser(member=name, text=decoded_text)`."""

FilesParser = Callable[[Iterable[tuple[str, str]]], Iterator[ParsedFile]]
"""Called with the (member name, decoded text) of every data file of the archives read together;
yields parsed chunks whose RawTables name the member of each record."""


def build_parser(feed: Feed) -> Parser:
    """A parser for `feed`'s format, with its paths compiled once.

    Raises ColumnSourceError when a selector or column source does not fit the format. Build one
    per archive (or per thread): compiled XPaths and lxml parsers are not shared across threads.
    """
    kind = feed.format.kind
    if kind == "csv":
        return partial(csv.parse, feed)
    if kind == "delimited":
        return partial(delimited.parse, feed)
    if kind == "hl7v2":
        return partial(hl7.parse, hl7.build_layout(feed))
    return partial(xml.parse, xml.build_layout(feed))


def build_files_parser(feed: Feed) -> FilesParser:
    """A parser for many data files of `feed` at once (those of a few archives, see
    `read.read_archives`).

    HL7 reads them all in one columnar pass (see `hl7.parse_files`); the other formats read
    one file at a time. Raises ColumnSourceError as `build_parser` does.
    """
    if feed.format.kind == "hl7v2":
        layout = hl7.build_layout(feed)
        return lambda files: iter([hl7.parse_files(layout, files)])
    parser = build_parser(feed)

    def each(files: Iterable[tuple[str, str]]) -> Iterator[ParsedFile]:
        for member, text in files:
            parsed = parser(member=member, text=text)
            for raw in parsed.tables.values():
                raw.members = [member] * raw.num_rows
            yield parsed

    return each
