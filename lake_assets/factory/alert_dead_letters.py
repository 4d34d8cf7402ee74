"""Dead letters as alert findings: one incident per dead-lettered batch, on the feed's first
bronze asset, naming the feed, the archives, the attempts and the last error (our own message,
or only an error type: `factory.failures`). It resolves once the batch is replayed and committed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from lake_assets.alerts.incidents import Facts, Finding, Incident
from lake_assets.catalog.catalog import Catalog
from lake_assets.factory.failures import safe_text
from lake_assets.factory.specs import bronze_key

KIND = "dead_letter"
RULE_PREFIX = "batch_"
ARCHIVES_NAMED = 5  # a message names this many archives of the batch, then counts the rest
DETAIL_LIMIT = 1200


def dead_letter_findings(
    catalog: Catalog, outstanding: pa.Table, open_incidents: Iterable[Incident]
) -> list[Finding]:
    """A failing finding per batch dead-lettered or awaiting replay, and a passing one for each
    open dead-letter incident whose batch is neither any more (it was replayed)."""
    batches: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in outstanding.to_pylist():
        batches.setdefault((row["feed"], row["batch_id"]), []).append(row)
    assets = {f.name: bronze_key(f, f.tables[0]).to_user_string() for f in catalog.feeds}
    findings = [
        _failing(assets[feed], feed, batch_id, rows)
        for (feed, batch_id), rows in sorted(batches.items()) if feed in assets
    ]
    failing = {f.incident_id for f in findings}
    for incident in open_incidents:
        if incident.kind == KIND and incident.incident_id not in failing:
            findings.append(Finding(
                kind=KIND, asset=incident.asset, partition=incident.partition,
                rule=incident.rule, ok=True, facts=Facts(
                    detail=f"batch {incident.rule.removeprefix(RULE_PREFIX)} was replayed")))
    return findings


def _failing(asset: str, feed: str, batch_id: str, rows: list[dict[str, Any]]) -> Finding:
    paths = sorted(r["path"] for r in rows)
    facilities = {r["facility"] for r in rows}
    attempts = max((r["attempts"] or 0) for r in rows)
    last = rows[0]
    named = ", ".join(paths[:ARCHIVES_NAMED])
    if len(paths) > ARCHIVES_NAMED:
        named += f" and {len(paths) - ARCHIVES_NAMED} more"
    waiting = " (a replay is under way)" if any(r["status"] != KIND for r in rows) else ""
    detail = safe_text(
        f"feed {feed} batch {batch_id}: {len(paths)} archives dead-lettered after {attempts} "
        f"attempts{waiting}; last error {last['reason']}: {last['message']}; archives: {named}"
        f"; after fixing the cause: lakehouse deadletter replay --feed {feed} --batch {batch_id}",
        limit=DETAIL_LIMIT,
    )
    return Finding(
        kind=KIND,
        asset=asset,
        partition=last["arrival_date"],
        rule=f"{RULE_PREFIX}{batch_id}",
        ok=False,
        facts=Facts(
            counts=(("archives", len(paths)), ("attempts", attempts)),
            facility=next(iter(facilities)) if len(facilities) == 1 else None,
            detail=detail,
        ),
    )
