"""Sensor bookkeeping: which archives are new, how they group into batches, and the cursor.

The cursor keeps, per open arrival hour, short hashes of archives already requested, plus the hour
before which everything is sealed. Hours older than the grace period are sealed and dropped, so the
cursor stays small whatever the history.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lake_assets.catalog.models import Feed
from lake_assets.storage.landing import LandedArchive

# An hour folder still receives archives this long after it ends (slow uploads, clock skew).
SEAL_AFTER = timedelta(hours=2)


def archive_token(path: str) -> str:
    """A 12-hex-digit token standing for an archive path in the cursor."""
    return hashlib.blake2b(path.encode(), digest_size=6).hexdigest()


@dataclass
class FeedCursor:
    """What a feed's sensor has already requested."""

    sealed_before: str | None = None  # "YYYY-MM-DD/HH": every earlier hour is done
    open_hours: dict[str, set[str]] = field(default_factory=dict)
    next_batch: int = 0

    @classmethod
    def parse(cls, text: str | None) -> FeedCursor:
        """The cursor stored by an earlier tick, or an empty one."""
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            sealed_before=data.get("sealed_before"),
            open_hours={hour: set(tokens) for hour, tokens in data.get("open", {}).items()},
            next_batch=int(data.get("next_batch", 0)),
        )

    def serialize(self) -> str:
        """The cursor as a compact JSON string."""
        payload = {
            "sealed_before": self.sealed_before,
            "open": {hour: sorted(tokens) for hour, tokens in sorted(self.open_hours.items())},
            "next_batch": self.next_batch,
        }
        return json.dumps(payload, separators=(",", ":"))

    def wants_hour(self, hour_key: str) -> bool:
        """Whether an hour ("YYYY-MM-DD/HH") may still hold archives not yet requested."""
        return self.sealed_before is None or hour_key >= self.sealed_before

    def is_new(self, archive: LandedArchive) -> bool:
        """Whether `archive` has not been requested before."""
        hour_key = f"{archive.arrival_date}/{archive.arrival_hour}"
        if not self.wants_hour(hour_key):
            return False
        return archive_token(archive.path) not in self.open_hours.get(hour_key, set())

    def mark(self, archives: list[LandedArchive]) -> None:
        """Record `archives` as requested."""
        for archive in archives:
            hour_key = f"{archive.arrival_date}/{archive.arrival_hour}"
            self.open_hours.setdefault(hour_key, set()).add(archive_token(archive.path))

    def seal(self, now: datetime, *, incomplete: set[str]) -> None:
        """Stop listing hours that ended SEAL_AFTER before `now` and had every archive requested.

        `incomplete` holds the hours that still have archives left for a later tick.
        """
        cutoff = (now - SEAL_AFTER).strftime("%Y-%m-%d/%H")
        self.sealed_before = min([*incomplete, cutoff])
        for hour_key in [h for h in self.open_hours if h < self.sealed_before]:
            del self.open_hours[hour_key]


@dataclass(frozen=True)
class Batch:
    """Archives of one arrival date processed by one run, from one or more facilities."""

    batch_id: str
    feed: str
    arrival_date: str
    archives: tuple[LandedArchive, ...]

    @property
    def bytes(self) -> int:
        """Total compressed size of the batch."""
        return sum(a.size for a in self.archives)

    @property
    def facilities(self) -> tuple[str, ...]:
        """The facilities that sent the batch's archives, sorted."""
        return tuple(sorted({a.facility for a in self.archives}))


def plan_batches(feed: Feed, archives: list[LandedArchive], *, first_number: int) -> list[Batch]:
    """Group `archives` into batches within the feed's limits, numbered from `first_number`.

    Batches never mix arrival dates. Facility-partitioned feeds batch across facilities too:
    one run per facility would cost a run's start-up for every hourly archive.
    """
    by_date: dict[str, list[LandedArchive]] = {}
    for archive in sorted(archives):
        by_date.setdefault(archive.arrival_date, []).append(archive)
    batches: list[Batch] = []
    number = first_number
    for date, members in sorted(by_date.items()):
        for chunk in _chunks(members, feed.batch.max_archives, feed.batch.max_bytes):
            batch_id = f"{date.replace('-', '')}-{number:07d}"
            batches.append(Batch(batch_id, feed.name, date, tuple(chunk)))
            number += 1
    return batches


def _chunks(
    archives: list[LandedArchive], max_archives: int, max_bytes: int
) -> list[list[LandedArchive]]:
    chunks: list[list[LandedArchive]] = [[]]
    size = 0
    for archive in archives:
        current = chunks[-1]
        if current and (len(current) >= max_archives or size + archive.size > max_bytes):
            chunks.append([])
            size = 0
        chunks[-1].append(archive)
        size += archive.size
    return [c for c in chunks if c]
