"""A batch of archives through Spark: executors fetch, decrypt and parse; nothing collects rows.

`parse_batch` returns one persisted DataFrame of "envelope" rows. Each row is an archive summary,
a good row of one table, or a bad row of one table, in the struct column for its kind, so every
archive is read once while each table is written in its own commit.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime

import fsspec
import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import from_arrow_schema

from lake_assets.catalog.models import Feed
from lake_assets.ingest.read import ArchiveResult, quarantined, read_archive
from lake_assets.ingest.schema import arrow_schema, quarantine_schema

KIND = "_kind"
TABLE = "_table"
ARCHIVE = "archive"
BAD = "bad"
ARRIVAL = "_arrival_date"

ARCHIVE_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("size", pa.int64()),
        ("sha256", pa.string()),
        ("facility", pa.string()),
        ("arrival_date", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("message", pa.string()),
        ("members", pa.int64()),
        ("uncompressed_bytes", pa.int64()),
        ("rows", pa.int64()),
        ("bad_rows", pa.int64()),
        ("rows_by_table", pa.string()),
        ("bad_by_reason", pa.string()),
    ]
)


@dataclass(frozen=True)
class BatchArchive:
    """One archive of the batch: landing-relative path, size and where it came from."""

    path: str
    size: int
    facility: str
    arrival_date: str


@dataclass(frozen=True)
class BatchSpec:
    """Everything executors need to read a batch; pickled into the Spark tasks."""

    feed: Feed
    batch_id: str
    archives: tuple[BatchArchive, ...]
    landing_root: str
    quarantine_root: str
    password: str | None
    ingested_at: datetime


def table_column(table: str) -> str:
    """The envelope's struct column holding good rows of `table`."""
    return f"t__{table}"


def bronze_row_schema(feed: Feed, table: str) -> pa.Schema:
    """Bronze rows as written: `arrow_schema` plus the `_arrival_date` partition column."""
    found = feed.table(table)
    assert found is not None
    return arrow_schema(found).append(pa.field(ARRIVAL, pa.date32()))


def quarantine_row_schema() -> pa.Schema:
    """Quarantined rows as written: `quarantine_schema` plus table and arrival date."""
    return (
        quarantine_schema()
        .append(pa.field("_table", pa.string()))
        .append(pa.field(ARRIVAL, pa.date32()))
    )


def envelope_schema(feed: Feed) -> pa.Schema:
    """Arrow schema of the envelope rows for `feed`."""
    fields = [pa.field(KIND, pa.string()), pa.field(TABLE, pa.string())]
    fields.append(pa.field(ARCHIVE, pa.struct(list(ARCHIVE_SCHEMA))))
    fields.append(pa.field(BAD, pa.struct(list(quarantine_row_schema()))))
    for table in feed.tables:
        struct = pa.struct(list(bronze_row_schema(feed, table.name)))
        fields.append(pa.field(table_column(table.name), struct))
    return pa.schema(fields)


def parse_batch(spark: SparkSession, spec: BatchSpec) -> DataFrame:
    """The batch's envelope DataFrame, persisted so each table's write reuses one parse."""
    slots = max(1, min(len(spec.archives), spark.sparkContext.defaultParallelism * 2))
    # Largest first, dealt round-robin, so no task gets all the big archives.
    ordered = sorted(range(len(spec.archives)), key=lambda i: -spec.archives[i].size)
    rows = [(index, position % slots) for position, index in enumerate(ordered)]
    paths = spark.createDataFrame(rows, "archive int, slot int").repartition(slots, "slot")
    schema = from_arrow_schema(envelope_schema(spec.feed))
    parsed = paths.mapInArrow(_parser(spec), schema)
    return parsed.persist(StorageLevel.MEMORY_AND_DISK)


