"""Independent readers for simulator tests: open archives with libarchive or gzip, parse data
files with the csv module, plain string splitting (HL7) and lxml, and judge each record by the
landing contract. They share no code with the simulator or the ingest core.
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import io
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import libarchive
from lxml import etree

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.models import Column, Feed
from lake_assets.simulate import (
    SimulationOptions,
    SimulationSummary,
    TruthRecord,
    read_truth,
    simulate,
)
from lake_assets.storage.secrets import get_secret

FORMATS = {"date": "%Y-%m-%d", "timestamp": "%Y-%m-%dT%H:%M:%S"}
HL7_TS = re.compile(r"(\d{4})(\d\d)?(\d\d)?(\d\d)?(\d\d)?(\d\d)?(?:\.\d{1,4})?(?:[+-]\d{4})?")
BOOLEANS = {"true", "false", "1", "0", "y", "n"}
Counts = tuple[Counter[str], Counter[str]]


def password(feed: Feed) -> str | None:
    """The feed's zip password from the secrets, or None."""
    secret = feed.archive.password_secret
    return get_secret(secret) if secret else None


def members(feed: Feed, data: bytes, *, secret: str | None = None) -> list[tuple[str, bytes]]:
    """Data members of an archive (zip via libarchive, gzip, or the bare file)."""
    kind = feed.archive.kind
    if kind == "gzip":
        return [("data", gzip.decompress(data))]
    if kind == "none":
        return [("data", data)]
    found = []
    with libarchive.memory_reader(data, passphrase=secret or password(feed)) as archive:
        for entry in archive:
            payload = b"".join(entry.get_blocks())
            if fnmatch.fnmatchcase(entry.pathname, feed.format.member_pattern):
                found.append((entry.pathname, payload))
    return found


def expected_rows(feed: Feed, files: list[tuple[str, bytes]]) -> Counts:
    """(good, bad) rows per table, read independently from decoded data files."""
    good: Counter[str] = Counter()
    bad: Counter[str] = Counter()
    reader = {"csv": _csv, "delimited": _csv, "hl7v2": _hl7, "xml": _xml}[feed.format.kind]
    for _, data in files:
        reader(feed, data.decode(feed.encoding), good, bad)
    return good, bad


def read_landed(root: Path, feed: Feed, record: TruthRecord) -> Counts:
    """(good, bad) rows per table of a landed archive."""
    return expected_rows(feed, members(feed, (root / record.archive).read_bytes()))


def judge(column: Column, value: str | None) -> str | None:
    """The contract's verdict on one value: None when fine, else the row reason."""
    if value is None:
        return None if column.nullable else "missing_column"
    if value == "":
        return None if column.nullable else "bad_value"
    try:
        if column.type in ("integer", "long"):
            int(value)
        elif column.type == "double":
            float(value)
        elif column.type == "boolean" and value.lower() not in BOOLEANS:
            return "bad_value"
        elif column.type in FORMATS and column.format == "hl7":
            _hl7_time(value)
        elif column.type in FORMATS:
            datetime.strptime(value, column.format or FORMATS[column.type])
    except ValueError:
        return "bad_value"
    return None


def _hl7_time(value: str) -> datetime:
    match = HL7_TS.fullmatch(value)
    if match is None:
        raise ValueError(value)
    year, *rest = (int(g) if g else None for g in match.groups())
    month, day, hour, minute, second = (v if v is not None else d
                                        for v, d in zip(rest, (1, 1, 0, 0, 0), strict=True))
    return datetime(year, month, day, hour, minute, second)  # type: ignore[arg-type]


def _count(feed: Feed, table: str, values: dict[str, str | None], good: Counter, bad: Counter):
    columns = feed.table(table).columns  # type: ignore[union-attr]
    verdicts = [judge(c, values.get(c.name)) for c in columns]
    if any(verdicts):
        bad[table] += 1
    else:
        good[table] += 1


def _csv(feed: Feed, text: str, good: Counter, bad: Counter) -> None:
    delimiter = feed.format.delimiter or ","
    quoting = {"quoting": csv.QUOTE_NONE} if feed.format.kind == "delimited" else {}
    rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter, **quoting) if row]
    header, body = rows[0], rows[1:]
    for row in body:
        if len(row) != len(header):
            bad[feed.tables[0].name] += 1
            continue
        fields = dict(zip(header, row, strict=True))
        for table in feed.tables:
            values = {c.name: fields.get(c.source_or_name) for c in table.columns}
            _count(feed, table.name, values, good, bad)


def _hl7(feed: Feed, text: str, good: Counter, bad: Counter) -> None:
    for message in filter(None, text.split("\r\n")):
        segments = message.split("\r")
        if not segments[0].startswith("MSH|"):
            bad[feed.tables[0].name] += 1
            continue
        for table in feed.tables:
            for occurrence in [s for s in segments if s.startswith(f"{table.selector}|")]:
                values = {c.name: _first(segments, occurrence, c.sources) for c in table.columns}
                _count(feed, table.name, values, good, bad)


def _first(segments: list[str], occurrence: str, sources: tuple[str, ...]) -> str | None:
    found = [_hl7_value(segments, occurrence, source) for source in sources]
    return next((v for v in found if v), next((v for v in found if v is not None), None))


def _hl7_value(segments: list[str], occurrence: str, source: str) -> str | None:
    name, _, path = source.partition("-")
    field_no, _, component = path.partition(".")
    segment = occurrence if occurrence.startswith(f"{name}|") else None
    segment = segment or next((s for s in segments if s.startswith(f"{name}|")), None)
    if segment is None:
        return None
    fields = segment.split("|")
    index = int(field_no) - (1 if name == "MSH" else 0)
    if index >= len(fields):
        return ""
    parts = fields[index].split("^")
    position = int(component or 1) - 1
    return parts[position] if position < len(parts) else ""


def _xml(feed: Feed, text: str, good: Counter, bad: Counter) -> None:
    try:
        root = etree.fromstring(text.encode("utf-8"))
    except etree.XMLSyntaxError:
        bad[feed.tables[0].name] += 1
        return
    tree = root.getroottree()
    for table in feed.tables:
        for record in tree.xpath(table.selector):
            values = {}
            for column in table.columns:
                found = record.xpath(column.source_or_name)
                values[column.name] = (found[0].text or "") if found else None
            _count(feed, table.name, values, good, bad)


def run_simulation(
    root: Path, catalog: Catalog, **changes: object
) -> tuple[SimulationOptions, SimulationSummary, list[TruthRecord]]:
    """A small, seeded run into `root/landing` with truth at `root/truth.jsonl`."""
    settings: dict[str, object] = {
        "out": str(root / "landing"),
        "truth": str(root / "truth.jsonl"),
        "facilities": 4,
        "hours": 1.0,
        "rate": 60,
        "faults": 0.0,
        "seed": 11,
        "size_scale": 0.03,
        "start": datetime(2025, 3, 1, 6, tzinfo=UTC),
    }
    options = SimulationOptions(**{**settings, **changes})  # type: ignore[arg-type]
    summary = simulate(catalog, options)
    return options, summary, read_truth(options.truth)
