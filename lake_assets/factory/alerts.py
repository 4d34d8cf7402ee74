"""The `lake_alerts` sensor: run failures, failed asset checks and stale assets become messages to
the owners and subscribers named in metadata, once per incident, with a recovery message at the end.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Literal

import dagster as dg
import pyarrow as pa

from lake_assets.alerts.audience import AssetNode, Audience, Window
from lake_assets.alerts.incidents import (
    AlertState,
    Finding,
    Incident,
    Transition,
    advance,
    decode_state,
)
from lake_assets.alerts.messages import Notice
from lake_assets.alerts.router import Delivery
from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.models import Feed, Projection
from lake_assets.factory.alert_dead_letters import dead_letter_findings
from lake_assets.factory.alert_findings import (
    check_results,
    duration_text,
    freshness_states,
    latest_run_cursor,
    run_failures,
    run_recoveries,
)
from lake_assets.resources.alerts import AlertRouter

TEAM_PREFIX = "team:"
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
    "dead_letter": "The batch's runs kept failing, so its archives were set aside. Fix the "
    "cause named in the detail (a secret, the Spark cluster, the data or a rule), then replay "
    "the batch with the command in the detail; this clears once it is committed.",
}
_RESOLVED_ACTION = "Nothing to do; this closes the earlier alert."


def ui_url() -> str:
    """Base URL of the Dagster UI for links: $LAKE_UI_URL, default http://127.0.0.1:3000."""
    return os.environ.get("LAKE_UI_URL", DEFAULT_UI_URL).rstrip("/")


DeadLetters = Callable[[Iterable[Incident]], list[Finding]]


def build_alert_sensor(
    catalog: Catalog,
    assets: Sequence[dg.AssetsDefinition | dg.AssetSpec],
    *,
    clock: Callable[[], float] = time.time,
    outstanding: Callable[[], pa.Table] | None = None,
) -> dg.SensorDefinition:
    """The `lake_alerts` sensor over `assets`, sending through the `alerts` resource.

    Owners come from the asset specs and subscribers from the catalog; `outstanding` reads the
    manifest's dead letters (`Manifest.outstanding`); `clock` is for tests.
    """
    audience = build_audience(catalog, assets)

    def dead_letters(incidents: Iterable[Incident]) -> list[Finding]:
        return dead_letter_findings(catalog, outstanding(), incidents) if outstanding else []

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Routes run failures, failed checks and freshness to owners and subscribers.",
    )
    def lake_alerts(context: dg.SensorEvaluationContext, alerts: AlertRouter) -> dg.SensorResult:
        return alert_tick(context, audience, alerts, now=clock(), dead_letters=dead_letters)

    return lake_alerts


def alert_tick(
    context: dg.SensorEvaluationContext, audience: Audience, router: AlertRouter, *, now: float,
    dead_letters: DeadLetters | None = None,
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
        *(dead_letters(known.values()) if dead_letters else []),
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


def build_audience(
    catalog: Catalog, assets: Sequence[dg.AssetsDefinition | dg.AssetSpec]
) -> Audience:
    """The routing view of `assets`; owners come from the specs, subscribers from metadata."""
    specs = [spec for item in assets for spec in _specs_of(item)]
    checks: dict[str, list[dg.AssetCheckKey]] = {}
    for item in assets:
        for check in item.check_keys if isinstance(item, dg.AssetsDefinition) else ():
            checks.setdefault(check.asset_key.to_user_string(), []).append(check)
    children: dict[str, list[str]] = {}
    for spec in specs:
        for dep in spec.deps:
            children.setdefault(dep.asset_key.to_user_string(), []).append(_key(spec))
    nodes = {
        _key(spec): AssetNode(
            key=_key(spec),
            owners=_teams(spec.owners) or _source_teams(catalog, spec, "owners"),
            subscribers=_source_teams(catalog, spec, "subscribers"),
            children=tuple(sorted(set(children.get(_key(spec), ())))),
            freshness=_window(spec.freshness_policy),
            has_freshness_policy=spec.freshness_policy is not None,
            checks=tuple(sorted(c.name for c in checks.get(_key(spec), ()))),
        )
        for spec in specs
    }
    return Audience(nodes=nodes, teams=dict(catalog.owners.teams))


def _specs_of(item: dg.AssetsDefinition | dg.AssetSpec) -> Iterable[dg.AssetSpec]:
    return [item] if isinstance(item, dg.AssetSpec) else item.specs


def _key(spec: dg.AssetSpec) -> str:
    return spec.key.to_user_string()


def _teams(owners: Iterable[str]) -> tuple[str, ...]:
    """Team names of Dagster owner strings (`team:<name>`); user emails are not teams."""
    return tuple(o.removeprefix(TEAM_PREFIX) for o in owners if o.startswith(TEAM_PREFIX))


def _source(catalog: Catalog, spec: dg.AssetSpec) -> Feed | Projection | None:
    """The feed or projection an asset comes from: by its `lake/*` tag, else by its key."""
    layer, name = (spec.key.path[0], spec.key.path[1]) if len(spec.key.path) > 1 else ("", "")
    projection = spec.tags.get("lake/projection") or (name if layer == "gold" else None)
    if projection:
        return next((p for p in catalog.projections if p.name == projection), None)
    feed = spec.tags.get("lake/feed") or (name if layer == "bronze" else None)
    if feed is None and layer == "silver":
        return next((f for f in catalog.feeds if f.table(name) is not None), None)
    return next((f for f in catalog.feeds if f.name == feed), None)


def _source_teams(
    catalog: Catalog, spec: dg.AssetSpec, role: Literal["owners", "subscribers"]
) -> tuple[str, ...]:
    source = _source(catalog, spec)
    return getattr(source, role) if source is not None else ()


def _window(policy: object) -> Window | None:
    """The windows of a time-window freshness policy; None for other kinds (cron) or none."""
    fail, warn = getattr(policy, "fail_window", None), getattr(policy, "warn_window", None)
    if fail is None:
        return None
    return Window(warn=_seconds(warn) if warn is not None else None, fail=_seconds(fail))


def _seconds(window: object) -> float:
    delta = window.to_timedelta() if hasattr(window, "to_timedelta") else window
    if not isinstance(delta, timedelta):
        raise TypeError(f"freshness window {window!r} is not a duration")
    return delta.total_seconds()
