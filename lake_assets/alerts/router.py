"""`Router`: sends notices to teams through every channel each team lists in owners.yaml.

SMTP and HTTP happen inside `send`. A channel that fails is retried with backoff, logged, and
reported in the outcomes; `send` itself does not raise. `resources.alerts.AlertRouter` configures
one for the alert sensor.
"""

from __future__ import annotations

import logging
import os
import smtplib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

from lake_assets.alerts.channels import (
    Attempted,
    RetryPolicy,
    SmtpSettings,
    close_smtp,
    open_smtp,
    post_json,
    send_email,
    with_retries,
)
from lake_assets.alerts.messages import (
    Notice,
    email_message,
    pagerduty_payload,
    slack_payload,
    webhook_payload,
)
from lake_assets.catalog.models import Team
from lake_assets.errors import AlertDeliveryError, SecretNotFoundError
from lake_assets.storage.secrets import get_secret

Channel = Literal["email", "slack", "pagerduty", "webhook"]
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


@dataclass(frozen=True)
class Delivery:
    """One notice for one team, with the reason the team receives it."""

    notice: Notice
    team: str
    contact: Team
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What happened to one notice on one channel of one team."""

    team: str
    channel: Channel
    dedup_key: str
    delivered: bool
    attempts: int
    error: str | None = None


@dataclass(frozen=True)
class _Job:
    """One message on one channel; `endpoint` groups jobs that share a server."""

    delivery: Delivery
    channel: Channel
    endpoint: str
    send: Callable[[smtplib.SMTP | None], None]

    @property
    def label(self) -> str:
        return f"{self.channel} of team {self.delivery.team}"

    def outcome(self, attempted: Attempted) -> Outcome:
        error = str(attempted.error) if attempted.error else None
        d = self.delivery
        return Outcome(
            d.team, self.channel, d.notice.dedup_key, attempted.delivered, attempted.attempts, error
        )


@dataclass(frozen=True)
class Router:
    """Routes alert notices to teams by email (SMTP), Slack webhook, PagerDuty and JSON webhook.

    SMTP and PagerDuty settings left unset fall back to LAKE_SMTP_HOST, LAKE_SMTP_PORT,
    LAKE_SMTP_FROM and LAKE_PAGERDUTY_URL, read when sending. `smtp_password_secret` names a
    secret, never a value.
    """

    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_from: str | None = None
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password_secret: str | None = None
    pagerduty_url: str | None = None
    attempts: int = 3
    backoff_seconds: float = 0.5
    timeout_seconds: float = 5.0
    max_workers: int = 8

    def send(
        self, deliveries: Sequence[Delivery], *, log: logging.Logger | None = None
    ) -> list[Outcome]:
        """Deliver every notice on every channel of its team; returns one outcome per channel.

        Servers are worked in parallel; messages to one server go in order, and once a server
        has failed all its attempts, the rest of its messages in this call are skipped.
        """
        log = log or logging.getLogger("lake.alerts")
        outcomes: list[Outcome] = []
        groups: dict[str, list[_Job]] = {}
        for delivery in deliveries:
            jobs, refused = self._jobs(delivery)
            outcomes += refused
            for job in jobs:
                groups.setdefault(job.endpoint, []).append(job)
        if groups:
            workers = min(self.max_workers, len(groups))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="alerts") as pool:
                for done in pool.map(lambda jobs: self._guarded(jobs, log), groups.values()):
                    outcomes += done
        for outcome in outcomes:
            if not outcome.delivered:
                tried = f"after {outcome.attempts} attempt(s)" if outcome.attempts else "unsent"
                log.warning(
                    f"alert {outcome.dedup_key} to team {outcome.team} via {outcome.channel} "
                    f"not delivered, {tried}: {outcome.error}"
                )
        return outcomes

    @property
    def _policy(self) -> RetryPolicy:
        return RetryPolicy(self.attempts, self.backoff_seconds, self.timeout_seconds)

    def _jobs(self, delivery: Delivery) -> tuple[list[_Job], list[Outcome]]:
        """The channel jobs of one delivery, and outcomes for channels that cannot even start."""
        contact, notice, jobs = delivery.contact, delivery.notice, []
        refused: list[Outcome] = []
        if contact.email:
            jobs.append(_Job(delivery, "email", "smtp", self._email_sender(delivery)))
        secrets = (
            ("slack", contact.slack_webhook_secret),
            ("pagerduty", contact.pagerduty_routing_key_secret),
        )
        for channel, secret in secrets:
            if secret is None:
                continue
            try:
                value = get_secret(secret)
            except SecretNotFoundError as exc:
                refused.append(
                    Outcome(delivery.team, channel, notice.dedup_key, False, 0, str(exc))
                )
                continue
            if channel == "slack":
                payload = slack_payload(notice, reason=delivery.reason)
                jobs.append(self._post(delivery, "slack", value, payload))
            else:
                payload = pagerduty_payload(notice, routing_key=value)
                jobs.append(self._post(delivery, "pagerduty", self._pagerduty_url(), payload))
        if contact.webhook_url:
            payload = webhook_payload(notice, team=delivery.team, reason=delivery.reason)
            jobs.append(self._post(delivery, "webhook", contact.webhook_url, payload))
        return jobs, refused

    def _post(self, delivery: Delivery, channel: Channel, url: str, payload: dict) -> _Job:
        label = f"{channel} of team {delivery.team}"
        timeout = self.timeout_seconds

        def send(_: smtplib.SMTP | None) -> None:
            post_json(url, payload, label=label, timeout=timeout)

        return _Job(delivery, channel, f"http {url}", send)

    def _email_sender(self, delivery: Delivery) -> Callable[[smtplib.SMTP | None], None]:
        def send(session: smtplib.SMTP | None) -> None:
            assert session is not None, "email jobs run inside an SMTP session"
            message = self._email(delivery)
            send_email(session, message, label=f"email of team {delivery.team}")

        return send

    def _email(self, delivery: Delivery) -> EmailMessage:
        return email_message(
            delivery.notice,
            reason=delivery.reason,
            sender=self._sender(),
            to=delivery.contact.email,
        )

    def _sender(self) -> str:
        return self.smtp_from or os.environ.get("LAKE_SMTP_FROM") or "lakehouse@localhost"

    def _pagerduty_url(self) -> str:
        return self.pagerduty_url or os.environ.get("LAKE_PAGERDUTY_URL") or PAGERDUTY_EVENTS_URL

    def _smtp_settings(self) -> SmtpSettings:
        """SMTP settings from config, else the environment.

        Raises AlertDeliveryError (not retryable) when no host is set or the password is missing.
        """
        host = self.smtp_host or os.environ.get("LAKE_SMTP_HOST")
        if not host:
            raise AlertDeliveryError("email: no SMTP server; set LAKE_SMTP_HOST", retryable=False)
        raw_port = os.environ.get("LAKE_SMTP_PORT") or "25"
        if self.smtp_port is None and not raw_port.isdigit():
            raise AlertDeliveryError(
                f"email: LAKE_SMTP_PORT={raw_port!r} is not a port number", retryable=False
            )
        port = self.smtp_port or int(raw_port)
        password = None
        if self.smtp_password_secret:
            try:
                password = get_secret(self.smtp_password_secret)
            except SecretNotFoundError as exc:
                raise AlertDeliveryError(f"email: {exc}", retryable=False) from None
        return SmtpSettings(host, port, self.smtp_starttls, self.smtp_user, password)

    def _guarded(self, jobs: list[_Job], log: logging.Logger) -> list[Outcome]:
        """Run one server's jobs; a bug in one channel is logged with its traceback and fails
        that server's messages, so the other channels and the sensor still go on."""
        try:
            return self._run_group(jobs, log)
        except Exception as exc:
            log.error(f"{jobs[0].label}: delivery broke ({type(exc).__name__})", exc_info=True)
            error = AlertDeliveryError(f"{jobs[0].label}: {type(exc).__name__}", retryable=False)
            return [job.outcome(Attempted(0, error)) for job in jobs]

    def _run_group(self, jobs: list[_Job], log: logging.Logger) -> list[Outcome]:
        """Run one server's jobs in order; a server that failed every attempt is not tried again."""
        if jobs[0].endpoint != "smtp":
            return self._run_jobs(jobs, lambda job: job.send(None), log)
        try:
            settings = self._smtp_settings()
        except AlertDeliveryError as exc:
            return [job.outcome(Attempted(0, exc)) for job in jobs]
        with _smtp_link(settings, timeout=self.timeout_seconds) as send:
            return self._run_jobs(jobs, send, log)

    def _run_jobs(
        self, jobs: list[_Job], send: Callable[[_Job], None], log: logging.Logger
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        down: AlertDeliveryError | None = None
        for job in jobs:
            if down is not None:
                outcomes.append(job.outcome(Attempted(0, down)))
                continue
            attempted = with_retries(
                lambda job=job: send(job),
                policy=self._policy,
                on_retry=_retry_logger(log, job.label, self.attempts),
            )
            outcomes.append(job.outcome(attempted))
            if attempted.error is not None and attempted.error.retryable:
                down = AlertDeliveryError(f"{job.label}: skipped, its server failed this round")
        return outcomes


@contextmanager
def _smtp_link(settings: SmtpSettings, *, timeout: float) -> Iterator[Callable[[_Job], None]]:
    """A sender over one SMTP session, opened on first use and reopened after a failure."""
    session: smtplib.SMTP | None = None

    def send(job: _Job) -> None:
        nonlocal session
        if session is None:
            session = open_smtp(settings, timeout=timeout)
        try:
            job.send(session)
        except AlertDeliveryError as exc:
            if exc.retryable:
                close_smtp(session)
                session = None
            raise

    try:
        yield send
    finally:
        if session is not None:
            close_smtp(session)


def _retry_logger(
    log: logging.Logger, label: str, attempts: int
) -> Callable[[int, AlertDeliveryError], None]:
    def on_retry(attempt: int, error: AlertDeliveryError) -> None:
        log.info(f"{label}: attempt {attempt}/{attempts} failed ({error}); retrying")

    return on_retry
