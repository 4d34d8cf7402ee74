"""The `lake_alerts` sensor: run failures, failed asset checks and stale assets become messages to
the owners and subscribers named in metadata, once per incident, with a recovery message at the end.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence

import dagster as dg

from lake_assets.catalog.loader import Catalog
from lake_assets.factory.alert_audience import Audience, build_audience
from lake_assets.factory.alert_findings import (
    check_results,
    duration_text,
    freshness_states,
    latest_run_cursor,
    run_failures,
    run_recoveries,
)
from lake_assets.factory.incidents import AlertState, Transition, advance, decode_state
from resources.alerts import AlertRouter, Delivery, Notice

SENSOR_NAME = "lake_alerts"
INTERVAL_SECONDS = 30
DEFAULT_UI_URL = "http://127.0.0.1:3000"

_ACTIONS = {
    "check": "Look at the failing rows in the asset's quarantine table (values there are "
    "masked), fix the source data or the rule in metadata, then re-run the partition.",
    "freshness": "Check the feed's sensor, queued and failed runs, and whether facilities "
    "still send archives; this clears when the asset materializes again.",
    "run": "Open the run, fix the cause it logged, and re-execute it from failure; this "
    "clears when the asset materializes again for this partition.",
}
_RESOLVED_ACTION = "Nothing to do; this closes the earlier alert."


def ui_url() -> str:
    """Base URL of the Dagster UI for links: $LAKE_UI_URL, default http://127.0.0.1:3000."""
    return os.environ.get("LAKE_UI_URL", DEFAULT_UI_URL).rstrip("/")


def build_alert_sensor(
    catalog: Catalog,
    assets: Sequence[dg.AssetsDefinition | dg.AssetSpec],
    *,
    clock: Callable[[], float] = time.time,
) -> dg.SensorDefinition:
    """The `lake_alerts` sensor over `assets`, sending through the `alerts` resource.

    Owners come from the asset specs and subscribers from the catalog; `clock` is for tests.
    """
    audience = build_audience(catalog, assets)

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Routes run failures, failed checks and freshness to owners and subscribers.",
    )
    def lake_alerts(context: dg.SensorEvaluationContext, alerts: AlertRouter) -> dg.SensorResult:
        return alert_tick(context, audience, alerts, now=clock())

    return lake_alerts


def alert_tick(
    context: dg.SensorEvaluationContext, audience: Audience, router: AlertRouter, *, now: float
) -> dg.SensorResult:
    """One tick: read what changed, advance the incidents, send the messages.

    Returns the new cursor and a one-line summary. Raises AlertCursorError for a foreign cursor.
    """
    instance = context.instance
    state = decode_state(context.cursor) or AlertState(
        runs_cursor=latest_run_cursor(instance), checks_after=now
    )
    # Incidents of assets no longer defined can neither clear nor reach anyone: drop them.
    known = {key: i for key, i in state.open.items() if i.asset in audience.nodes}
    failures, runs_cursor = run_failures(instance, state.runs_cursor, audience)
    checks, checks_after = check_results(instance, audience, after=state.checks_after)
    findings = [
        *failures,
        *run_recoveries(instance, known.values()),
        *checks,
        *freshness_states(instance, audience, now=now),
    ]
    still_open, transitions = advance(known, findings, now=int(now))
    deliveries = [d for t in transitions for d in _deliveries(t, audience, context.log, now)]
    outcomes = router.send(deliveries, log=context.log) if deliveries else []
    failed = sum(not o.delivered for o in outcomes)
    summary = (
        f"{len(findings)} findings, {len(transitions)} changes, {len(still_open)} open; "
        f"{len(outcomes) - failed} messages delivered, {failed} failed"
    )
    context.log.info(summary)
    cursor = AlertState(runs_cursor, checks_after, still_open).encode()
    return dg.SensorResult(skip_reason=summary, cursor=cursor)


def _deliveries(
    transition: Transition, audience: Audience, log: logging.Logger, now: float
) -> list[Delivery]:
    """The notice of one transition, addressed to every team that should hear of it."""
    incident = transition.incident
    notice = notice_of(transition, audience, base_url=ui_url(), now=now)
    recipients = audience.recipients(incident.asset)
    if not recipients:
        log.warning(f"{incident.incident_id}: no team of owners.yaml owns or follows it")
    return [Delivery(notice, r.team, audience.teams[r.team], r.reason) for r in recipients]


def notice_of(transition: Transition, audience: Audience, *, base_url: str, now: float) -> Notice:
    """The message content of a transition, built from identifiers and numbers only."""
    finding, incident = transition.finding, transition.incident
    run_id = finding.facts.run_id
    resolved = transition.status == "resolved"
    detail = finding.facts.detail or "-"
    if resolved:
        detail += f"; open for {duration_text(now - incident.opened)}"
    return Notice(
        status=transition.status,
        kind=incident.kind,
        severity=incident.severity,
        asset=incident.asset,
        rule=incident.rule,
        partition=incident.partition,
        facility=finding.facts.facility,
        counts=finding.facts.counts,
        owners=audience.nodes[incident.asset].owners,
        detail=detail,
        action=_RESOLVED_ACTION if resolved else _ACTIONS[incident.kind],
        link=f"{base_url}/assets/{incident.asset}",
        dedup_key=incident.incident_id,
        run_link=f"{base_url}/runs/{run_id}" if run_id else None,
    )
