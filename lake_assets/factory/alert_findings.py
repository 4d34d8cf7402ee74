"""What the Dagster instance says is broken or mended: run failures, asset check results and
freshness states, as findings for the incident rules. Only whitelisted check metadata is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg

from lake_assets.alerts.audience import Audience, Window
from lake_assets.alerts.incidents import Facts, Finding, Incident, Level
from lake_assets.factory.failures import run_fault
from lake_assets.factory.run_tags import BATCH_TAG

# Check metadata a message may quote: numbers under these keys, identifiers under NAME_KEYS.
# Anything else (a "sample" above all) never leaves the instance.
COUNT_KEYS = (
    "failing_rows",
    "failed_rows",
    "failing_count",
    "total_rows",
    "row_count",
    "dagster/row_count",
    "quarantined_rows",
    "failing_ratio",
    "expected_min",
    "expected_max",
)
NAME_KEYS = ("facility", "facility_id", "column")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PARTITION_TAG = "dagster/partition"
_PLANNED = dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
_MATERIALIZED = dg.DagsterEventType.ASSET_MATERIALIZATION
# Check results are read back this far behind the newest one seen, so a result written late
# (batched event writes, clock skew between processes) is still read; rereading is harmless.
CHECK_OVERLAP_SECONDS = 120.0
CHECK_HISTORY = 50
RUN_PAGE = 100


def latest_run_cursor(instance: dg.DagsterInstance) -> str | None:
    """The cursor just past the newest run failure, so a first tick does not replay history."""
    newest = instance.fetch_run_status_changes(dg.DagsterEventType.RUN_FAILURE, limit=1)
    return newest.cursor if newest.records else None


def run_failures(
    instance: dg.DagsterInstance, cursor: str | None, audience: Audience
) -> tuple[list[Finding], str | None]:
    """Failed runs after `cursor`: one finding per asset (partition) the run did not materialize.

    Returns the findings and the cursor to resume from.
    """
    page = instance.fetch_run_status_changes(
        dg.DagsterEventType.RUN_FAILURE, limit=RUN_PAGE, cursor=cursor, ascending=True
    )
    findings = []
    for record in page.records:
        run = instance.get_run_by_id(record.event_log_entry.run_id)
        if run is None or _retried(instance, run):
            continue
        for asset, partition in _unfinished_targets(instance, run):
            if asset in audience.nodes:
                facts = Facts(
                    facility=facility_of(partition, {}),
                    run_id=run.run_id,
                    detail=f"run {run.run_id[:8]} of job {run.job_name} failed",
                )
                findings.append(
                    Finding(
                        kind="run",
                        asset=asset,
                        partition=partition,
                        rule="run_failed",
                        ok=False,
                        facts=facts,
                        mark=record.storage_id,
                    )
                )
    return findings, page.cursor if page.records else cursor


def _retried(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether the run is a bronze batch that failed for a reason its feed's sensor retries:
    no one needs to act unless the retries run out, and then a dead-letter alert says so."""
    return BATCH_TAG in run.tags and run_fault(instance, run).retryable


def _unfinished_targets(
    instance: dg.DagsterInstance, run: dg.DagsterRun
) -> set[tuple[str, str | None]]:
    """(asset, partition) pairs the run planned but did not materialize."""
    records = instance.get_records_for_run(run.run_id, of_type={_PLANNED, _MATERIALIZED}).records
    planned, done = set(), set()
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None or event.asset_key is None:
            continue
        target = (event.asset_key.to_user_string(), event.partition)
        (planned if event.event_type == _PLANNED else done).add(target)
    if not planned:
        partition = run.tags.get(_PARTITION_TAG)
        planned = {(key.to_user_string(), partition) for key in run.asset_selection or ()}
    return planned - done


def run_recoveries(instance: dg.DagsterInstance, incidents: Iterable[Incident]) -> list[Finding]:
    """Passing findings for run incidents whose asset (partition) materialized since the failure."""
    findings = []
    for incident in incidents:
        if incident.kind != "run":
            continue
        records_filter = dg.AssetRecordsFilter(
            asset_key=dg.AssetKey.from_user_string(incident.asset),
            asset_partitions=[incident.partition] if incident.partition else None,
            after_storage_id=incident.mark,
        )
        newer = instance.fetch_materializations(records_filter, limit=1).records
        if newer:
            facts = Facts(
                facility=facility_of(incident.partition, {}),
                detail="the asset materialized again after the failed run",
            )
            findings.append(
                Finding(
                    kind="run",
                    asset=incident.asset,
                    partition=incident.partition,
                    rule=incident.rule,
                    ok=True,
                    severity=incident.severity,
                    facts=facts,
                    mark=newer[0].storage_id,
                )
            )
    return findings


