"""The reconciler inside each feed sensor: every requested archive ends in the manifest.

A batch the cursor still holds (its archives are not in the manifest) and that no live run holds
is looked at through its runs: never run (the request was lost with the daemon) - request it
again; failed for a reason other than its data - request it again after a backoff; failed on
its data, or `retry.max_attempts` times - record its archives as dead letters. Dead letters an
operator marked for replay (`lakehouse deadletter replay`) are requested the same way.

Every request of a batch carries the same batch id and the same archives as its first run, so
the Delta app transactions keep it exactly-once even if a dead run committed some tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg

from lake_assets.catalog.models import Feed
from lake_assets.factory.batching import SETTLED, Batch, FeedCursor, archive_token
from lake_assets.factory.failures import RunFault, run_fault
from lake_assets.factory.run_tags import ATTEMPT_TAG, BATCH_TAG, FEED_TAG, REPLAY_TAG
from lake_assets.storage.landing import LandedArchive, locate
from lake_assets.storage.manifest import DEAD_LETTER, REPLAY, Manifest, ManifestRow

FAILED = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
# Queued, starting, running, suspended, canceling...: a run that may still commit its batch.
LIVE = [s for s in dg.DagsterRunStatus if s not in {*FAILED, dg.DagsterRunStatus.SUCCESS}]
# Dead letters and replays live in the manifest; reading them costs a scan of the feed's rows.
OUTSTANDING_EVERY_S = 30.0


@dataclass(frozen=True)
class Retry:
    """A batch to request again: the same id and archives, a new run key."""

    batch: Batch
    attempt: int
    run_key: str
    tags: dict[str, str]


@dataclass(frozen=True)
class DeadLetter:
    """A batch recorded as dead letters this tick, for the sensor's log."""

    batch_id: str
    archives: int
    attempts: int
    fault: RunFault


@dataclass
class Recovery:
    """What one tick of the reconciler decided, and the backlog it saw."""

    retries: list[Retry] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    retrying: int = 0  # archives of batches that failed once and are due another run
    outstanding: int | None = None  # dead-lettered archives, when the manifest was read


@dataclass(frozen=True)
class _Attempts:
    """The runs of one batch (newest first) and the archives its runs load."""

    runs: list[dg.RunRecord]
    paths: list[str]

    @property
    def failed(self) -> list[dg.RunRecord]:
        return [r for r in self.runs if r.dagster_run.status in FAILED]


def recover(
    instance: dg.DagsterInstance, feed: Feed, cursor: FeedCursor, listing: list[LandedArchive],
    manifest: Manifest, *, now: float,
) -> Recovery:
    """Settle, retry or dead-letter the batches the cursor holds, and the feed's replays.

    Updates `cursor` (settled and dead-lettered archives leave their batch) and returns the
    batches to request again.
    """
    recovery = Recovery()
    live = live_batches(instance, feed)
    landed = {archive_token(a.path): a for a in listing}
    idle = {b: t for b, t in cursor.unsettled().items() if b not in live}
    if idle:
        _settle(cursor, feed, idle, landed, manifest)
    for batch_id, tokens in cursor.unsettled().items():
        archives = [landed[t] for t in tokens if t in landed]
        if batch_id in live:
            recovery.retrying += len(tokens) if live[batch_id] > 1 else 0
            continue
        attempts = _attempts(instance, feed, batch_id, after=None, fallback=archives)
        _decide(instance, feed, cursor, recovery, manifest, batch_id, attempts, now=now,
                landed={a.path: a for a in listing}, replay=None)
    if now - cursor.checked_at >= OUTSTANDING_EVERY_S:
        cursor.checked_at = now
        _replays(instance, feed, cursor, recovery, manifest, live, now=now)
    return recovery


def live_batches(instance: dg.DagsterInstance, feed: Feed) -> dict[str, int]:
    """Batches of the feed with a run queued, starting or running, and that run's attempt."""
    records = instance.get_run_records(dg.RunsFilter(tags={FEED_TAG: feed.name}, statuses=LIVE))
    return {r.dagster_run.tags[BATCH_TAG]: int(r.dagster_run.tags.get(ATTEMPT_TAG, "1"))
            for r in records if BATCH_TAG in r.dagster_run.tags}


def _settle(cursor: FeedCursor, feed: Feed, idle: dict[str, set[str]],
            landed: dict[str, LandedArchive], manifest: Manifest) -> None:
    """Mark the archives of idle batches that the manifest holds as settled."""
    archives = [landed[t] for tokens in idle.values() for t in tokens if t in landed]
    if not archives:
        return
    known = manifest.known(feed.name, {a.arrival_date for a in archives},
                           [a.path for a in archives])
    cursor.mark([a for a in archives if a.path in known], SETTLED)


