"""The `facility_silence` check of each feed, and the schedule that runs it on its own.

Dagster's freshness policy sees a table, which stays fresh while one facility goes quiet. This
check reads the manifest (`checks.silence`) and names the facilities that stopped sending. It
sits on the feed's first bronze table, so a feed alerts once, not once per table.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence

import dagster as dg

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.models import Feed
from lake_assets.checks import facility_cadences, silent_facilities
from lake_assets.checks.silence import HISTORY_DAYS, FacilityCadence
from lake_assets.factory.alert_findings import duration_text
from lake_assets.factory.specs import bronze_key
from lake_assets.resources import DeltaLake

SILENCE_CHECK = "facility_silence"
SCHEDULE_NAME = "facility_silence"
CRON = "*/15 * * * *"
_LISTED = 10


def build_silence_checks(
    catalog: Catalog, *, clock: Callable[[], float] = time.time
) -> list[dg.AssetChecksDefinition]:
    """A `facility_silence` check per feed; `clock` (epoch seconds) is for tests."""
    return [_silence_check(feed, clock) for feed in catalog.feeds]


def build_silence_schedule(checks: Sequence[dg.AssetChecksDefinition]) -> dg.ScheduleDefinition:
    """Runs every silence check each quarter hour, on by default; no asset materializes."""
    return dg.ScheduleDefinition(
        name=SCHEDULE_NAME,
        cron_schedule=CRON,
        target=dg.AssetSelection.checks(*checks),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Checks every feed for facilities that stopped sending archives.",
    )


def _silence_check(feed: Feed, clock: Callable[[], float]) -> dg.AssetChecksDefinition:
    window = duration_text(feed.silence_after.total_seconds()) if feed.silence_after else None

    @dg.asset_check(
        asset=bronze_key(feed, feed.tables[0]),
        name=SILENCE_CHECK,
        description=(
            f"Facilities of feed `{feed.name}` that delivered nothing for longer than "
            f"{f'{window} or ' if window else ''}three times their usual gap between "
            "deliveries, whichever is shorter."
        ),
    )
    def _silence(lake: DeltaLake) -> dg.AssetCheckResult:
        now = dt.datetime.fromtimestamp(clock(), dt.UTC)
        since = now.date() - dt.timedelta(days=HISTORY_DAYS)
        deliveries = lake.open().manifest().deliveries(feed.name, since=since)
        cadences = facility_cadences(deliveries, silence_after=feed.silence_after)
        return silence_result(feed, cadences, now=now)

    return _silence


def silence_result(
    feed: Feed, cadences: list[FacilityCadence], *, now: dt.datetime
) -> dg.AssetCheckResult:
    """Fails (WARN) when any facility is silent; metadata lists them, longest silent first."""
    silent = silent_facilities(cadences, now=now)
    metadata: dict[str, object] = {
        "failing_count": len(silent),
        "facilities_seen": len(cadences),
        "silent_facilities": dg.MetadataValue.json([
            {
                "facility": c.facility,
                "last_delivery": c.last_delivery.isoformat(),
                "quiet_for": duration_text(c.quiet_for(now).total_seconds()),
                "window": duration_text(c.window.total_seconds()),
            }
            for c in silent
        ]),
    }
    if len(silent) == 1:
        metadata["facility"] = silent[0].facility
    listed = ", ".join(
        f"{c.facility} quiet for {duration_text(c.quiet_for(now).total_seconds())}"
        for c in silent[:_LISTED])
    more = f" and {len(silent) - _LISTED} more" if len(silent) > _LISTED else ""
    return dg.AssetCheckResult(
        asset_key=bronze_key(feed, feed.tables[0]),
        check_name=SILENCE_CHECK,
        passed=not silent,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=f"{len(silent)} of {len(cadences)} facilities silent: {listed}{more}"
        if silent else f"all {len(cadences)} delivering facilities sent within their window",
    )
