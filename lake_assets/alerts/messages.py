"""What an alert says, rendered for email, Slack, PagerDuty Events v2 and a generic JSON webhook.

A `Notice` holds only asset keys, partition keys, rule names, numbers and fixed phrases: no
record value can reach a message. Every string is filtered to a safe alphabet once more here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal

Status = Literal["triggered", "escalated", "resolved"]
Kind = Literal["check", "freshness", "run", "dead_letter"]
Level = Literal["warn", "error"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/|@=+\-]")
_TOKEN_MAX = 120
_KIND_LABEL = {"check": "check", "freshness": "freshness", "run": "run",
               "dead_letter": "dead letter"}
_PAGERDUTY_SEVERITY = {"warn": "warning", "error": "error"}


def safe_token(value: str) -> str:
    """`value` cut to the characters identifiers use (keys, partitions, rule and team names)."""
    return _UNSAFE.sub("_", value)[:_TOKEN_MAX]


@dataclass(frozen=True)
class Notice:
    """One incident transition: what broke (or recovered), where, how badly, and who owns it."""

    status: Status
    kind: Kind
    severity: Level
    asset: str
    rule: str
    partition: str | None
    facility: str | None
    counts: tuple[tuple[str, int | float], ...]
    owners: tuple[str, ...]
    detail: str
    action: str
    link: str
    dedup_key: str
    run_link: str | None = None

    @property
    def summary(self) -> str:
        """One line: status, severity, rule and asset (the email subject and PagerDuty summary)."""
        where = safe_token(self.asset)
        if self.partition:
            where += f" [{safe_token(self.partition)}]"
        rule = f"{_KIND_LABEL[self.kind]} {safe_token(self.rule)}"
        if self.status == "resolved":
            return f"[lake RESOLVED] {rule} recovered on {where}"
        label = "ESCALATED " if self.status == "escalated" else ""
        return f"[lake {label}{self.severity.upper()}] {rule} failing on {where}"


def counts_text(counts: tuple[tuple[str, int | float], ...]) -> str:
    """`failing_rows=12, total_rows=340 (3.5% failing)`, or `-` when there are none."""
    if not counts:
        return "-"
    values = dict(counts)
    text = ", ".join(f"{safe_token(k)}={_number(v)}" for k, v in counts)
    failing, total = values.get("failing_rows"), values.get("total_rows")
    if isinstance(failing, int | float) and isinstance(total, int | float) and total > 0:
        text += f" ({100.0 * failing / total:.1f}% failing)"
    return text


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def text_body(notice: Notice, *, reason: str) -> str:
    """The plain-text message: every field on its own line, then why the team gets it."""
    lines = [
        notice.summary,
        "",
        f"Asset:      {safe_token(notice.asset)}",
        f"Partition:  {safe_token(notice.partition) if notice.partition else '-'}",
        f"Facility:   {safe_token(notice.facility) if notice.facility else '-'}",
        f"Rule:       {_KIND_LABEL[notice.kind]} {safe_token(notice.rule)}",
        f"Severity:   {notice.severity}",
        f"Counts:     {counts_text(notice.counts)}",
        f"Detail:     {notice.detail}",
        f"Owners:     {', '.join(safe_token(o) for o in notice.owners) or '-'}",
        f"Why you:    {reason}",
        f"What to do: {notice.action}",
        f"Asset page: {notice.link}",
    ]
    if notice.run_link:
        lines.append(f"Run:        {notice.run_link}")
    lines.append(f"Incident:   {safe_token(notice.dedup_key)}")
    return "\n".join(lines) + "\n"


def email_message(notice: Notice, *, reason: str, sender: str, to: tuple[str, ...]) -> EmailMessage:
    """The email for one team; returns a message ready for `smtplib.SMTP.send_message`."""
    message = EmailMessage()
    message["Subject"] = notice.summary
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["X-Lake-Incident"] = safe_token(notice.dedup_key)
    message.set_content(text_body(notice, reason=reason))
    return message


def slack_payload(notice: Notice, *, reason: str) -> dict[str, Any]:
    """The JSON body for a Slack incoming webhook."""
    return {"text": f"```{text_body(notice, reason=reason)}```", "unfurl_links": False}


def webhook_payload(notice: Notice, *, team: str, reason: str) -> dict[str, Any]:
    """The JSON body for a team's generic webhook: every field, machine-readable."""
    return {
        "source": "lakehouse",
        "status": notice.status,
        "kind": notice.kind,
        "severity": notice.severity,
        "summary": notice.summary,
        "asset": safe_token(notice.asset),
        "partition": safe_token(notice.partition) if notice.partition else None,
        "facility": safe_token(notice.facility) if notice.facility else None,
        "rule": safe_token(notice.rule),
        "counts": {safe_token(k): v for k, v in notice.counts},
        "owners": [safe_token(o) for o in notice.owners],
        "team": safe_token(team),
        "reason": reason,
        "detail": notice.detail,
        "action": notice.action,
        "link": notice.link,
        "run_link": notice.run_link,
        "dedup_key": safe_token(notice.dedup_key),
    }


def pagerduty_payload(notice: Notice, *, routing_key: str) -> dict[str, Any]:
    """The Events API v2 body: `trigger` while failing, `resolve` (same dedup_key) on recovery."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "resolve" if notice.status == "resolved" else "trigger",
        "dedup_key": safe_token(notice.dedup_key),
    }
    if notice.status == "resolved":
        return event
    details: dict[str, Any] = {
        "asset": safe_token(notice.asset),
        "partition": safe_token(notice.partition) if notice.partition else None,
        "facility": safe_token(notice.facility) if notice.facility else None,
        "rule": safe_token(notice.rule),
        "counts": counts_text(notice.counts),
        "owners": ", ".join(safe_token(o) for o in notice.owners),
        "detail": notice.detail,
        "what_to_do": notice.action,
    }
    event["payload"] = {
        "summary": notice.summary[:1024],
        "source": "lakehouse",
        "severity": _PAGERDUTY_SEVERITY[notice.severity],
        "component": safe_token(notice.asset),
        "group": safe_token(notice.asset.split("/", 1)[0]),
        "class": notice.kind,
        "custom_details": details,
    }
    event["links"] = [{"href": notice.link, "text": "Asset in Dagster"}]
    return event