def _attempts(instance: dg.DagsterInstance, feed: Feed, batch_id: str, *,
              after: float | None, fallback: list[LandedArchive]) -> _Attempts:
    """The batch's runs (created after `after`, if given) and the archives they load: those
    of its first run's config, else `fallback`."""
    records = instance.get_run_records(
        dg.RunsFilter(tags={FEED_TAG: feed.name, BATCH_TAG: batch_id}))
    if after is not None:
        records = [r for r in records if r.create_timestamp.timestamp() >= after]
    paths = _config_archives(records[-1].dagster_run) if records else None
    return _Attempts(list(records), paths or sorted(a.path for a in fallback))


def _config_archives(run: dg.DagsterRun) -> list[str] | None:
    for op in (run.run_config or {}).get("ops", {}).values():
        archives = (op.get("config") or {}).get("archives")
        if archives:
            return list(archives)
    return None


def _decide(
    instance: dg.DagsterInstance, feed: Feed, cursor: FeedCursor, recovery: Recovery,
    manifest: Manifest, batch_id: str, attempts: _Attempts, *, now: float,
    landed: dict[str, LandedArchive], replay: tuple[float, int] | None,
) -> None:
    """Request the batch again, wait out its backoff, or dead-letter it."""
    archives = [landed.get(p) or _located(feed, p) for p in attempts.paths]
    if any(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in attempts.runs):
        # A run of the batch succeeded without recording these: no data of theirs went in
        # under this batch id, so they are new archives for a batch of their own.
        if replay is None:
            cursor.forget_batch(batch_id)
        return
    if not archives:
        cursor.forget_batch(batch_id)  # nothing landed is left to load
        return
    failed = attempts.failed
    done = replay[1] if replay else 0  # attempts before the replay, for the manifest
    if not failed:
        recovery.retries.append(_retry(feed, batch_id, archives, 1 + done, replay))
        return
    fault = run_fault(instance, failed[0].dagster_run)
    if not fault.retryable or len(failed) >= feed.retry.max_attempts:
        rows = dead_letter_rows(feed, batch_id, archives, fault, attempts=len(failed) + done,
                                now=now)
        if manifest.dead_letter(feed.name, batch_id, rows):
            recovery.dead_letters.append(
                DeadLetter(batch_id, len(archives), len(failed) + done, fault))
        if replay is None:
            cursor.mark(archives, SETTLED)
        return
    recovery.retrying += len(archives)
    ended = failed[0].end_time or failed[0].update_timestamp.timestamp()
    if now >= ended + feed.retry.wait(len(failed)).total_seconds():
        recovery.retries.append(
            _retry(feed, batch_id, archives, len(failed) + 1 + done, replay))


def _replays(
    instance: dg.DagsterInstance, feed: Feed, cursor: FeedCursor, recovery: Recovery,
    manifest: Manifest, live: dict[str, int], *, now: float,
) -> None:
    """Request the batches an operator asked to replay; count the feed's dead letters."""
    rows = manifest.outstanding(feed.name).to_pylist()
    recovery.outstanding = sum(r["status"] == DEAD_LETTER for r in rows)
    batches: dict[str, list[dict]] = {}
    for row in rows:
        if row["status"] == REPLAY:
            batches.setdefault(row["batch_id"], []).append(row)
    for batch_id, members in sorted(batches.items()):
        if batch_id in live:
            recovery.retrying += len(members)
            continue
        asked = max(r["committed_at"] for r in members).timestamp()
        before = max((r["attempts"] or 0) for r in members)
        attempts = _attempts(instance, feed, batch_id, after=asked, fallback=[])
        attempts = _Attempts(attempts.runs, sorted(r["path"] for r in members))
        _decide(instance, feed, cursor, recovery, manifest, batch_id, attempts, now=now,
                landed={}, replay=(asked, before))


def _retry(feed: Feed, batch_id: str, archives: list[LandedArchive], attempt: int,
           replay: tuple[float, int] | None) -> Retry:
    batch = Batch(batch_id, feed.name, archives[0].arrival_date, tuple(sorted(archives)))
    tags = {ATTEMPT_TAG: str(attempt)}
    key = f"{feed.name}:{batch_id}:{attempt}"
    if replay is not None:
        tags[REPLAY_TAG] = str(int(replay[0]))
        key = f"{feed.name}:{batch_id}:replay-{int(replay[0])}:{attempt}"
    return Retry(batch, attempt, key, tags)


def _located(feed: Feed, path: str) -> LandedArchive:
    date, hour, facility = locate(feed, path)
    return LandedArchive(path, 0, facility, date, hour)


def dead_letter_rows(
    feed: Feed, batch_id: str, archives: Iterable[LandedArchive], fault: RunFault, *,
    attempts: int, now: float,
) -> list[ManifestRow]:
    """Manifest rows recording `archives` as dead letters with the batch's last error."""
    stamp = datetime.fromtimestamp(now, UTC)
    return [
        ManifestRow(
            path=a.path, size=a.size, sha256="", feed=feed.name, facility=a.facility,
            arrival_date=a.arrival_date, batch_id=batch_id, status=DEAD_LETTER, rows=0,
            bad_rows=0, rows_by_table="{}", reason=fault.error, message=fault.message,
            ingested_at=None, committed_at=stamp, attempts=attempts,
        )
        for a in archives
    ]
