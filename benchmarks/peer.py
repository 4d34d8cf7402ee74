"""The peer: the best plain Spark job a competent user would write for the same archives.

It unzips every archive to a staging folder (libarchive decrypts, two processes), then per feed
and batch (capped at the feed's `batch.max_archives`, without per-facility batches) reads the
staged files with Spark's own readers and types them as the metadata declares: CSV and
pipe-delimited files with a schema and the feed's formats, XML with `rowTag` and a nested schema
(`benchmarks/peer_read.py`), HL7 read whole and split into the same fields by a Python UDF over
the project's HL7 field parser (`benchmarks/peer_hl7.py`). Rows that fail typing, leave a
required column empty or hold a date before the floor are counted and dropped (not
quarantined: the peer keeps no bad rows). Executors write the good rows as Parquet through the
project's Delta file writer (`mapInArrow` over `TableWriter`), and the driver commits each
table's files once per batch. The peer runs no row checks, keeps no lineage beyond the source
file and no manifest; it skips a re-sent archive (the bytes of one before it) as ours does.
After the clock stops, the rows of every table are counted per archive and compared with the
simulator's truth, as ours are.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import libarchive
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from benchmarks.memory import MemoryPeaks, MemorySampler
from benchmarks.peer_hl7 import read_hl7
from benchmarks.peer_read import BAD, SOURCE, TABLE, read_delimited, read_xml
from benchmarks.seed_slice import Slice
from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.models import Feed
from lake_assets.ingest.convert import arrow_type
from lake_assets.storage.delta import (
    DataFile,
    TableRef,
    TableWriter,
    WriteSpec,
    commit_files,
    plan_files,
    table_exists,
)
from lake_assets.storage.secrets import get_secret

# Spark's default (4 MB per file opened) makes one task per small data file; packing them is
# the one setting any Spark user would change for this data, so the peer gets it.
OPEN_COST = "spark.sql.files.openCostInBytes"
SMALL_FILE_COST = "8192"
STAGED = "__"  # a staged file is `<archive stem>__<member>`
MISMATCHES_KEPT = 20


@dataclass
class PeerResult:
    """Wall time of the peer (staging, then per feed Spark read and write), the rows its
    tables hold per `feed/table`, the rows it dropped, and how they compare with the truth."""

    seconds: float = 0.0
    staging_seconds: float = 0.0
    feed_seconds: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    dropped_rows: dict[str, int] = field(default_factory=dict)
    verified: bool = False
    mismatches: list[str] = field(default_factory=list)
    memory: MemoryPeaks = field(default_factory=MemoryPeaks)


def run_peer(
    spark: SparkSession, catalog: Catalog, data: Slice, *, workdir: Path, processes: int = 2
) -> PeerResult:
    """Stage, read and write the slice the plain way, then check its tables against the truth;
    removes its staging folder afterwards."""
    staging, lake = workdir / "staging", workdir / "lake"
    result = PeerResult()
    previous = spark.conf.get(OPEN_COST, None)
    spark.conf.set(OPEN_COST, SMALL_FILE_COST)
    try:
        with MemorySampler() as sampler:
            started = time.monotonic()
            _stage(catalog, data, staging, _passwords(catalog), processes)
            result.staging_seconds = time.monotonic() - started
            for feed in catalog.feeds:
                began = time.monotonic()
                for folder in sorted((staging / feed.name).glob("batch-*")):
                    _load(spark, feed, folder, lake, result.dropped_rows)
                result.feed_seconds[feed.name] = time.monotonic() - began
            result.seconds = time.monotonic() - started
        result.memory = sampler.peaks
    finally:
        if previous is None:
            spark.conf.unset(OPEN_COST)
        else:
            spark.conf.set(OPEN_COST, previous)
        shutil.rmtree(staging, ignore_errors=True)
    _verify(catalog, data, lake, result)
    return result


def _passwords(catalog: Catalog) -> dict[str, str | None]:
    found = {}
    for feed in catalog.feeds:
        secret = feed.archive.password_secret
        found[feed.name] = get_secret(secret) if secret else None
    return found


def _load(spark: SparkSession, feed: Feed, folder: Path, lake: Path,
          dropped: dict[str, int]) -> None:
    """One batch: read and type on the executors, which write every table's files; then one
    commit per table on the driver."""
    frame = _read(spark, feed, str(folder))
    plans = {}
    for table in feed.tables:
        fields = [(c.name, arrow_type(c)) for c in table.columns]
        fields += [(c.precision_column, pa.string()) for c in table.columns
                   if c.precision_column is not None]
        schema = pa.schema([*fields, (SOURCE, pa.string())])
        ref = TableRef(f"{feed.name}/{table.name}", str(lake / feed.name / table.name))
        plans[table.name] = plan_files(ref, schema)
    files, bad = _write(frame, {name: plan.spec for name, plan in plans.items()})
    for name, plan in plans.items():
        if files.get(name):
            commit_files(plan, files[name])
        key = f"{feed.name}/{name}"
        dropped[key] = dropped.get(key, 0) + bad.get(name, 0)


def _read(spark: SparkSession, feed: Feed, folder: str) -> DataFrame:
    """Every row of every table of `feed` in the staged `folder`, typed and tagged."""
    reader = spark.read.option("pathGlobFilter", feed.format.member_pattern)
    kind = feed.format.kind
    if kind in ("csv", "delimited"):
        return read_delimited(reader, feed, folder)
    if kind == "xml":
        return read_xml(reader, feed, folder)
    return read_hl7(reader, feed, folder)


def _write(frame: DataFrame, specs: dict[str, WriteSpec]
           ) -> tuple[dict[str, list[DataFile]], Counter[str]]:
    """Each table's good rows written as Parquet by the tasks; returns the files per table and
    the rows dropped per table."""
    rows = frame.mapInArrow(_writer(specs), "tbl string, kind string, payload string").collect()
    files: dict[str, list[DataFile]] = {}
    bad: Counter[str] = Counter()
    for row in rows:
        if row.kind == "file":
            files.setdefault(row.tbl, []).append(DataFile(**json.loads(row.payload)))
        else:
            bad[row.tbl] += int(row.payload)
    return files, bad


def _writer(specs: dict[str, WriteSpec]
            ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        writers = {name: TableWriter(spec) for name, spec in specs.items()}
        bad: Counter[str] = Counter()
        try:
            for batch in batches:
                for name, writer in writers.items():
                    mine = batch.filter(pc.equal(batch.column(TABLE), name))
                    dropped = pc.fill_null(mine.column(BAD), True)
                    bad[name] += pc.sum(dropped).as_py() or 0
                    good = mine.filter(pc.invert(dropped))
                    writer.write(good.select(writer.spec.schema.names))
            found = [(name, f) for name, w in writers.items() for f in w.close()]
        except BaseException:
            for writer in writers.values():
                writer.abandon()
            raise
        results = [(name, "file", json.dumps(asdict(f))) for name, f in found]
        results += [(name, "dropped", str(count)) for name, count in bad.items()]
        columns = [pa.array(list(c), pa.string()) for c in zip(*results, strict=True)]
        yield pa.RecordBatch.from_arrays(columns or [pa.array([], pa.string())] * 3,
                                         names=["tbl", "kind", "payload"])

    return run


def _stage(
    catalog: Catalog, data: Slice, staging: Path, passwords: dict[str, str | None],
    processes: int,
) -> None:
    """Unzip every archive into `<feed>/batch-<n>/`, batches capped like the feed's runs. An
    archive with the bytes of one before it is a re-send and is skipped, as ours skips it."""
    paths = [str(data.landing / r.archive) for r in data.records]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        digests = list(pool.map(_sha256, paths, chunksize=16))
        seen: dict[str, int] = {}
        known: set[str] = set()
        jobs = []
        for r, path, digest in zip(data.records, paths, digests, strict=True):
            if digest in known:
                continue
            known.add(digest)
            index = seen[r.feed] = seen.get(r.feed, -1) + 1
            batch = index // catalog.feed(r.feed).batch.max_archives
            folder = staging / r.feed / f"batch-{batch:04d}"
            jobs.append((path, str(folder), _stem(r.archive), passwords[r.feed]))
        list(pool.map(_unzip, *zip(*jobs, strict=True), chunksize=8))


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _stem(path: str) -> str:
    return PurePosixPath(path).stem


def _unzip(source: str, target: str, stem: str, password: str | None) -> int:
    """Decrypt every member of one archive into `target` as `<stem>__<member>`: one flat folder
    per batch (a folder per archive would make Spark list thousands of folders); returns the
    member count."""
    folder = Path(target)
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    with libarchive.memory_reader(Path(source).read_bytes(), passphrase=password) as archive:
        for entry in archive:
            if not entry.isreg:
                continue
            name = PurePosixPath(str(entry.pathname).replace("\\", "/")).name
            with open(folder / f"{stem}{STAGED}{name}", "wb") as handle:
                for block in entry.get_blocks():
                    handle.write(block)
            count += 1
    return count


def _verify(catalog: Catalog, data: Slice, lake: Path, result: PeerResult) -> None:
    """Count each table's committed rows per archive and compare them with the truth; every
    difference is listed (the first MISMATCHES_KEPT kept) and the result is not verified."""
    expected: Counter[tuple[str, str]] = Counter()
    stems = {}
    for record in data.records:
        stems[_stem(record.archive)] = record.archive
        for table, count in record.rows.items():
            expected[(f"{record.feed}/{table}", record.archive)] += count
    found: Counter[tuple[str, str]] = Counter()
    for feed in catalog.feeds:
        for table in feed.tables:
            key = f"{feed.name}/{table.name}"
            result.rows[key] = 0
            for stem, count in _rows_per_stem(lake / feed.name / table.name).items():
                found[(key, stems.get(stem, stem))] += count
                result.rows[key] += count
    wrong = sorted(k for k in expected.keys() | found.keys() if expected[k] != found[k])
    result.mismatches = [f"{table} {archive}: {found[(table, archive)]:,} rows, the truth has "
                         f"{expected[(table, archive)]:,}" for table, archive in wrong]
    result.mismatches = result.mismatches[:MISMATCHES_KEPT]
    result.verified = not wrong and sum(found.values()) == data.rows


def _rows_per_stem(path: Path) -> Counter[str]:
    """Rows of the Delta table at `path` per archive stem of their source file."""
    counts: Counter[str] = Counter()
    if not table_exists(str(path), options={}):
        return counts
    dataset = DeltaTable(str(path)).to_pyarrow_dataset()
    for batch in dataset.to_batches(columns=[SOURCE]):
        found = pc.extract_regex(batch.column(SOURCE), rf"(?P<stem>[^/]*?){STAGED}[^/]*$")
        stems = found.field("stem")
        for item in pc.value_counts(stems).to_pylist():
            counts[item["values"]] += item["counts"]
    return counts