def check_results(
    instance: dg.DagsterInstance, audience: Audience, *, after: float
) -> tuple[list[Finding], float]:
    """The newest result per check and partition among results written after `after` (epoch s).

    Returns the findings and the timestamp of the newest result read.
    """
    newest: dict[str, tuple[float, Finding]] = {}
    runs: dict[str, dg.DagsterRun | None] = {}
    horizon = after
    for asset, name in audience.check_keys:
        check_key = dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), name)
        history = instance.event_log_storage.get_asset_check_execution_history(
            check_key, limit=CHECK_HISTORY
        )
        for record in history:
            if record.status.value not in ("SUCCEEDED", "FAILED") or record.event is None:
                continue
            stamp = record.event.timestamp
            if stamp <= after - CHECK_OVERLAP_SECONDS:
                continue
            horizon = max(horizon, stamp)
            finding = _check_finding(instance, record, runs)
            seen = newest.get(finding.incident_id)
            if seen is None or seen[0] < stamp:
                newest[finding.incident_id] = (stamp, finding)
    ordered = sorted(newest.values(), key=lambda pair: pair[0])
    return [finding for _, finding in ordered], horizon


def _check_finding(
    instance: dg.DagsterInstance, record: Any, runs: dict[str, dg.DagsterRun | None]
) -> Finding:
    evaluation = record.evaluation
    partition = evaluation.partition
    if partition is None and record.run_id:
        if record.run_id not in runs:
            runs[record.run_id] = instance.get_run_by_id(record.run_id)
        run = runs[record.run_id]
        partition = run.tags.get(_PARTITION_TAG) if run is not None else None
    metadata = {key: getattr(value, "value", value) for key, value in evaluation.metadata.items()}
    severity: Level = "warn" if evaluation.severity == dg.AssetCheckSeverity.WARN else "error"
    column = _identifier(metadata.get("column"))
    facts = Facts(
        counts=whitelisted_counts(metadata),
        facility=facility_of(partition, metadata),
        detail=f"column {column}" if column else "",
    )
    asset = evaluation.asset_key.to_user_string()
    return Finding(
        kind="check",
        asset=asset,
        partition=partition,
        rule=evaluation.check_name,
        ok=evaluation.passed,
        severity=severity,
        facts=facts,
    )


def freshness_states(
    instance: dg.DagsterInstance, audience: Audience, *, now: float
) -> list[Finding]:
    """A finding per asset with a freshness policy and a known state (PASS, WARN or FAIL).

    The state is the one Dagster's freshness daemon recorded; an asset it has not evaluated
    (freshness disabled in dagster.yaml) is judged here by the same time-window rule.
    """
    nodes = [n for n in audience.nodes.values() if n.has_freshness_policy]
    keys = [dg.AssetKey.from_user_string(node.key) for node in nodes]
    recorded = instance.get_freshness_state_records(keys) if keys else {}
    last = {
        r.asset_entry.asset_key.to_user_string(): r.asset_entry.last_materialization
        for r in (instance.get_asset_records(keys) if keys else [])
    }
    findings = []
    for node, key in zip(nodes, keys, strict=True):
        entry = last.get(node.key)
        age = now - entry.timestamp if entry is not None else None
        state = (
            recorded[key].freshness_state.value if key in recorded else _judge(node.freshness, age)
        )
        if state not in ("PASS", "WARN", "FAIL"):
            continue
        facts = Facts(detail=_age_text(age, node.freshness))
        severity: Level = "warn" if state == "WARN" else "error"
        findings.append(
            Finding(
                kind="freshness",
                asset=node.key,
                partition=None,
                rule="freshness",
                ok=state == "PASS",
                severity=severity,
                facts=facts,
            )
        )
    return findings


def _judge(window: Window | None, age: float | None) -> str:
    """Dagster's time-window rule: FAIL past the fail window, WARN past the warn window."""
    if window is None or age is None:
        return "UNKNOWN"
    if age >= window.fail:
        return "FAIL"
    return "WARN" if window.warn is not None and age >= window.warn else "PASS"


def _age_text(age: float | None, window: Window | None) -> str:
    text = (
        f"last materialized {duration_text(age)} ago" if age is not None else "never materialized"
    )
    if window is not None:
        warn = f"warn after {duration_text(window.warn)}, " if window.warn is not None else ""
        text += f"; {warn}fail after {duration_text(window.fail)}"
    return text


def duration_text(seconds: float) -> str:
    """`7h 03m` or `12m`: a duration for people, to the minute."""
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"


def whitelisted_counts(metadata: Mapping[str, Any]) -> tuple[tuple[str, int | float], ...]:
    """The numbers under COUNT_KEYS, in that order; other keys and non-numbers are dropped."""
    return tuple(
        (key, metadata[key])
        for key in COUNT_KEYS
        if isinstance(metadata.get(key), int | float) and not isinstance(metadata[key], bool)
    )


def facility_of(partition: str | None, metadata: Mapping[str, Any]) -> str | None:
    """The facility named by check metadata, else by a `date|facility` partition key."""
    for key in NAME_KEYS[:2]:
        if (named := _identifier(metadata.get(key))) is not None:
            return named
    parts = partition.split("|") if partition else []
    others = [p for p in parts if not _DATE.match(p)] if len(parts) > 1 else []
    return _identifier(others[0]) if others else None


def _identifier(value: object) -> str | None:
    return value if isinstance(value, str) and _IDENTIFIER.match(value) else None
