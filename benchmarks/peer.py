"""The peer: how a plain Spark job would load the same archives.

Unzip every archive to a staging folder (libarchive decrypts, two processes), then per feed
read the staged files with Spark's own readers (`xml` with a row tag and a schema inferred
beforehand, `csv` as strings, `text` for HL7 split into fields) and append `df.toArrow()` to a
Delta table with `deltalake.write_deltalake`, in batches capped like ours (`batch.max_archives`
of the feed, without per-facility batches). Small files are packed into few tasks.
"""

from __future__ import annotations

import codecs
import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import libarchive
from deltalake import write_deltalake
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from benchmarks.memory import MemoryPeaks, MemorySampler
from benchmarks.seed_slice import Slice
from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.models import Feed
from lake_assets.storage.secrets import get_secret

# Spark's default (4 MB per file opened) makes one task per small data file; packing them is
# the one setting any Spark user would change for this data, so the peer gets it.
OPEN_COST = "spark.sql.files.openCostInBytes"
SMALL_FILE_COST = "8192"


@dataclass
class PeerResult:
    """Wall time of the peer, split into staging and per-feed Spark read plus write."""

    seconds: float = 0.0
    staging_seconds: float = 0.0
    feed_seconds: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    memory: MemoryPeaks = field(default_factory=MemoryPeaks)


def run_peer(
    spark: SparkSession, catalog: Catalog, data: Slice, *, workdir: Path, processes: int = 2
) -> PeerResult:
    """Stage, read and write the slice the plain way; removes its staging folder afterwards."""
    staging, lake = workdir / "staging", workdir / "lake"
    result = PeerResult()
    passwords = _passwords(catalog)
    previous = spark.conf.get(OPEN_COST, None)
    spark.conf.set(OPEN_COST, SMALL_FILE_COST)
    try:
        schemas = _xml_schemas(spark, catalog, data, workdir / "sample", passwords)
        _load(spark, catalog, data, (staging, lake), result, passwords, schemas, processes)
    finally:
        if previous is None:
            spark.conf.unset(OPEN_COST)
        else:
            spark.conf.set(OPEN_COST, previous)
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _passwords(catalog: Catalog) -> dict[str, str | None]:
    found = {}
    for feed in catalog.feeds:
        secret = feed.archive.password_secret
        found[feed.name] = get_secret(secret) if secret else None
    return found


def _xml_schemas(
    spark: SparkSession, catalog: Catalog, data: Slice, sample: Path,
    passwords: dict[str, str | None],
) -> dict[str, StructType]:
    """XML schemas inferred from one archive per feed before the clock starts: a production
    job knows its schema, and inferring it over every file would double the XML read."""
    schemas = {}
    for feed in catalog.feeds:
        first = next((r for r in data.records if r.feed == feed.name), None)
        if feed.format.kind != "xml" or first is None:
            continue
        folder = sample / feed.name
        _unzip(str(data.landing / first.archive), str(folder), "sample", passwords[feed.name])
        schemas[feed.name] = _read(spark, feed, folder, None).drop("_source_file").schema
    shutil.rmtree(sample, ignore_errors=True)
    return schemas


def _load(
    spark: SparkSession, catalog: Catalog, data: Slice, folders: tuple[Path, Path],
    result: PeerResult, passwords: dict[str, str | None], schemas: dict[str, StructType],
    processes: int,
) -> None:
    staging, lake = folders
    with MemorySampler() as sampler:
        started = time.monotonic()
        _stage(catalog, data, staging, passwords, processes)
        result.staging_seconds = time.monotonic() - started
        for feed in catalog.feeds:
            began = time.monotonic()
            for folder in sorted((staging / feed.name).glob("batch-*")):
                frame = _read(spark, feed, folder, schemas.get(feed.name)).toArrow()
                write_deltalake(str(lake / feed.name), frame, mode="append")
                result.rows[feed.name] = result.rows.get(feed.name, 0) + frame.num_rows
                del frame
            result.feed_seconds[feed.name] = time.monotonic() - began
        result.seconds = time.monotonic() - started
    result.memory = sampler.peaks


def _stage(
    catalog: Catalog, data: Slice, staging: Path, passwords: dict[str, str | None],
    processes: int,
) -> None:
    """Unzip every archive into `<feed>/batch-<n>/`, batches capped like the feed's runs."""
    seen: dict[str, int] = {}
    jobs = []
    for r in data.records:
        index = seen[r.feed] = seen.get(r.feed, -1) + 1
        batch = index // catalog.feed(r.feed).batch.max_archives
        folder = staging / r.feed / f"batch-{batch:04d}"
        jobs.append((str(data.landing / r.archive), str(folder), _stem(r.archive),
                     passwords[r.feed]))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        list(pool.map(_unzip, *zip(*jobs, strict=True), chunksize=8))


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
            with open(folder / f"{stem}__{name}", "wb") as handle:
                for block in entry.get_blocks():
                    handle.write(block)
            count += 1
    return count


def _java_charset(encoding: str) -> str:
    """Spark's name for a Python codec: `latin-1` is `iso-8859-1`."""
    name = codecs.lookup(encoding).name
    return "us-ascii" if name == "ascii" else name.replace("iso8859", "iso-8859")


def _read(
    spark: SparkSession, feed: Feed, folder: Path, schema: StructType | None
) -> DataFrame:
    # A glob in the path expands to one path per file, which Spark then lists in a job of
    # its own; a folder with a name filter is listed once.
    files = str(folder)
    reader = spark.read.option("pathGlobFilter", feed.format.member_pattern)
    kind = feed.format.kind
    if kind == "xml":
        row_tag = (feed.tables[0].selector or "record").strip("/").split("/")[0]
        reader = reader.schema(schema) if schema is not None else reader
        frame = reader.option("rowTag", row_tag).xml(files)
    elif kind in ("csv", "delimited"):
        frame = (reader.option("header", str(feed.format.header).lower())
                 .option("sep", feed.format.delimiter or ",")
                 .option("encoding", _java_charset(feed.encoding))
                 .csv(files))
    else:  # HL7 v2: one segment per line, fields split on the separator
        frame = reader.text(files).select(
            F.substring("value", 1, 3).alias("segment"),
            F.split("value", r"\|").alias("fields"),
        )
    return frame.withColumn("_source_file", F.col("_metadata.file_path"))
