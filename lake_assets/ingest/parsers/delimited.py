"""Delimited TXT data files: a header row and fields split on `format.delimiter`, no quoting."""

from __future__ import annotations

from lake_assets.catalog.models import Feed
from lake_assets.ingest.parsers.csv import parse_text_table
from lake_assets.ingest.records import ParsedFile


def parse(feed: Feed, *, member: str, text: str) -> ParsedFile:
    """Records of every table of `feed` from one delimited file; a quote character is data.

    Rows with a wrong field count are `malformed` bad records of the feed's first table.
    """
    return parse_text_table(feed, member=member, text=text, quote=None)
