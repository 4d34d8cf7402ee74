"""Bronze assets: one multi-asset per feed, materializing every table of the feed from one batch."""

import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pyarrow as pa
from pydantic import Field

from lake_assets.catalog.models import Feed
from lake_assets.catalog.versions import bronze_version
from lake_assets.checks import CheckTally
from lake_assets.errors import BronzeRunError
from lake_assets.factory.checks import (
    check_results,
    drift_check_spec,
    drift_result,
    table_check_specs,
)
from lake_assets.factory.partitions import build_feed_partitions, split_partition_key
from lake_assets.factory.report import BatchReport, manifest_rows, table_size
from lake_assets.factory.run_tags import ATTEMPT_TAG
from lake_assets.factory.specs import bronze_key, build_bronze_specs
from lake_assets.resources import DeltaLake
from lake_assets.storage.batch import (
    ARRIVAL,
    BatchArchive,
    BatchOutcome,
    BatchSpec,
    Output,
    bronze_row_schema,
    load_batch,
    quarantine_row_schema,
)
from lake_assets.storage.delta import CommitPlan, discard
from lake_assets.storage.lake import Lake
from lake_assets.storage.landing import LandingZone, landing_root, locate, open_landing
from lake_assets.storage.secrets import get_secret


class BronzeBatch(dg.Config):
    """The archives a run loads. Left empty (a re-run from the UI) it reloads the whole partition
    and replaces its slice."""

    batch_id: str = ""
    archives: list[str] = Field(default_factory=list)


