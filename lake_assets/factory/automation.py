"""Declarative automation: silver and gold update themselves when what they read updates."""

from __future__ import annotations

import os

import dagster as dg

SENSOR_NAME = "lake_automation"
# Silver merges are the heaviest runs, and each costs about as much for a few new archives as
# for many. Every 30 s, under steady landing a silver/gold run was always in progress and took
# one of the two cores that bronze runs need (p95 landing-to-bronze 57 s); every 5 minutes
# merges more at once. The freshness SLAs in metadata are an hour or more.
INTERVAL_SECONDS = 300
# A small or idle lake (`lakehouse run`'s demo) sets a shorter interval, so a newcomer sees
# silver and gold within minutes; the batching above is for production load.
INTERVAL_VARIABLE = "LAKE_AUTOMATION_INTERVAL_S"
DOWNSTREAM_TAG = "lake/downstream"

# A dependency partition whose latest evaluation of a blocking check failed. Dagster stops the
# rest of a run after a blocking check fails; silver and gold update in later runs, so this
# keeps them from starting on blocked data. A check never evaluated does not block.
BLOCKED = dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.any_checks_match(
        dg.AutomationCondition.check_failed(), blocking_only=True
    ).with_label("a blocking check failed")
).with_label("a dependency's blocking check failed")

# `eager()` without its latest-time-window and missing-dependency clauses: a day's late
# arrivals must still reach silver, and a [date, facility] feed always has facilities that
# sent nothing that day (their bronze partitions stay missing). An update that arrives while
# blocked is not handled, so it is requested once the check passes again.
DEPENDENTS = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
    & ~BLOCKED
).with_label("any dependency updated")


def build_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """The sensor evaluating silver and gold automation conditions, on by default."""
    return dg.AutomationConditionSensorDefinition(
        SENSOR_NAME,
        target=dg.AssetSelection.groups("silver", "gold"),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=int(os.environ.get(INTERVAL_VARIABLE) or INTERVAL_SECONDS),
        # dagster.yaml runs one of these at a time, so bronze keeps the other run slots.
        run_tags={DOWNSTREAM_TAG: "true"},
        description="Requests silver and gold runs for partitions whose inputs updated.",
    )
