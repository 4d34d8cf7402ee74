"""Sensor bookkeeping: which archives are new, how they group into batches, and the cursor.

The cursor keeps, per open arrival hour, short hashes of the archives already requested, grouped
by the batch that holds them until the manifest has them (then they count as settled), plus the
hour before which everything is sealed. An hour is sealed once it ended more than the grace
period ago and all its archives are settled, so the cursor stays small whatever the history.
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
SETTLED = ""  # the group of an hour's archives that the manifest holds


def archive_token(path: str) -> str:
    """A 12-hex-digit token standing for an archive path in the cursor."""
    return hashlib.blake2b(path.encode(), digest_size=6).hexdigest()


def hour_of(archive: LandedArchive) -> str:
    """The archive's arrival hour as the cursor keys it: `YYYY-MM-DD/HH`."""
    return f"{archive.arrival_date}/{archive.arrival_hour}"


@dataclass
class FeedCursor:
    """What a feed's sensor has requested, and which batch holds what is not settled yet."""

    sealed_before: str | None = None  # "YYYY-MM-DD/HH": every earlier hour is done
    # hour -> batch id (SETTLED for archives the manifest holds) -> archive tokens
    open_hours: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    next_batch: int = 0
    checked_at: float = 0.0  # when the manifest's dead letters and replays were last read
    backlog: dict[str, int] = field(default_factory=dict)  # the last figures reported

    @classmethod
    def parse(cls, text: str | None) -> FeedCursor:
        """The cursor stored by an earlier tick, or an empty one.

        A cursor written before batches were tracked lists plain tokens per hour; they are read
        as settled, as that version treated them.
        """
        if not text:
            return cls()
        data = json.loads(text)
        hours: dict[str, dict[str, set[str]]] = {}
        for hour, groups in data.get("open", {}).items():
            if isinstance(groups, list):
                groups = {SETTLED: groups}
            hours[hour] = {batch: set(tokens) for batch, tokens in groups.items()}
        return cls(
            sealed_before=data.get("sealed_before"),
            open_hours=hours,
            next_batch=int(data.get("next_batch", 0)),
            checked_at=float(data.get("checked_at", 0.0)),
            backlog=dict(data.get("backlog", {})),
        )

    def serialize(self) -> str:
        """The cursor as a compact JSON string."""
        payload = {
            "sealed_before": self.sealed_before,
            "open": {hour: {batch: sorted(tokens) for batch, tokens in sorted(groups.items())}
                     for hour, groups in sorted(self.open_hours.items())},
            "next_batch": self.next_batch,
            "checked_at": self.checked_at,
            "backlog": self.backlog,
        }
        return json.dumps(payload, separators=(",", ":"))

    def wants_hour(self, hour_key: str) -> bool:
        """Whether an hour ("YYYY-MM-DD/HH") may still hold archives not yet requested."""
        return self.sealed_before is None or hour_key >= self.sealed_before

    def is_new(self, archive: LandedArchive) -> bool:
        """Whether `archive` has not been requested before."""
        return self.wants_hour(hour_of(archive)) and self.batch_of(archive) is None

    def batch_of(self, archive: LandedArchive) -> str | None:
        """The batch holding `archive` (SETTLED once the manifest has it); None if never
        requested."""
        token = archive_token(archive.path)
        groups = self.open_hours.get(hour_of(archive), {})
        return next((batch for batch, tokens in groups.items() if token in tokens), None)

    def mark(self, archives: list[LandedArchive], batch_id: str = SETTLED) -> None:
        """Record `archives` as requested in batch `batch_id`, or as settled."""
        for archive in archives:
            groups = self.open_hours.setdefault(hour_of(archive), {})
            token = archive_token(archive.path)
            for tokens in groups.values():
                tokens.discard(token)
            groups.setdefault(batch_id, set()).add(token)
        for groups in self.open_hours.values():
            for batch in [b for b, tokens in groups.items() if not tokens and b != SETTLED]:
                del groups[batch]

    def forget_batch(self, batch_id: str) -> None:
        """Drop every archive the cursor still holds in `batch_id`: the next tick sees those
        still in the landing zone as new."""
        for groups in self.open_hours.values():
            groups.pop(batch_id, None)

    def unsettled(self) -> dict[str, set[str]]:
        """Tokens of requested archives the manifest did not have at the last look, by batch."""
        found: dict[str, set[str]] = {}
        for groups in self.open_hours.values():
            for batch, tokens in groups.items():
                if batch != SETTLED:
                    found.setdefault(batch, set()).update(tokens)
        return found

    def seal(self, now: datetime, *, incomplete: set[str]) -> None:
        """Stop listing hours that ended SEAL_AFTER before `now` and had every archive requested
        and settled.

        `incomplete` holds the hours that still have archives left for a later tick.
        """
        cutoff = (now - SEAL_AFTER).strftime("%Y-%m-%d/%H")
        waiting = {hour for hour, groups in self.open_hours.items()
                   if any(batch != SETTLED and tokens for batch, tokens in groups.items())}
        self.sealed_before = min([*incomplete, *waiting, cutoff])
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
