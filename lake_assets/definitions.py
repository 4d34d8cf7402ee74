"""The one entry point: every asset, check, sensor and resource, built from `metadata/`.

`defs()` builds them when Dagster (or a test) asks: importing this module reads no environment
and no file. Building reads YAML and SQL, and lists the landing prefix of each feed that declares
no `start_date` (its oldest date folder starts the partitions): no Spark session starts and no
table is opened.
"""

from __future__ import annotations

import logging

import dagster as dg

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.loader import load_catalog, metadata_root
from lake_assets.factory.alerts import build_alert_sensor
from lake_assets.factory.automation import build_automation_sensor
from lake_assets.factory.bronze import build_bronze_assets
from lake_assets.factory.gold import build_gold_assets
from lake_assets.factory.maintenance import build_maintenance_job, build_maintenance_schedules
from lake_assets.factory.partitions import FALLBACK_START, daily_partitions, lake_start
from lake_assets.factory.run_health import build_run_health_sensor
from lake_assets.factory.sensors import build_feed_sensor
from lake_assets.factory.silence import build_silence_checks, build_silence_schedule
from lake_assets.factory.silver import build_silver_assets
from lake_assets.resources import AlertRouter, DeltaLake, SparkResource
from lake_assets.storage.landing import landing_root, open_landing
from lake_assets.storage.manifest import Manifest

_log = logging.getLogger(__name__)


def partitions_start(catalog: Catalog) -> str:
    """The lake's first partition day: `lake_start` over the feeds, each feed without a
    `start_date` looked up as the oldest date folder under its landing prefix. The product never
    removes archives from the landing zone; where something else prunes it, feeds declare
    `start_date`, or days already loaded would leave the partitions. A landing zone that cannot
    be listed (storage down at load) gives `FALLBACK_START` to every feed without `start_date`."""
    try:
        zone = open_landing(landing_root())
        return lake_start(catalog.feeds, lambda feed: next(iter(zone.dates(feed)), None))
    except Exception as error:
        _log.warning("landing zone not listed (%s: %s); feeds without start_date start their "
                     "partitions on %s", type(error).__name__, error, FALLBACK_START)
        return lake_start(catalog.feeds, lambda _: FALLBACK_START)


def build_definitions(catalog: Catalog) -> dg.Definitions:
    """Bronze, silver and gold assets with their checks; an arrival sensor per feed (which
    also retries and dead-letters failed batches), the automation sensor that updates silver
    and gold when their inputs land, the sensor failing runs whose process died, the facility
    silence checks and their schedule, table maintenance and its schedules, the alert router,
    and shared resources. Daily partitions start on `partitions_start`."""
    lake = DeltaLake(spark=SparkResource())
    daily = daily_partitions(partitions_start(catalog))
    bronze = {
        feed.name: build_bronze_assets(feed, source_file=catalog.file_of("feed", feed.name),
                                       daily=daily)
        for feed in catalog.feeds
    }

    def manifest() -> Manifest:
        return lake.open().manifest()

    assets = [*bronze.values(), *build_silver_assets(catalog, daily),
              *build_gold_assets(catalog, daily)]
    silence = build_silence_checks(catalog)
    sensors = [build_feed_sensor(feed, bronze[feed.name], manifest) for feed in catalog.feeds]
    sensors += [
        build_automation_sensor(),
        build_alert_sensor(catalog, [*assets, *silence],
                           outstanding=lambda: manifest().outstanding()),
        build_run_health_sensor(),
    ]
    maintenance = build_maintenance_job(catalog)
    schedules = [build_silence_schedule(silence), *build_maintenance_schedules(maintenance)]
    return dg.Definitions(
        assets=assets, asset_checks=silence, jobs=[maintenance], schedules=schedules,
        sensors=sensors, resources={"lake": lake, "alerts": AlertRouter()},
        # Every step of a run shares the run's one Spark session instead of starting its own.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The definitions of the metadata under $LAKE_METADATA (default: the project's)."""
    return build_definitions(load_catalog(metadata_root()))
