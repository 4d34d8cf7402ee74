"""Alert channels against real loopback servers: what arrives by email, Slack, PagerDuty and
webhook, and how a failing channel is retried, logged and kept from stopping the others."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from lake_assets.alerts import Delivery, Notice
from lake_assets.catalog.models import Team
from lake_assets.resources import AlertRouter
from tests.alert_servers import RecordingHttp, RecordingSmtp, free_port, serve_http, serve_smtp

NOTICE = Notice(
    status="triggered",
    kind="check",
    severity="error",
    asset="bronze/lab_results/lab_results",
    rule="value_in_range",
    partition="2026-03-02",
    facility="FAC00012",
    counts=(("failing_rows", 12), ("total_rows", 340)),
    owners=("lab-informatics",),
    detail="column value",
    action="Fix the rule, then re-run the partition.",
    link="http://127.0.0.1:3000/assets/bronze/lab_results/lab_results",
    dedup_key="lake:check:bronze/lab_results/lab_results:2026-03-02:value_in_range",
)


@pytest.fixture
def http_server() -> Iterator[RecordingHttp]:
    with serve_http() as server:
        yield server


@pytest.fixture
def smtp_server() -> Iterator[RecordingSmtp]:
    with serve_smtp() as server:
        yield server


def router(smtp: RecordingSmtp | None = None, **overrides: object) -> AlertRouter:
    settings: dict[str, object] = {"attempts": 3, "backoff_seconds": 0.01, "timeout_seconds": 2}
    if smtp is not None:
        settings |= {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_from": "lake@test"}
    return AlertRouter(**(settings | overrides))


def deliver(alerts: AlertRouter, team: Team, notice: Notice = NOTICE) -> list:
    return alerts.send([Delivery(notice, "lab-informatics", team, "your team owns this asset")])


def test_email_names_asset_rule_counts_owner_and_link(smtp_server: RecordingSmtp) -> None:
    team = Team(email=("lab@example.org", "oncall@example.org"))

    [outcome] = deliver(router(smtp_server), team)

    assert outcome.delivered and outcome.channel == "email" and outcome.attempts == 1
    [mail] = smtp_server.to("lab@example.org")
    assert "oncall@example.org" in mail["To"] and mail["From"] == "lake@test"
    assert mail["Subject"] == (
        "[lake ERROR] check value_in_range failing on bronze/lab_results/lab_results [2026-03-02]"
    )
    body = mail.get_content()
    for expected in (
        "Asset:      bronze/lab_results/lab_results",
        "Facility:   FAC00012",
        "failing_rows=12, total_rows=340 (3.5% failing)",
        "Owners:     lab-informatics",
        "Why you:    your team owns this asset",
        "Asset page: http://127.0.0.1:3000/assets/bronze/lab_results/lab_results",
    ):
        assert expected in body


def test_slack_pagerduty_and_webhook_receive_json(
    http_server: RecordingHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKE_SECRET_SLACK_LAB", http_server.url("/slack"))
    monkeypatch.setenv("LAKE_SECRET_PD_LAB", "routing-key-1")
    monkeypatch.setenv("LAKE_PAGERDUTY_URL", http_server.url("/v2/enqueue"))
    team = Team(
        slack_webhook_secret="SLACK_LAB",
        pagerduty_routing_key_secret="PD_LAB",
        webhook_url=http_server.url("/hook"),
    )

    outcomes = deliver(router(), team)

    assert sorted(o.channel for o in outcomes if o.delivered) == ["pagerduty", "slack", "webhook"]
    [slack] = http_server.bodies("/slack")
    assert "value_in_range" in slack["text"] and "failing_rows=12" in slack["text"]
    [event] = http_server.bodies("/v2/enqueue")
    assert event["routing_key"] == "routing-key-1" and event["event_action"] == "trigger"
    assert event["dedup_key"] == NOTICE.dedup_key
    assert event["payload"]["severity"] == "error"
    assert event["payload"]["custom_details"]["facility"] == "FAC00012"
    [hook] = http_server.bodies("/hook")
    assert hook["counts"] == {"failing_rows": 12, "total_rows": 340}
    assert hook["owners"] == ["lab-informatics"] and hook["status"] == "triggered"


def test_recovery_resolves_pagerduty_with_the_same_dedup_key(
    http_server: RecordingHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKE_SECRET_PD_LAB", "routing-key-1")
    monkeypatch.setenv("LAKE_PAGERDUTY_URL", http_server.url("/v2/enqueue"))
    resolved = Notice(**{**NOTICE.__dict__, "status": "resolved"})

    deliver(router(), Team(pagerduty_routing_key_secret="PD_LAB"), resolved)

    assert http_server.bodies("/v2/enqueue") == [
        {"routing_key": "routing-key-1", "event_action": "resolve", "dedup_key": NOTICE.dedup_key}
    ]


def test_server_error_is_retried_logged_and_other_channels_deliver(
    http_server: RecordingHttp,
    smtp_server: RecordingSmtp,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    http_server.status["/slack"] = 500
    monkeypatch.setenv("LAKE_SECRET_SLACK_LAB", http_server.url("/slack"))
    team = Team(email=("lab@example.org",), slack_webhook_secret="SLACK_LAB")

    with caplog.at_level(logging.INFO):
        outcomes = {o.channel: o for o in deliver(router(smtp_server), team)}

    assert len(http_server.bodies("/slack")) == 3
    assert not outcomes["slack"].delivered and outcomes["slack"].attempts == 3
    assert outcomes["slack"].error == "slack of team lab-informatics: HTTP 500"
    assert outcomes["email"].delivered and len(smtp_server.messages) == 1
    assert "not delivered, after 3 attempt(s)" in caplog.text
    assert http_server.url("/slack") not in caplog.text  # a Slack webhook URL is a secret


def test_closed_port_is_retried_then_the_rest_of_that_server_is_skipped(
    smtp_server: RecordingSmtp,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"
    team = Team(email=("lab@example.org",), webhook_url=dead)
    other = Notice(**{**NOTICE.__dict__, "rule": "mrn_present", "dedup_key": "lake:x"})
    alerts = router(smtp_server)

    started = time.monotonic()
    outcomes = alerts.send([Delivery(n, "lab-informatics", team, "owner") for n in (NOTICE, other)])

    hooks = [o for o in outcomes if o.channel == "webhook"]
    assert [(o.delivered, o.attempts) for o in hooks] == [(False, 3), (False, 0)]
    assert "Connection refused" in (hooks[0].error or "")
    assert "skipped" in (hooks[1].error or "")
    assert len(smtp_server.messages) == 2
    assert time.monotonic() - started < 5


def test_client_error_is_not_retried(http_server: RecordingHttp) -> None:
    http_server.status["/hook"] = 400

    [outcome] = deliver(router(), Team(webhook_url=http_server.url("/hook")))

    assert (outcome.delivered, outcome.attempts) == (False, 1)
    assert len(http_server.bodies("/hook")) == 1


def test_missing_secret_and_missing_smtp_server_are_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LAKE_SMTP_HOST", raising=False)
    monkeypatch.delenv("LAKE_SECRET_NO_SUCH_HOOK", raising=False)
    team = Team(email=("lab@example.org",), slack_webhook_secret="NO_SUCH_HOOK")

    outcomes = {o.channel: o for o in deliver(router(), team)}

    assert "secret NO_SUCH_HOOK is not set" in (outcomes["slack"].error or "")
    assert "LAKE_SMTP_HOST" in (outcomes["email"].error or "")
    assert not any(o.delivered for o in outcomes.values())


def test_smtp_settings_come_from_the_environment(
    smtp_server: RecordingSmtp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LAKE_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("LAKE_SMTP_FROM", "alerts@lake.test")

    [outcome] = deliver(router(), Team(email=("lab@example.org",)))

    assert outcome.delivered
    assert smtp_server.messages[0]["From"] == "alerts@lake.test"


def test_message_fields_are_cut_to_a_safe_alphabet(smtp_server: RecordingSmtp) -> None:
    hostile = Notice(**{**NOTICE.__dict__, "partition": "2026-03-02|Doe, Jane <1234>"})

    deliver(router(smtp_server), Team(email=("lab@example.org",)), hostile)

    text = smtp_server.raw()
    assert "Doe, Jane" not in text and "<1234>" not in text
    assert "2026-03-02|Doe__Jane__1234_" in text