def _parser(spec: BatchSpec) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    envelope = envelope_schema(spec.feed)

    def parse(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for index in batch.column("archive").to_pylist():
                yield from _archive_rows(spec, spec.archives[index], envelope)

    return parse


def _archive_rows(
    spec: BatchSpec, archive: BatchArchive, envelope: pa.Schema
) -> Iterator[pa.RecordBatch]:
    data = _fetch(spec.landing_root, archive.path)
    if data is None:
        sha256 = ""
        result = quarantined(spec.feed, reason="missing", message="archive vanished before read")
    else:
        sha256 = hashlib.sha256(data).hexdigest()
        result = read_archive(spec.feed, data=data, path=archive.path, password=spec.password)
        if result.status == "quarantined":
            _keep_original(spec, archive, data)
    lineage = _lineage(spec, archive, sha256)
    for name, rows in result.tables.items():
        if rows.good.num_rows:
            yield _wrap(envelope, "good", name, table_column(name), _with(rows.good, lineage))
        if rows.bad.num_rows:
            bad = _with(rows.bad, lineage | {"_table": (pa.string(), name)})
            yield _wrap(envelope, "bad", name, BAD, bad)
    summary = _summary(archive, len(data) if data is not None else 0, sha256, result)
    yield _wrap(envelope, "archive", None, ARCHIVE, summary)


def _fetch(root: str, path: str) -> bytes | None:
    """The archive's bytes, or None when it was removed after the sensor listed it."""
    try:
        with fsspec.open(f"{root}/{path}", "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _keep_original(spec: BatchSpec, archive: BatchArchive, data: bytes) -> None:
    """Keep a quarantined archive's original bytes next to its reason, for replay."""
    target = f"{spec.quarantine_root}/_archives/{spec.feed.name}/{archive.path}"
    fs, path = fsspec.core.url_to_fs(target)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as handle:
        handle.write(data)


def _lineage(spec: BatchSpec, archive: BatchArchive, sha256: str) -> dict[str, tuple]:
    return {
        "_facility_id": (pa.string(), archive.facility),
        "_source_archive": (pa.string(), archive.path),
        "_archive_sha256": (pa.string(), sha256),
        "_ingested_at": (pa.timestamp("us", tz="UTC"), spec.ingested_at),
        "_batch_id": (pa.string(), spec.batch_id),
        ARRIVAL: (pa.date32(), date.fromisoformat(archive.arrival_date)),
    }


def _with(rows: pa.Table, columns: dict[str, tuple]) -> pa.Table:
    for name, (kind, value) in columns.items():
        if name in rows.column_names:
            rows = rows.drop_columns([name])
        rows = rows.append_column(name, pa.repeat(pa.scalar(value, kind), rows.num_rows))
    return rows


def _summary(archive: BatchArchive, size: int, sha256: str, result: ArchiveResult) -> pa.Table:
    reasons = Counter(
        reason
        for rows in result.tables.values()
        for reason in rows.bad.column("_reason").to_pylist()
    )
    row = {
        "path": archive.path,
        "size": size,
        "sha256": sha256,
        "facility": archive.facility,
        "arrival_date": archive.arrival_date,
        "status": result.status,
        "reason": result.reason,
        "message": result.message,
        "members": result.members,
        "uncompressed_bytes": result.uncompressed_bytes,
        "rows": result.good_rows,
        "bad_rows": result.bad_rows,
        "rows_by_table": json.dumps({n: r.good.num_rows for n, r in result.tables.items()}),
        "bad_by_reason": json.dumps(dict(reasons)),
    }
    return pa.Table.from_pylist([row], schema=ARCHIVE_SCHEMA)


def _wrap(
    envelope: pa.Schema, kind: str, table: str | None, column: str, rows: pa.Table
) -> pa.RecordBatch:
    """Envelope rows carrying `rows` in struct `column`; the other structs are null."""
    count = rows.num_rows
    arrays = []
    for field in envelope:
        if field.name == KIND:
            arrays.append(pa.array([kind] * count, pa.string()))
        elif field.name == TABLE:
            arrays.append(pa.array([table] * count, pa.string()))
        elif field.name == column:
            target = rows.select([f.name for f in field.type]).cast(pa.schema(list(field.type)))
            children = [c.combine_chunks() for c in target.columns]
            arrays.append(pa.StructArray.from_arrays(children, fields=list(field.type)))
        else:
            arrays.append(pa.nulls(count, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=envelope)
