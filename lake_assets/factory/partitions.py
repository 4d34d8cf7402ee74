"""Partitions: daily by arrival date, plus a dynamic facility dimension where a feed asks for it.

Every daily partition of the lake starts on one date, its first arrival (`lake_start`), so the
UI's partition bars count days the lake could have data for, not days before it existed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import dagster as dg

from lake_assets.catalog.models import Feed

# Where partitions start before anything has landed, or when the landing zone cannot be listed
# at load: early enough for every archive, so no run's partition is missing from a code server.
FALLBACK_START = "2026-01-01"

# Run tags with which Dagster runs one run over a range of partitions.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@functools.cache
def daily_partitions(start: str) -> dg.DailyPartitionsDefinition:
    """Days from `start` (YYYY-MM-DD) on, in UTC. end_offset=1: today's partition exists, since
    archives arriving today belong to it."""
    return dg.DailyPartitionsDefinition(start_date=start, timezone="UTC", end_offset=1)


def lake_start(feeds: Iterable[Feed], first_arrival: Callable[[Feed], str | None]) -> str:
    """The first day of the lake's partitions: the earliest of each feed's `start_date`, or of
    its first arrival (`first_arrival`) where it declares none; `FALLBACK_START` when no feed
    has either yet."""
    days = [f.start_date.isoformat() if f.start_date else first_arrival(f) for f in feeds]
    found = [d for d in days if d]
    return min(found) if found else FALLBACK_START


def first_day(partitions: dg.PartitionsDefinition) -> str:
    """The first arrival date of `partitions` (daily, or daily by facility)."""
    if isinstance(partitions, dg.MultiPartitionsDefinition):
        partitions = partitions.get_partitions_def_for_dimension("date")
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    return partitions.start.strftime("%Y-%m-%d")


def facility_partitions_name(feed: Feed) -> str:
    """Name of the dynamic facility partitions that the feed's sensor registers."""
    return f"{feed.name}__facility"


def build_feed_partitions(feed: Feed, daily: dg.DailyPartitionsDefinition
                          ) -> dg.PartitionsDefinition:
    """`daily`, or date by facility (dynamic) for feeds declaring `[date, facility]`."""
    if feed.partitions == ("date", "facility"):
        facilities = dg.DynamicPartitionsDefinition(name=facility_partitions_name(feed))
        return dg.MultiPartitionsDefinition({"date": daily, "facility": facilities})
    return daily


def partition_key(feed: Feed, *, date: str, facility: str | None) -> str | dg.MultiPartitionKey:
    """The partition key of one arrival date (and facility, for facility-partitioned feeds)."""
    if feed.partitions == ("date", "facility"):
        if facility is None:
            raise ValueError(f"feed {feed.name} is partitioned by facility; a facility is needed")
        return dg.MultiPartitionKey({"date": date, "facility": facility})
    return date


def split_partition_key(feed: Feed, key: str | dg.MultiPartitionKey) -> tuple[str, str | None]:
    """The (date, facility) of a partition key; facility is None for date-only feeds."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims["date"], dims["facility"]
    if feed.partitions == ("date", "facility") and "|" in key:
        # Dagster orders dimensions by name: "date|facility".
        date, facility = str(key).split("|", 1)
        return date, facility
    return str(key), None
