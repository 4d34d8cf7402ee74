"""The schedule of a run: which archive arrives when, from which facility, with what fault.

Archives spread uniformly over the hours, over feeds by weight and over facilities. Sizes
follow the seed's shape: a log-normal around 120 KB clipped to 20 KB-1.5 MB, and about one
in a thousand at 40 MB.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lake_assets.catalog.models import Feed
from lake_assets.simulate.archives import Encryption
from lake_assets.simulate.domain import DEFAULT_FEED_WEIGHT, FEED_WEIGHTS
from lake_assets.simulate.options import SimulationOptions

MEDIAN_BYTES = 120_000
SIZE_SIGMA = 0.9
MIN_BYTES, MAX_BYTES = 20_000, 1_500_000
HUGE_BYTES, HUGE_RATE = 40_000_000, 0.001
RESEND_WINDOW = 50


@dataclass(frozen=True)
class ArchiveSpec:
    """One planned archive; `offset` is seconds after the run's start."""

    index: int
    feed: str
    facility: int
    offset: float
    fault: str | None
    encryption: Encryption | None
    target_bytes: int
    resend_of: int | None = None


def plan_archives(
    options: SimulationOptions,
    feeds: Sequence[Feed],
    faults: Mapping[str, tuple[str, ...]],
) -> list[ArchiveSpec]:
    """The archives of a run in arrival order; `faults` maps feed name to usable fault kinds."""
    rng = random.Random(f"{options.seed}:plan")
    total = options.archive_count()
    span = options.hours * 3600
    offsets = sorted(rng.uniform(0, span) for _ in range(total))
    names = [f.name for f in feeds]
    weights = [FEED_WEIGHTS.get(name, DEFAULT_FEED_WEIGHT) for name in names]
    encrypted = {f.name: f.archive.kind == "zip" and bool(f.archive.password_secret) for f in feeds}
    recent: dict[str, list[ArchiveSpec]] = {name: [] for name in names}
    specs: list[ArchiveSpec] = []
    for index, offset in enumerate(offsets):
        feed = rng.choices(names, weights=weights)[0]
        earlier = recent[feed]
        if earlier and rng.random() < options.resend_rate:
            original = rng.choice(earlier[-RESEND_WINDOW:])
            spec = ArchiveSpec(
                index,
                feed,
                original.facility,
                offset,
                original.fault,
                original.encryption,
                original.target_bytes,
                resend_of=original.index,
            )
        else:
            fault = None
            if faults[feed] and rng.random() < options.faults:
                fault = rng.choice(faults[feed])
            spec = ArchiveSpec(
                index,
                feed,
                rng.randint(1, options.facilities),
                offset,
                fault,
                _encryption(options, rng) if encrypted[feed] else None,
                target_size(rng, options.size_scale),
            )
            earlier.append(spec)
        specs.append(spec)
    return specs


def target_size(rng: random.Random, scale: float) -> int:
    """A compressed archive size in bytes, times `scale`."""
    if rng.random() < HUGE_RATE:
        size = HUGE_BYTES
    else:
        size = MEDIAN_BYTES * math.exp(rng.gauss(0.0, SIZE_SIGMA))
        size = min(max(size, MIN_BYTES), MAX_BYTES)
    return max(1, round(size * scale))


def xml_file_count(rng: random.Random, scale: float) -> int:
    """Files in an XML zip: 20-300, the range shrunk by `scale` when it is below 1."""
    low, high = 20, 300
    if scale < 1:
        low, high = max(1, round(low * scale)), max(1, round(high * scale))
    return rng.randint(low, high)


def _encryption(options: SimulationOptions, rng: random.Random) -> Encryption:
    if options.encryption == "mix":
        return rng.choice(("aes", "zipcrypto"))
    return options.encryption
