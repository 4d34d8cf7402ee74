"""One sensor per feed: list new archives in the open hours, batch them, request one run each;
and reconcile what earlier runs left (`factory.recovery`): retry, dead-letter, replay."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg

from lake_assets.catalog.models import Feed
from lake_assets.factory.batching import SETTLED, Batch, FeedCursor, hour_of, plan_batches
from lake_assets.factory.partitions import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    facility_partitions_name,
    first_day,
    partition_key,
)
from lake_assets.factory.recovery import Recovery, recover
from lake_assets.factory.run_tags import (
    ATTEMPT_TAG,
    BATCH_TAG,
    FEED_TAG,
    MAX_RUNTIME_TAG,
    NO_DAGSTER_RETRIES,
)
from lake_assets.storage.landing import LandedArchive, LandingZone, landing_root, open_landing
from lake_assets.storage.manifest import Manifest

__all__ = ["FEED_TAG", "batch_run_config", "build_feed_sensor", "ingest_job_name",
           "listed_archives"]

# Run requests per tick; the rest wait for the next tick, which keeps ticks short.
MAX_RUNS_PER_TICK = 25
TICK_SECONDS = 15

# A feed's runs that have not started: while one waits, new archives wait for the batch after it.
WAITING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
           dg.DagsterRunStatus.STARTING]


def batch_run_config(op_name: str, batch: Batch) -> dict:
    """Run config handing a batch's archives to the feed's bronze op."""
    archives = [a.path for a in batch.archives]
    return {"ops": {op_name: {"config": {"batch_id": batch.batch_id, "archives": archives}}}}


def listed_archives(
    zone: LandingZone, feed: Feed, cursor: FeedCursor
) -> tuple[list[LandedArchive], list[str]]:
    """Every archive of the hours the cursor has not sealed; and those hours."""
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
            found.extend(zone.archives(feed, date, hour))
    return found, hours


def new_archives(
    zone: LandingZone, feed: Feed, cursor: FeedCursor
) -> tuple[list[LandedArchive], list[str]]:
    """Archives not yet requested, from hours the cursor has not sealed; and the hours listed."""
    found, hours = listed_archives(zone, feed, cursor)
    return [a for a in found if cursor.is_new(a)], hours


def ingest_job_name(feed: Feed) -> str:
    """The job that runs a feed's bronze batches."""
    return f"ingest_{feed.name}"


def build_feed_sensor(
    feed: Feed, bronze: dg.AssetsDefinition, manifest: Callable[[], Manifest]
) -> dg.SensorDefinition:
    """The sensor that turns a feed's new archives into bronze runs, and requests again what
    earlier runs failed to load (on by default). `manifest` opens the ingestion manifest."""
    op_name = bronze.op.name
    keys = sorted(bronze.keys)
    assert bronze.partitions_def is not None
    first = first_day(bronze.partitions_def)
    # A job per feed: its runs name their assets, and the run timeline has a row per feed.
    job = dg.define_asset_job(
        name=ingest_job_name(feed), selection=dg.AssetSelection.assets(bronze),
        description=f"Loads a batch of {feed.name} archives into bronze (requested by "
                    f"{feed.name}_arrivals).")

    @dg.sensor(
        name=f"{feed.name}_arrivals",
        target=job,
        minimum_interval_seconds=TICK_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Requests bronze runs for new {feed.name} archives in the landing zone, "
                    "and again for batches whose runs failed; dead-letters what keeps failing.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        if _waiting(context, feed):
            # Runs of a feed go one at a time (dagster.yaml), and each costs seconds of start-up
            # and bookkeeping: one run for what lands meanwhile beats a queue of small ones.
            # While a run executes, the next one may wait behind it, so it starts as soon as the
            # slot frees instead of a tick later. A queued run never waits forever: the
            # `lake_run_health` sensor fails runs whose process died, freeing their slots.
            return dg.SensorResult(skip_reason=f"a {feed.name} run is waiting to start; new "
                                               "archives go into the batch after it",
                                   cursor=context.cursor)
        cursor = FeedCursor.parse(context.cursor)
        ledger = manifest()
        listing, _ = listed_archives(open_landing(landing_root()), feed, cursor)
        recovery = recover(context.instance, feed, cursor, listing, ledger, now=time.time())
        _log(context, feed, recovery)
        early = [a for a in listing if a.arrival_date < first]
        if early:
            # No partition holds them; their hours stay open, so they load once a reload
            # covers their dates.
            context.log.warning(
                f"{feed.name}: {len(early)} archives arrived before {first}, the first day of "
                f"the partitions (oldest: {min(a.arrival_date for a in early)}); set "
                f"start_date in {feed.name}'s metadata to that day or earlier and reload")
        chosen, left = _new_batches(feed, cursor, [a for a in listing if a.arrival_date >= first],
                                    ledger,
                                    room=max(MAX_RUNS_PER_TICK - len(recovery.retries), 0),
                                    waiting=frozenset(hour_of(a) for a in early))
        retried = [r.batch for r in recovery.retries]
        facilities = _facility_order(context, feed, [*retried, *chosen])
        requests = [_run_request(feed, op_name, r.batch, facilities, run_key=r.run_key,
                                 tags=r.tags) for r in recovery.retries]
        requests += [_run_request(feed, op_name, b, facilities) for b in chosen]
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=facilities.requests,
            asset_events=_backlog(cursor, recovery, keys,
                                  waiting=sum(len(b.archives) for b in left) + len(early)),
            cursor=cursor.serialize(),
        )

    return _sensor


