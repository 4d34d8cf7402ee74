"""The raw floor: every archive of a slice read with `read_archive` in a tight loop.

Two worker processes stand for Spark's two cores. The pool is started and warmed before the
clock starts, so the floor measures decrypt and parse only: no scheduling, no writes. Its
driver memory is this Python process alone (the benchmark's Spark JVM idles meanwhile).
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from benchmarks.memory import MemoryPeaks, MemorySampler
from benchmarks.seed_slice import Slice
from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.loader import load_catalog, metadata_root
from lake_assets.catalog.models import Feed
from lake_assets.ingest.read import read_archive
from lake_assets.storage.secrets import get_secret

_FEEDS: dict[str, tuple[Feed, str | None]] = {}


@dataclass(frozen=True)
class FloorResult:
    """Wall time and counts of the floor loop."""

    seconds: float
    members: int
    rows: int
    quarantined: int
    memory: MemoryPeaks
    feed_cpu_s: dict[str, float]


def run_floor(data: Slice, *, processes: int = 2) -> FloorResult:
    """Read every archive of `data` with `processes` workers; largest archives go first."""
    jobs = sorted(((r.feed, r.archive) for r in data.records),
                  key=lambda job: -data.sizes[job[1]])
    context = multiprocessing.get_context("spawn")
    root = str(data.landing)
    with ProcessPoolExecutor(processes, mp_context=context, initializer=_load_feeds) as pool:
        list(pool.map(_warm, range(processes * 2)))
        with MemorySampler(include_jvm=False) as sampler:
            started = time.monotonic()
            counts = list(pool.map(_read, [root] * len(jobs), *zip(*jobs, strict=True),
                                   chunksize=4))
            seconds = time.monotonic() - started
    by_feed: dict[str, float] = {}
    for (feed, _), count in zip(jobs, counts, strict=True):
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


def _read(root: str, feed_name: str, path: str) -> tuple[int, int, int, float]:
    started = time.process_time()
    feed, password = _FEEDS[feed_name]
    data = Path(root, path).read_bytes()
    result = read_archive(feed, data=data, path=path, password=password)
    spent = time.process_time() - started
    return result.members, result.good_rows, int(result.status == "quarantined"), spent
