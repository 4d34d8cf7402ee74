"""One sensor per feed: list new archives in the open hours, batch them, request one run each."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg

from lake_assets.catalog.models import Feed
from lake_assets.factory.batching import Batch, FeedCursor, plan_batches
from lake_assets.factory.partitions import facility_partitions_name, partition_key
from lake_assets.settings import landing_root
from resources.landing import LandedArchive, LandingZone, open_landing

# Runs requested per tick; the rest wait for the next tick, which keeps ticks short.
MAX_RUNS_PER_TICK = 25
TICK_SECONDS = 15

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
        return dg.SensorResult(
            run_requests=[_run_request(feed, op_name, b) for b in chosen],
            dynamic_partitions_requests=_new_facilities(context, feed, chosen),
            cursor=cursor.serialize(),
        )

    return _sensor


def _run_request(feed: Feed, op_name: str, batch: Batch) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"{feed.name}:{batch.batch_id}",
        partition_key=partition_key(feed, date=batch.arrival_date, facility=batch.facility),
        run_config=batch_run_config(op_name, batch),
        tags={"lake/feed": feed.name, "lake/batch": batch.batch_id},
    )


def _new_facilities(
    context: dg.SensorEvaluationContext, feed: Feed, batches: list[Batch]
) -> list[dg.AddDynamicPartitionsRequest]:
    if feed.partitions != ("date", "facility"):
        return []
    name = facility_partitions_name(feed)
    registered = set(context.instance.get_dynamic_partitions(name))
    fresh = sorted({b.facility for b in batches if b.facility and b.facility not in registered})
    return [dg.AddDynamicPartitionsRequest(name, fresh)] if fresh else []
