"""One sensor per feed: list new archives in the open hours, batch them, request one run each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg

from lake_assets.catalog.models import Feed
from lake_assets.factory.batching import Batch, FeedCursor, plan_batches
from lake_assets.factory.partitions import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    facility_partitions_name,
    partition_key,
)
from lake_assets.storage.landing import LandedArchive, LandingZone, landing_root, open_landing

# Runs requested per tick; the rest wait for the next tick, which keeps ticks short.
MAX_RUNS_PER_TICK = 25
TICK_SECONDS = 15
FEED_TAG = "lake/feed"  # dagster.yaml runs one run per value at a time

# A feed's runs that have not started: while one waits, new archives wait for the batch after it.
WAITING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
           dg.DagsterRunStatus.STARTING]

# Returns the subset of archive paths the ingestion manifest already holds.
KnownArchives = Callable[[Feed, list[LandedArchive]], set[str]]


def batch_run_config(op_name: str, batch: Batch) -> dict:
    """Run config handing a batch's archives to the feed's bronze op."""
    archives = [a.path for a in batch.archives]
    return {"ops": {op_name: {"config": {"batch_id": batch.batch_id, "archives": archives}}}}


def new_archives(
    zone: LandingZone, feed: Feed, cursor: FeedCursor
) -> tuple[list[LandedArchive], list[str]]:
    """Archives not yet requested, from hours the cursor has not sealed; and the hours listed."""
    found: list[LandedArchive] = []
    hours: list[str] = []
    for date in zone.dates(feed):
        if not cursor.wants_hour(f"{date}/23"):
            continue
        for hour in zone.hours(feed, date):
            hour_key = f"{date}/{hour}"
            if not cursor.wants_hour(hour_key):
                continue
            hours.append(hour_key)
            found.extend(a for a in zone.archives(feed, date, hour) if cursor.is_new(a))
    return found, hours


def build_feed_sensor(
    feed: Feed, bronze: dg.AssetsDefinition, known: KnownArchives
) -> dg.SensorDefinition:
    """The sensor that turns a feed's new archives into bronze runs (on by default)."""
    op_name = bronze.op.name

    @dg.sensor(
        name=f"{feed.name}_arrivals",
        target=bronze,
        minimum_interval_seconds=TICK_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Requests bronze runs for new {feed.name} archives in the landing zone.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        if _waiting(context, feed):
            # Runs of a feed go one at a time (dagster.yaml), and each costs seconds of start-up
            # and bookkeeping: one run for what lands meanwhile beats a queue of small ones.
            # While a run executes, the next one may wait behind it, so it starts as soon as the
            # slot frees instead of a tick later.
            return dg.SensorResult(skip_reason=f"a {feed.name} run is waiting to start; new "
                                               "archives go into the batch after it",
                                   cursor=context.cursor)
        cursor = FeedCursor.parse(context.cursor)
        archives, _ = new_archives(open_landing(landing_root()), feed, cursor)
        loaded = known(feed, archives) if archives else set()
        batches = plan_batches(
            feed, [a for a in archives if a.path not in loaded], first_number=cursor.next_batch
        )
        chosen, left = batches[:MAX_RUNS_PER_TICK], batches[MAX_RUNS_PER_TICK:]
        cursor.mark([a for b in chosen for a in b.archives])
        cursor.mark([a for a in archives if a.path in loaded])
        cursor.next_batch += len(chosen)
        cursor.seal(
            datetime.now(UTC),
            incomplete={f"{a.arrival_date}/{a.arrival_hour}" for b in left for a in b.archives},
        )
        facilities = _facility_order(context, feed, chosen)
        return dg.SensorResult(
            run_requests=[_run_request(feed, op_name, b, facilities) for b in chosen],
            dynamic_partitions_requests=facilities.requests,
            cursor=cursor.serialize(),
        )

    return _sensor


def _waiting(context: dg.SensorEvaluationContext, feed: Feed) -> bool:
    """Whether a run of `feed` is queued or starting."""
    runs = context.instance.get_run_records(
        dg.RunsFilter(tags={FEED_TAG: feed.name}, statuses=WAITING), limit=1)
    return bool(runs)


@dataclass
class FacilityOrder:
    """A facility-partitioned feed's facilities in registration order, and those to register."""

    position: dict[str, int] = field(default_factory=dict)
    requests: list[dg.AddDynamicPartitionsRequest] = field(default_factory=list)


def _facility_order(
    context: dg.SensorEvaluationContext, feed: Feed, batches: list[Batch]
) -> FacilityOrder:
    if feed.partitions != ("date", "facility"):
        return FacilityOrder()
    name = facility_partitions_name(feed)
    registered = list(context.instance.get_dynamic_partitions(name))
    known = set(registered)
    fresh = sorted({f for b in batches for f in b.facilities if f not in known})
    order = FacilityOrder({f: i for i, f in enumerate([*registered, *fresh])})
    if fresh:
        order.requests.append(dg.AddDynamicPartitionsRequest(name, fresh))
    return order


def _run_request(
    feed: Feed, op_name: str, batch: Batch, facilities: FacilityOrder
) -> dg.RunRequest:
    """One run per batch. A batch from several facilities of a facility-partitioned feed runs
    over the range of facility partitions from its first to its last in registration order;
    facilities in between that sent nothing are materialized with no new rows."""
    tags = {FEED_TAG: feed.name, "lake/batch": batch.batch_id}
    key: str | dg.MultiPartitionKey | None = None
    if feed.partitions != ("date", "facility"):
        key = partition_key(feed, date=batch.arrival_date, facility=None)
    else:
        ranked = sorted(batch.facilities, key=facilities.position.__getitem__)
        first, last = (partition_key(feed, date=batch.arrival_date, facility=f)
                       for f in (ranked[0], ranked[-1]))
        if first == last:
            key = first
        else:
            tags |= {RANGE_START_TAG: str(first), RANGE_END_TAG: str(last)}
    return dg.RunRequest(
        run_key=f"{feed.name}:{batch.batch_id}",
        partition_key=key,
        run_config=batch_run_config(op_name, batch),
        tags=tags,
    )