def _new_batches(
    feed: Feed, cursor: FeedCursor, listing: list[LandedArchive], ledger: Manifest, *, room: int,
    waiting: frozenset[str] = frozenset(),
) -> tuple[list[Batch], list[Batch]]:
    """Batches of the archives never requested that the manifest does not hold: those to
    request now (at most `room`, marked in the cursor) and those left for a later tick. Hours
    in `waiting` stay open too."""
    archives = [a for a in listing if cursor.is_new(a)]
    loaded = ledger.known(feed.name, {a.arrival_date for a in archives},
                          [a.path for a in archives]) if archives else set()
    batches = plan_batches(
        feed, [a for a in archives if a.path not in loaded], first_number=cursor.next_batch
    )
    chosen, left = batches[:room], batches[room:]
    for batch in chosen:
        cursor.mark(list(batch.archives), batch.batch_id)
    cursor.mark([a for a in archives if a.path in loaded], SETTLED)
    cursor.next_batch += len(chosen)
    cursor.seal(datetime.now(UTC),
                incomplete={hour_of(a) for b in left for a in b.archives} | waiting)
    return chosen, left


def _waiting(context: dg.SensorEvaluationContext, feed: Feed) -> bool:
    """Whether a run of `feed` is queued or starting."""
    runs = context.instance.get_run_records(
        dg.RunsFilter(tags={FEED_TAG: feed.name}, statuses=WAITING), limit=1)
    return bool(runs)


def _log(context: dg.SensorEvaluationContext, feed: Feed, recovery: Recovery) -> None:
    for retry in recovery.retries:
        context.log.info(f"{feed.name} batch {retry.batch.batch_id}: requesting attempt "
                         f"{retry.attempt} for {len(retry.batch.archives)} archives")
    for dead in recovery.dead_letters:
        context.log.warning(
            f"{feed.name} batch {dead.batch_id}: {dead.archives} archives dead-lettered after "
            f"{dead.attempts} attempts ({dead.fault.kind}: {dead.fault.error}: "
            f"{dead.fault.message})")


def _backlog(
    cursor: FeedCursor, recovery: Recovery, keys: list[dg.AssetKey], *, waiting: int
) -> list[dg.AssetObservation]:
    """Observations of the feed's backlog on its bronze assets, when the figures changed.

    pending: requested or landed archives not in the manifest yet; retrying: those of batches
    that failed before; dead_lettered: archives whose processing failed every attempt.
    """
    dead = recovery.outstanding
    if dead is None:
        dead = cursor.backlog.get("archives_dead_lettered", 0) + sum(
            d.archives for d in recovery.dead_letters)
    figures = {
        "archives_pending": sum(len(t) for t in cursor.unsettled().values()) + waiting,
        "archives_retrying": recovery.retrying,
        "archives_dead_lettered": dead,
    }
    if figures == cursor.backlog:
        return []
    cursor.backlog = figures
    return [dg.AssetObservation(asset_key=key, metadata=dict(figures)) for key in keys]


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
    feed: Feed, op_name: str, batch: Batch, facilities: FacilityOrder, *,
    run_key: str | None = None, tags: dict[str, str] | None = None,
) -> dg.RunRequest:
    """One run per batch. A batch from several facilities of a facility-partitioned feed runs
    over the range of facility partitions from its first to its last in registration order;
    facilities in between that sent nothing are materialized with no new rows."""
    tags = {FEED_TAG: feed.name, BATCH_TAG: batch.batch_id, ATTEMPT_TAG: "1",
            MAX_RUNTIME_TAG: str(int(feed.retry.run_timeout.total_seconds())),
            **NO_DAGSTER_RETRIES, **(tags or {})}
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
        run_key=run_key or f"{feed.name}:{batch.batch_id}",
        partition_key=key,
        run_config=batch_run_config(op_name, batch),
        tags=tags,
    )
