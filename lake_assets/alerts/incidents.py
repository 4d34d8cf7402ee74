"""Open incidents of the alert sensor: what is failing now, kept in the sensor cursor as JSON.

A finding says an asset (partition) breaks or satisfies a rule. An incident opens on the first
failing finding, is escalated once if it gets worse (warn to error), and resolves on the first
passing finding; everything in between is quiet. No Dagster imports: the rules are plain data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Literal

from lake_assets.errors import AlertCursorError

Kind = Literal["check", "freshness", "run", "dead_letter"]
Level = Literal["warn", "error"]
Status = Literal["triggered", "escalated", "resolved"]

CURSOR_VERSION = 1
_LEVELS: dict[str, int] = {"warn": 1, "error": 2}


def incident_id(kind: Kind, asset: str, partition: str | None, rule: str) -> str:
    """The id that deduplicates one incident: kind, asset, partition (or `-`) and rule."""
    return f"lake:{kind}:{asset}:{partition or '-'}:{rule}"


@dataclass(frozen=True, kw_only=True)
class Facts:
    """What a message may say beyond the incident's identity: numbers and safe identifiers."""

    counts: tuple[tuple[str, int | float], ...] = ()
    facility: str | None = None
    detail: str = ""
    run_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One observation: `asset` (and `partition`) fails or passes `rule` of `kind`.

    `mark` is the event storage id that a recovery must come after (run failures), else 0.
    """

    kind: Kind
    asset: str
    partition: str | None
    rule: str
    ok: bool
    severity: Level = "error"
    facts: Facts = field(default_factory=Facts)
    mark: int = 0

    @property
    def incident_id(self) -> str:
        """`lake:kind:asset:partition:rule`, stable across ticks; also the PagerDuty dedup_key."""
        return incident_id(self.kind, self.asset, self.partition, self.rule)


@dataclass(frozen=True)
class Incident:
    """An open incident as the cursor keeps it: identity, severity, when it opened, its mark."""

    kind: Kind
    asset: str
    partition: str | None
    rule: str
    severity: Level
    opened: int
    mark: int = 0

    @property
    def incident_id(self) -> str:
        """The same id as the findings that opened it."""
        return incident_id(self.kind, self.asset, self.partition, self.rule)


@dataclass(frozen=True)
class Transition:
    """A change worth a message: the finding that caused it and the incident it changed."""

    status: Status
    finding: Finding
    incident: Incident


@dataclass(frozen=True)
class AlertState:
    """Everything the sensor remembers between ticks."""

    runs_cursor: str | None = None
    checks_after: float = 0.0
    open: dict[str, Incident] = field(default_factory=dict)

    def encode(self) -> str:
        """Compact JSON for the sensor cursor."""
        rows = [
            [i.kind, i.asset, i.partition, i.rule, i.severity, i.opened, i.mark]
            for i in self.open.values()
        ]
        data = {
            "v": CURSOR_VERSION,
            "runs": self.runs_cursor,
            "checks": self.checks_after,
            "open": rows,
        }
        return json.dumps(data, separators=(",", ":"))


def decode_state(cursor: str | None) -> AlertState | None:
    """The state in `cursor`; returns None for no cursor (the sensor's first tick).

    Raises AlertCursorError when the cursor is not one this version wrote.
    """
    if not cursor:
        return None
    try:
        data = json.loads(cursor)
        if data.get("v") != CURSOR_VERSION:
            raise ValueError(f"cursor version {data.get('v')!r}, expected {CURSOR_VERSION}")
        incidents = [Incident(*row) for row in data["open"]]
        return AlertState(
            runs_cursor=data["runs"],
            checks_after=float(data["checks"]),
            open={i.incident_id: i for i in incidents},
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AlertCursorError(
            f"cursor of sensor lake_alerts is unreadable ({exc}); reset it in the UI "
            "(open incidents are then forgotten and new failures alert again)"
        ) from exc


def advance(
    open_incidents: dict[str, Incident], findings: list[Finding], *, now: int
) -> tuple[dict[str, Incident], list[Transition]]:
    """Apply findings in order; returns the incidents still open and the transitions to announce."""
    still_open = dict(open_incidents)
    transitions: list[Transition] = []
    for finding in findings:
        key = finding.incident_id
        current = still_open.get(key)
        if finding.ok:
            if current is not None and finding.mark >= current.mark:
                transitions.append(Transition("resolved", finding, still_open.pop(key)))
            continue
        if current is None:
            opened = Incident(
                kind=finding.kind,
                asset=finding.asset,
                partition=finding.partition,
                rule=finding.rule,
                severity=finding.severity,
                opened=now,
                mark=finding.mark,
            )
            still_open[key] = opened
            transitions.append(Transition("triggered", finding, opened))
        elif _LEVELS[finding.severity] > _LEVELS[current.severity]:
            worse = replace(current, severity=finding.severity)
            still_open[key] = worse
            transitions.append(Transition("escalated", finding, worse))
    return still_open, transitions
