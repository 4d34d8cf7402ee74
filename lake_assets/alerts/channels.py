"""Delivery over the wire: JSON POST (Slack, PagerDuty, webhooks) and SMTP, with bounded retries.

Errors carry a label naming the team and channel, never a URL, key or message body: Slack
webhook URLs and PagerDuty routing keys are secrets.
"""

from __future__ import annotations

import http.client
import json
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from lake_assets.errors import AlertDeliveryError


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one delivery tries: attempts in all, first pause, and each request's timeout."""

    attempts: int = 3
    backoff_seconds: float = 0.5
    timeout_seconds: float = 5.0

    def pause(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based): doubling backoff."""
        return self.backoff_seconds * 2 ** (attempt - 1)


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send email; `password` is resolved from its secret before this is built."""

    host: str
    port: int
    starttls: bool = False
    user: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class Attempted:
    """How a delivery went: the attempts used and the last error, None when it was delivered."""

    attempts: int
    error: AlertDeliveryError | None = None

    @property
    def delivered(self) -> bool:
        """True when one attempt succeeded."""
        return self.error is None


def with_retries(
    send: Callable[[], None],
    *,
    policy: RetryPolicy,
    on_retry: Callable[[int, AlertDeliveryError], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Attempted:
    """Call `send` until it succeeds, attempts run out, or it fails in a way retrying cannot mend.

    Returns the outcome; AlertDeliveryError is recorded in it, other exceptions propagate.
    """
    error: AlertDeliveryError | None = None
    for attempt in range(1, policy.attempts + 1):
        try:
            send()
            return Attempted(attempt)
        except AlertDeliveryError as exc:
            error = exc
            if not exc.retryable or attempt == policy.attempts:
                return Attempted(attempt, exc)
            if on_retry is not None:
                on_retry(attempt, exc)
            sleep(policy.pause(attempt))
    return Attempted(policy.attempts, error)


def post_json(url: str, payload: dict[str, Any], *, label: str, timeout: float) -> None:
    """POST `payload` as JSON to `url`; returns when the server answers 2xx.

    Raises AlertDeliveryError (retryable on timeouts, refused connections, 5xx and 429).
    """
    body = json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        retryable = exc.code >= 500 or exc.code == 429
        raise AlertDeliveryError(f"{label}: HTTP {exc.code}", retryable=retryable) from None
    except urllib.error.URLError as exc:
        raise AlertDeliveryError(f"{label}: {_reason(exc.reason)}") from None
    except (TimeoutError, OSError) as exc:
        raise AlertDeliveryError(f"{label}: {_reason(exc)}") from None
    except http.client.HTTPException as exc:
        raise AlertDeliveryError(f"{label}: {type(exc).__name__}") from None
    except ValueError:
        # urllib puts the URL in this message, and a Slack webhook URL is a secret.
        raise AlertDeliveryError(f"{label}: malformed URL", retryable=False) from None


def _reason(reason: object) -> str:
    """A connection failure without the URL: the exception type and errno text only."""
    if isinstance(reason, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(reason, OSError):
        return reason.strerror or type(reason).__name__
    return type(reason).__name__


def open_smtp(settings: SmtpSettings, *, timeout: float) -> smtplib.SMTP:
    """A connected (and, when configured, STARTTLS-upgraded and logged-in) SMTP session.

    Raises AlertDeliveryError when the server cannot be reached or refuses the login.
    """
    label = f"smtp {settings.host}:{settings.port}"
    try:
        session = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
    except (OSError, smtplib.SMTPException) as exc:
        raise AlertDeliveryError(f"{label}: {_reason(exc)}") from None
    try:
        if settings.starttls:
            session.starttls(context=ssl.create_default_context())
        if settings.user:
            session.login(settings.user, settings.password or "")
    except smtplib.SMTPAuthenticationError:
        close_smtp(session)
        raise AlertDeliveryError(f"{label}: login refused", retryable=False) from None
    except (OSError, smtplib.SMTPException) as exc:
        close_smtp(session)
        raise AlertDeliveryError(f"{label}: {type(exc).__name__}") from None
    return session


def send_email(session: smtplib.SMTP, message: EmailMessage, *, label: str) -> None:
    """Send one message over an open session.

    Raises AlertDeliveryError; refused recipients or sender are not retryable.
    """
    try:
        session.send_message(message)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
        raise AlertDeliveryError(f"{label}: {type(exc).__name__}", retryable=False) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise AlertDeliveryError(f"{label}: {type(exc).__name__}") from None


def close_smtp(session: smtplib.SMTP) -> None:
    """End an SMTP session; a server that already hung up gets no QUIT."""
    try:
        session.quit()
    except (OSError, smtplib.SMTPException):
        session.close()
