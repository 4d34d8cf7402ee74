"""A seed-shaped slice of a peak hour: simulator archives in the seed's format and size mix.

A peak hour is 3,500 zips and 700,000 data files. The simulator's defaults keep the seed's zip
sizes and feed weights but pack fewer data files per zip than 200, so a slice keeps adding
archives (same options, later hours) until it holds `scale` of both counts.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from lake_assets.catalog.loader import load_catalog, metadata_root
from lake_assets.simulate import SimulationOptions, TruthRecord, read_truth, simulate
from lake_assets.simulate.options import Encryption, today_utc

PEAK_ZIPS = 3_500
PEAK_FILES = 700_000
FACILITIES = 8_000
MAX_ROUNDS = 6


@dataclass(frozen=True)
class FeedMix:
    """What one feed contributes to the slice."""

    archives: int
    data_files: int
    rows: int
    bytes: int


@dataclass(frozen=True)
class Slice:
    """Archives landed under `landing`, with their truth records."""

    encryption: Encryption
    landing: Path
    records: tuple[TruthRecord, ...]
    sizes: dict[str, int]
    seconds: float

    @property
    def archives(self) -> int:
        """Archives in the slice."""
        return len(self.records)

    @property
    def data_files(self) -> int:
        """Data files (zip members) in the slice."""
        return sum(r.data_files for r in self.records)

    @property
    def rows(self) -> int:
        """Good rows the ingest should load, over every table."""
        return sum(sum(r.rows.values()) for r in self.records)

    @property
    def bytes(self) -> int:
        """Compressed bytes of every archive."""
        return sum(self.sizes.values())

    def mix(self) -> dict[str, FeedMix]:
        """Archives, data files, rows and bytes per feed."""
        found: dict[str, list[int]] = {}
        for r in self.records:
            counts = found.setdefault(r.feed, [0, 0, 0, 0])
            counts[0] += 1
            counts[1] += r.data_files
            counts[2] += sum(r.rows.values())
            counts[3] += self.sizes[r.archive]
        return {feed: FeedMix(*counts) for feed, counts in sorted(found.items())}

    def summary(self) -> dict[str, object]:
        """The slice as JSON-ready counts."""
        return {
            "archives": self.archives,
            "data_files": self.data_files,
            "data_files_per_zip": round(self.data_files / max(1, self.archives), 1),
            "rows": self.rows,
            "megabytes": round(self.bytes / 1e6, 1),
            "generate_seconds": round(self.seconds, 1),
            "by_feed": {name: vars(mix) for name, mix in self.mix().items()},
        }


@dataclass(frozen=True)
class _Part:
    landing: str
    truth: str
    archives: int
    seed: int
    start: datetime
    encryption: Encryption


def first_hour() -> datetime:
    """01:00 UTC yesterday: a closed daily partition, so every run request is valid."""
    return today_utc() - timedelta(days=1) + timedelta(hours=1)


def build_slice(
    *, landing: Path, scale: float, encryption: Encryption, seed: int, workers: int = 2
) -> Slice:
    """Land at least `scale` of a peak hour's zips and data files under `landing`; a slice
    landed there before with the same scale, encryption and seed is reused.

    Raises SimulationError when the simulator cannot write, RuntimeError when MAX_ROUNDS rounds
    still fall short of the data-file target.
    """
    started = time.monotonic()
    want_zips, want_files = math.ceil(PEAK_ZIPS * scale), math.ceil(PEAK_FILES * scale)
    truth_dir = landing.parent / "truth"
    marker = truth_dir / "slice.json"
    asked = json.dumps({"scale": scale, "encryption": encryption, "seed": seed})
    if marker.is_file() and marker.read_text() == asked:
        return landed_slice(landing, truth_dir, encryption)
    shutil.rmtree(landing, ignore_errors=True)
    shutil.rmtree(truth_dir, ignore_errors=True)
    records: list[TruthRecord] = []
    todo, part = want_zips, 0
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        for _ in range(MAX_ROUNDS):
            parts = []
            for share in _split(todo, workers):
                parts.append(_Part(str(landing), str(truth_dir / f"part-{part:02d}.jsonl"),
                                   share, seed + part, first_hour() + timedelta(hours=part),
                                   encryption))
                part += 1
            for truth in pool.map(_simulate_part, parts):
                records.extend(read_truth(truth))
            files = sum(r.data_files for r in records)
            if files >= want_files and len(records) >= want_zips:
                marker.write_text(asked)
                found = landed_slice(landing, truth_dir, encryption)
                return replace(found, seconds=time.monotonic() - started)
            per_zip = files / max(1, len(records))
            todo = math.ceil((want_files - files) / max(per_zip, 1.0) * 1.05) + workers
    raise RuntimeError(f"slice still short of {want_files:,} data files after {MAX_ROUNDS} rounds")


def landed_slice(landing: Path, truth_dir: Path, encryption: Encryption) -> Slice:
    """The slice already landed under `landing`, as its truth files describe it."""
    records = [r for part in sorted(truth_dir.glob("part-*.jsonl")) for r in read_truth(part)]
    sizes = {r.archive: (landing / r.archive).stat().st_size for r in records}
    return Slice(encryption, landing, tuple(records), sizes, 0.0)


def build_warmup(*, landing: Path, archives: int = 12, seed: int = 0) -> Path:
    """Land a few archives of every feed, for warming Spark and its Python workers."""
    truth = landing.parent / "truth" / "warmup.jsonl"
    _simulate_part(_Part(str(landing), str(truth), archives, seed, first_hour(), "zipcrypto"))
    return landing


def _split(total: int, parts: int) -> list[int]:
    share, extra = divmod(total, parts)
    return [share + (1 if i < extra else 0) for i in range(parts) if share or i < extra]


def _simulate_part(part: _Part) -> str:
    options = SimulationOptions(
        out=part.landing, truth=part.truth, facilities=FACILITIES, hours=1.0,
        rate=float(part.archives), faults=0.0, seed=part.seed, size_scale=1.0,
        encryption=part.encryption, start=part.start,
    )
    simulate(load_catalog(metadata_root()), options)
    return part.truth