def build_bronze_assets(feed: Feed, *, source_file: str, daily: dg.DailyPartitionsDefinition
                        ) -> dg.AssetsDefinition:
    """The feed's bronze multi-asset: one Spark pass over a batch, one commit per table; its
    days are `daily`'s."""

    partitions = build_feed_partitions(feed, daily)

    @dg.multi_asset(
        name=f"bronze__{feed.name}",
        specs=build_bronze_specs(feed, source_file=source_file, daily=daily),
        check_specs=[spec for table in feed.tables
                     for spec in [*table_check_specs(bronze_key(feed, table), table, partitions),
                                  drift_check_spec(bronze_key(feed, table), partitions)]],
        partitions_def=partitions,
        # Outputs become optional: a replayed batch that is already loaded reports no checks.
        can_subset=True,
        pool=f"feed_{feed.name}",
        op_tags={"lake/feed": feed.name},
    )
    def _bronze(
        context: dg.AssetExecutionContext, config: BronzeBatch, lake: DeltaLake
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        # A run of some tables (a subset picked in the UI) still loads the whole feed; it
        # reports only what was selected.
        assets, checks = context.selected_asset_keys, context.selected_asset_check_keys
        for result in ingest(context, feed, config, lake.open()):
            if isinstance(result, dg.AssetCheckResult):
                if dg.AssetCheckKey(result.asset_key, result.check_name) in checks:
                    yield result
            elif result.asset_key in assets:
                yield result

    return _bronze


def ingest(
    context: dg.AssetExecutionContext, feed: Feed, config: BronzeBatch, lake: Lake
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Load the run's batch (or its whole partition) into bronze, quarantine and the manifest.

    A run covers one arrival date; for a facility-partitioned feed, a range of facilities.
    """
    date, facilities = _run_partitions(context, feed)
    zone = open_landing(landing_root())
    rerun = not config.archives
    batch_id = config.batch_id or f"{date.replace('-', '')}-rerun-{context.run.run_id[:8]}"
    manifest = lake.manifest()
    if not rerun and manifest.committed(feed.name, batch_id):
        context.log.info(f"batch {batch_id} of {feed.name} is already loaded; nothing to do")
        yield from _unchanged(feed, batch_id)
        return
    archives = _batch_archives(zone, feed, config, date=date, facilities=facilities)
    context.log.info(f"{feed.name} batch {batch_id}: {len(archives)} archives for {date}")
    started = time.monotonic()
    report = _load(context, feed, lake, zone, archives, batch_id=batch_id, rerun=rerun,
                   slice_=_slice(date, facilities))
    checks = _check_results(feed, report, facilities)
    if report.failed_rules:
        yield from checks
        broken = "; ".join(f"{t}: {', '.join(sorted(r))}" for t, r in report.failed_rules.items())
        raise dg.Failure(
            f"feed {feed.name} batch {batch_id}: rows broke rules whose action is fail "
            f"({broken}); nothing was committed",
            metadata={"batch_id": batch_id},
        )
    attempt = int(context.run.tags.get(ATTEMPT_TAG, "1"))  # > 1: a retry or a replay
    rows = manifest_rows(feed, batch_id, report.archives, ingested_at=report.ingested_at,
                         attempts=attempt)
    if rerun:
        manifest.replace_slice(feed.name, date, facilities, rows)
    else:
        manifest.record(feed.name, batch_id, rows)
    where = _typed_slice(date, facilities)
    sizes = {t.name: table_size(lake, bronze_key(feed, t).path, where=where,
                                code_version=bronze_version(feed, t)) for t in feed.tables}
    yield from report.results(feed, seconds=time.monotonic() - started, attempt=attempt,
                              sizes=sizes)
    yield from checks


def _check_results(
    feed: Feed, report: BatchReport, facilities: list[str] | None
) -> list[dg.AssetCheckResult]:
    """Each table's check results; a table with no good rows this batch passes its row rules."""
    named = facilities[0] if facilities is not None and len(facilities) == 1 else None
    results = []
    for table in feed.tables:
        key = bronze_key(feed, table)
        results += check_results(key, table, report.checks.get(table.name) or CheckTally(),
                                 facility=named)
        results.append(drift_result(key, table, report.archives))
    return results


def _run_partitions(
    context: dg.AssetExecutionContext, feed: Feed
) -> tuple[str, list[str] | None]:
    """The run's arrival date, and its facilities (None for a feed not split by facility)."""
    found = [split_partition_key(feed, key) for key in context.partition_keys]
    dates = sorted({date for date, _ in found})
    if len(dates) != 1:
        raise BronzeRunError(
            f"feed {feed.name}: a bronze run loads one arrival date, this one spans "
            f"{dates[0]}..{dates[-1]}; run each day on its own"
        )
    facilities = [f for _, f in found if f is not None]
    return dates[0], facilities if feed.partitions == ("date", "facility") else None


def _slice(date: str, facilities: list[str] | None) -> list[tuple]:
    where: list[tuple] = [(ARRIVAL, "=", date)]
    if facilities is not None:
        where.append(("_facility_id", "in", tuple(facilities)))
    return where


def _typed_slice(day: str, facilities: list[str] | None) -> list[tuple]:
    """`_slice` with the date typed as the partition column is, for file statistics."""
    return [(ARRIVAL, "=", date.fromisoformat(day)), *_slice(day, facilities)[1:]]


def _batch_archives(
    zone: LandingZone, feed: Feed, config: BronzeBatch, *, date: str,
    facilities: list[str] | None,
) -> list[BatchArchive]:
    if config.archives:
        located = [(path, locate(feed, path)) for path in config.archives]
        # Sizes from one listing per arrival hour: tasks keep same-size archives together, so
        # a re-send within the batch is seen (`batch.deal`).
        sizes = {a.path: a.size for day, hour in sorted({(loc[0], loc[1]) for _, loc in located})
                 for a in zone.archives(feed, day, hour)}
        return [BatchArchive(path, sizes.get(path, 0), loc[2], loc[0]) for path, loc in located]
    wanted = set(facilities) if facilities is not None else None
    return [
        BatchArchive(a.path, a.size, a.facility, a.arrival_date)
        for a in zone.archives(feed, date)
        if wanted is None or a.facility in wanted
    ]


def _load(
    context: dg.AssetExecutionContext,
    feed: Feed,
    lake: Lake,
    zone: LandingZone,
    archives: list[BatchArchive],
    *,
    batch_id: str,
    rerun: bool,
    slice_: list[tuple],
) -> BatchReport:
    now = datetime.now(UTC)
    secret = feed.archive.password_secret
    spec = BatchSpec(
        feed=feed,
        batch_id=batch_id,
        archives=tuple(archives),
        landing_root=zone.root,
        quarantine_root=lake.ref("quarantine").uri,
        password=get_secret(secret) if secret else None,
        ingested_at=now,
    )
    spec = replace(spec, committed=_committed(feed, lake, archives, rerun=rerun, slice_=slice_))
    plans = _plans(feed, lake, batch_id=batch_id, rerun=rerun, slice_=slice_)
    outcome = load_batch(lake.session, spec, {o: p.spec for o, p in plans.items()})
    context.log.info(f"{feed.name} batch {batch_id}: read {len(outcome.archives)} archives, "
                     f"wrote {len(outcome.all_files())} files; committing")
    report = BatchReport(ingested_at=now, archives=outcome.archives,
                         bad_reasons=outcome.bad_reasons, checks=outcome.checks,
                         failed_rules=outcome.failed_rules)
    if outcome.failed_rules:  # the run fails: commit nothing
        _discard(plans, outcome, plans)
        return report
    pending = dict(plans)
    try:
        for output, plan in plans.items():
            added = outcome.added_columns.get(output)
            if added:
                plan = _widened(plan, added)
            report.writes[output] = lake.commit_files(plan, outcome.files.get(output, []))
            del pending[output]
            if output[0] == "bronze":
                context.log.info(f"{feed.name}.{output[1]}: {report.writes[output]}")
    finally:
        _discard(plans, outcome, pending)  # what could not commit leaves no files behind
    return report


def _committed(feed: Feed, lake: Lake, archives: list[BatchArchive], *, rerun: bool,
               slice_: list[tuple]) -> dict[str, str]:
    """SHA-256 -> path of the feed's archives committed within `resend.within` of the batch's
    arrival date, except those of a slice this run replaces."""
    if not archives:
        return {}
    day = date.fromisoformat(archives[0].arrival_date)
    since = day - timedelta(days=feed.resend.within.days)
    facilities = next((list(v) for c, _, v in slice_ if c == "_facility_id"), None)
    replaced = (day.isoformat(), facilities) if rerun else None
    return lake.manifest().digests(feed.name, since=since, replaced=replaced)


def _discard(
    plans: dict[Output, CommitPlan], outcome: BatchOutcome, outputs: Iterable[Output]
) -> None:
    for output in outputs:
        discard(plans[output].spec, [f.path for f in outcome.files.get(output, [])])


def _plans(
    feed: Feed, lake: Lake, *, batch_id: str, rerun: bool, slice_: list[tuple]
) -> dict[Output, CommitPlan]:
    """One commit plan per (layer, table): appended under the batch's app transaction, or (a
    re-run) replacing the partition's slice."""
    plans = {}
    for table in feed.tables:
        names = {
            "bronze": (bronze_key(feed, table).path, bronze_row_schema(feed, table.name)),
            "quarantine": (["quarantine", feed.name, table.name], quarantine_row_schema()),
        }
        for layer, (name, schema) in names.items():
            if rerun:
                plan = lake.plan_files(name, schema, mode="overwrite", replace_where=slice_,
                                       partition_by=[ARRIVAL])
            else:
                plan = lake.plan_files(name, schema, partition_by=[ARRIVAL],
                                       app_txn=(f"{'/'.join(name)}/{batch_id}", 1))
            plans[(layer, table.name)] = plan
    return plans


def _widened(plan: CommitPlan, columns: list[str]) -> CommitPlan:
    """`plan` adding the string columns tasks found (`schema_evolution: add_columns`)."""
    schema = plan.spec.schema
    for name in dict.fromkeys(columns):
        if schema.get_field_index(name) < 0:
            schema = schema.append(pa.field(name, pa.string()))
    return replace(plan, spec=replace(plan.spec, schema=schema), evolve=True)


def _unchanged(feed: Feed, batch_id: str) -> Iterator[dg.MaterializeResult]:
    for table in feed.tables:
        yield dg.MaterializeResult(
            asset_key=bronze_key(feed, table),
            metadata={"batch_id": batch_id, "skipped_as_already_loaded": True},
        )
