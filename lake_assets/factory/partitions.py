"""Partitions: daily by arrival date, plus a dynamic facility dimension where a feed asks for it."""

from __future__ import annotations

import dagster as dg

from lake_assets.catalog.models import Feed

# The first arrival date the lake accepts; older archives are late data for this date's slice.
START_DATE = "2026-01-01"

# Run tags with which Dagster runs one run over a range of partitions.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

# end_offset=1: today's partition exists, since archives arriving today belong to it.
DAILY = dg.DailyPartitionsDefinition(start_date=START_DATE, timezone="UTC", end_offset=1)


def facility_partitions_name(feed: Feed) -> str:
    """Name of the dynamic facility partitions that the feed's sensor registers."""
    return f"{feed.name}__facility"


def build_feed_partitions(feed: Feed) -> dg.PartitionsDefinition:
    """Daily partitions, or date by facility (dynamic) for feeds declaring `[date, facility]`."""
    if feed.partitions == ("date", "facility"):
        facilities = dg.DynamicPartitionsDefinition(name=facility_partitions_name(feed))
        return dg.MultiPartitionsDefinition({"date": DAILY, "facility": facilities})
    return DAILY


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
