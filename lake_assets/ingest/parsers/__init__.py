"""One parser per data-file format, each driven by the feed's column metadata.

A parser turns the decoded text of one data file into raw string records per table, plus bad
records (`malformed`) with their reason. Types are conformed later, in `ingest.conform`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from lake_assets.catalog.models import Feed
from lake_assets.ingest.parsers import csv, delimited, hl7, xml
from lake_assets.ingest.records import ParsedFile

Parser = Callable[..., ParsedFile]
"""Called as `parser(member=name, text=decoded_text)`."""


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
