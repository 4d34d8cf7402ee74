"""Table maintenance from metadata: the `lake_maintenance` job and its two schedules.

Every hour it compacts the sealed daily partitions of each table (Z-ordered by facility); once a
day it also checkpoints the logs and vacuums with the retention each feed or projection sets.
Each table's files, bytes and versions are recorded as an asset observation, so the UI plots
them day over day. Compaction commits with dataChange=false and touches sealed partitions only,
so it never races bronze appends of the open day.
"""

import datetime as dt
from collections.abc import Callable

import dagster as dg

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.models import Maintenance
from lake_assets.errors import DeltaConflictError, DeltaStorageError
from lake_assets.factory.batching import SEAL_AFTER
from lake_assets.factory.silver import deletes_table
from lake_assets.resources import DeltaLake
from lake_assets.storage.batch import ARRIVAL
from lake_assets.storage.manifest import MANIFEST_TABLE
from lake_assets.storage.upkeep import UpkeepSpec, upkeep

JOB_NAME = "lake_maintenance"
HOURLY_CRON = "20 * * * *"  # compaction of newly sealed partitions
DAILY_CRON = "40 3 * * *"  # checkpoints, expired logs and vacuum, in the quiet hours
FACILITY = "_facility_id"
MAINTENANCE_TAG = "lake/maintenance"  # dagster.yaml runs one maintenance run at a time


class MaintenanceConfig(dg.Config):
    """`tidy` adds checkpoints, log cleanup and vacuum to the compaction."""

    tidy: bool = False


def upkeep_specs(catalog: Catalog) -> list[tuple[dg.AssetKey | None, UpkeepSpec]]:
    """Every table the lake keeps, with the asset it belongs to (None for internal tables):
    bronze and quarantine per feed table, silver per table, gold per projection, and the
    manifest and delete logs."""
    found: list[tuple[dg.AssetKey | None, UpkeepSpec]] = []
    silver: dict[str, Maintenance] = {}
    for feed in catalog.feeds:
        if not feed.maintenance.enabled:
            continue
        zorder = feed.maintenance.zorder_by if feed.maintenance.zorder_by is not None \
            else (FACILITY,)
        keep = feed.maintenance.vacuum_hours
        for table in feed.tables:
            for layer in ("bronze", "quarantine"):
                key = dg.AssetKey([layer, feed.name, table.name]) if layer == "bronze" else None
                found.append((key, UpkeepSpec((layer, feed.name, table.name), ARRIVAL, True,
                                              zorder, keep)))
            silver.setdefault(table.name, feed.maintenance)
    for name, maintenance in silver.items():
        zorder = maintenance.zorder_by if maintenance.zorder_by is not None else (FACILITY,)
        found.append((dg.AssetKey(["silver", name]),
                      UpkeepSpec(("silver", name), None, False, zorder, maintenance.vacuum_hours)))
        found.append((None, UpkeepSpec(tuple(deletes_table(name).split("/")),
                                       vacuum_hours=maintenance.vacuum_hours)))
    for projection in catalog.projections:
        settings = projection.maintenance
        if settings.enabled:
            column = projection.partition_column if projection.partitions else None
            found.append((dg.AssetKey(["gold", projection.name]),
                          UpkeepSpec(("gold", projection.name), column, column is not None,
                                     settings.zorder_by or (), settings.vacuum_hours)))
    found.append((None, UpkeepSpec(tuple(MANIFEST_TABLE.split("/")), "feed")))
    return found


def build_maintenance_job(
    catalog: Catalog, *, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
) -> dg.JobDefinition:
    """The job that keeps every table of `catalog`; `clock` is for tests."""
    specs = upkeep_specs(catalog)

    @dg.op(name="keep_tables", tags={MAINTENANCE_TAG: "true"})
    def keep_tables(context: dg.OpExecutionContext, config: MaintenanceConfig,
                    lake: DeltaLake) -> None:
        tables = lake.open()
        sealed_before = (clock() - SEAL_AFTER).date()
        failed = []
        for index, (key, spec) in enumerate(specs, start=1):
            try:
                done = upkeep(tables, spec, sealed_before=sealed_before, tidy=config.tidy)
            except DeltaConflictError as exc:
                context.log.info(f"{exc}")
                continue
            except DeltaStorageError as exc:
                context.log.error(f"{'/'.join(spec.table)}: {exc}")
                failed.append("/".join(spec.table))
                continue
            if done is None:
                continue
            if key is not None:
                context.log_event(dg.AssetObservation(asset_key=key,
                                                      metadata=done.as_metadata()))
            if done.compacted or config.tidy:
                context.log.info(f"[{index}/{len(specs)}] {done.table}: "
                                 f"{done.before.files} -> {done.after.files} files, "
                                 f"{len(done.compacted)} partitions compacted")
        if failed:
            raise dg.Failure(f"maintenance failed for {len(failed)} table(s): "
                             f"{', '.join(failed)}; the others were kept")

    @dg.job(name=JOB_NAME, tags={MAINTENANCE_TAG: "true"},
            description="Compacts sealed partitions; daily it also checkpoints and vacuums.")
    def lake_maintenance() -> None:
        keep_tables()

    return lake_maintenance


def build_maintenance_schedules(job: dg.JobDefinition) -> list[dg.ScheduleDefinition]:
    """Hourly compaction and daily tidying, both on by default."""
    tidy = {"ops": {"keep_tables": {"config": {"tidy": True}}}}
    return [
        dg.ScheduleDefinition(name=f"{JOB_NAME}_hourly", cron_schedule=HOURLY_CRON, job=job,
                              default_status=dg.DefaultScheduleStatus.RUNNING,
                              description="Compacts sealed daily partitions."),
        dg.ScheduleDefinition(name=f"{JOB_NAME}_daily", cron_schedule=DAILY_CRON, job=job,
                              run_config=tidy, default_status=dg.DefaultScheduleStatus.RUNNING,
                              description="Compaction, checkpoints, expired logs and vacuum."),
    ]
