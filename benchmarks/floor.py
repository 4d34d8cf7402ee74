"""The floor: the pipeline's own executor code over the slice, with no Spark and no writes.

Each feed's archives are cut into batches as its sensor cuts them (`batch.max_archives`), and
each batch is dealt into tasks as `load_batch` deals it; every task runs
`storage.batch.task_without_spark`: fetch, decrypt, parse in the same read groups, conform,
check and quarantine, exactly what a Spark task does minus writing Parquet. Two worker
processes stand for Spark's two cores; the pool is started and warmed before the clock starts.
So the floor leaves out only orchestration (Dagster, Spark scheduling) and the writes and
commits. Its driver memory is this Python process alone.

With `writes=True` each task also writes the Parquet files a Spark task writes (bronze and
quarantine, partitioned by arrival date) into a temporary folder, never committed: the floor
less orchestration and commits only, which splits the pipeline's distance from the floor into
writing and orchestration.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from benchmarks.memory import MemoryPeaks, MemorySampler
from benchmarks.seed_slice import Slice
from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.loader import load_catalog, metadata_root
from lake_assets.catalog.models import Feed
from lake_assets.storage.batch import BatchArchive, BatchSpec, deal, task_without_spark
from lake_assets.storage.landing import locate
from lake_assets.storage.secrets import get_secret

_FEEDS: dict[str, tuple[Feed, str | None]] = {}
TASKS_PER_CORE = 2  # as load_batch: default parallelism x 2


@dataclass(frozen=True)
class FloorResult:
    """Wall time and counts of the floor loop."""

    seconds: float
    members: int
    rows: int
    quarantined: int
    memory: MemoryPeaks
    feed_cpu_s: dict[str, float]


def _tasks(data: Slice, processes: int) -> list[tuple[str, tuple[BatchArchive, ...], list[int]]]:
    """(feed, batch archives, share) per task, largest first."""
    by_feed: dict[str, list[BatchArchive]] = {}
    feeds = {f.name: f for f in load_catalog(metadata_root()).feeds}
    for record in data.records:
        day, _, facility = locate(feeds[record.feed], record.archive)
        by_feed.setdefault(record.feed, []).append(
            BatchArchive(record.archive, data.sizes[record.archive], facility, day))
    tasks = []
    for name, archives in by_feed.items():
        step = feeds[name].batch.max_archives
        for first in range(0, len(archives), step):
            batch = tuple(archives[first:first + step])
            for share in deal(batch, min(len(batch), processes * TASKS_PER_CORE)):
                if share:
                    tasks.append((name, batch, share))
    return sorted(tasks, key=lambda t: -sum(t[1][i].size for i in t[2]))


def run_floor(data: Slice, *, processes: int = 2, writes: bool = False) -> FloorResult:
    """Run every task of `data` with `processes` workers; largest tasks go first. `writes`:
    tasks also write their Parquet files (see the module docstring)."""
    tasks = _tasks(data, processes)
    context = multiprocessing.get_context("spawn")
    root = str(data.landing)
    with tempfile.TemporaryDirectory(prefix="floor-quarantine-") as held, \
            tempfile.TemporaryDirectory(prefix="floor-files-") as files, \
            ProcessPoolExecutor(processes, mp_context=context, initializer=_load_feeds) as pool:
        list(pool.map(_warm, range(processes * 2)))
        into = [files if writes else None] * len(tasks)
        with MemorySampler(include_jvm=False) as sampler:
            started = time.monotonic()
            counts = list(pool.map(_read, [root] * len(tasks), [held] * len(tasks), into,
                                   *zip(*tasks, strict=True)))
            seconds = time.monotonic() - started
    by_feed: dict[str, float] = {}
    for (feed, _, _), count in zip(tasks, counts, strict=True):
        by_feed[feed] = by_feed.get(feed, 0.0) + count[3]
    return FloorResult(
        seconds=seconds,
        members=sum(c[0] for c in counts),
        rows=sum(c[1] for c in counts),
        quarantined=sum(c[2] for c in counts),
        memory=sampler.peaks,
        feed_cpu_s=by_feed,
    )


def _load_feeds() -> None:
    catalog: Catalog = load_catalog(metadata_root())
    for feed in catalog.feeds:
        secret = feed.archive.password_secret
        _FEEDS[feed.name] = (feed, get_secret(secret) if secret else None)


def _warm(_: int) -> int:
    time.sleep(0.2)  # keeps each warm-up task on its own worker
    return len(_FEEDS)


def _read(root: str, held: str, files: str | None, feed_name: str,
          batch: tuple[BatchArchive, ...], share: list[int]) -> tuple[int, int, int, float]:
    started = time.process_time()
    feed, password = _FEEDS[feed_name]
    spec = BatchSpec(feed=feed, batch_id="floor", archives=batch, landing_root=root,
                     quarantine_root=held, password=password,
                     ingested_at=dt.datetime.now(dt.UTC))
    summaries = task_without_spark(spec, share, files_under=files)
    spent = time.process_time() - started
    return (sum(a["members"] or 0 for a in summaries), sum(a["rows"] for a in summaries),
            sum(a["status"] == "quarantined" for a in summaries), spent)
