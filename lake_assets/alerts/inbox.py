"""A local alert inbox for development: `lakehouse inbox`, which `make run` starts.

It receives what the alert router sends, on loopback: e-mail over SMTP (aiosmtpd) and Slack,
PagerDuty and webhook posts over HTTP (any path). Each message becomes one JSON line in the
mailbox file, and `GET /` lists them newest first, so a developer sees an alert arrive instead
of a warning that it could not be delivered. Alerts carry no patient data (`alerts.messages`).
Production channels still come from `owners.yaml`; this is only for a laptop.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import html
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

# Most messages a page lists.
PAGE_MESSAGES = 200


@dataclass
class Mailbox:
    """Messages as JSON lines in `path`; appends are serialized."""

    path: Path

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, channel: str, **fields: Any) -> None:
        """Append one message received on `channel` (email, slack, pagerduty, webhook)."""
        line = json.dumps({"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                           "channel": channel, **fields})
        with self._lock, self.path.open("a") as out:
            out.write(line + "\n")

    def messages(self) -> list[dict[str, Any]]:
        """Every message, oldest first."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]


class _Smtp:
    """aiosmtpd handler: one message per accepted mail."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain", "html"))
        self.mailbox.add("email", to=list(envelope.rcpt_tos), subject=message["subject"] or "",
                         text=body.get_content() if body is not None else "")
        return "250 Message accepted"


def _channel(path: str) -> str:
    first = path.strip("/").split("/", 1)[0]
    return first if first in ("slack", "pagerduty") else "webhook"


def _handler(mailbox: Mailbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                payload: Any = json.loads(raw or b"null")
            except ValueError:
                payload = raw.decode(errors="replace")
            mailbox.add(_channel(self.path), path=self.path, payload=payload)
            self._reply(202, "application/json", b'{"status": "accepted"}')

        def do_GET(self) -> None:
            found = mailbox.messages()[-PAGE_MESSAGES:][::-1]
            if self.path.startswith("/messages.json"):
                self._reply(200, "application/json", json.dumps(found).encode())
                return
            self._reply(200, "text/html; charset=utf-8", _page(found).encode())

        def _reply(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the mailbox is the log

    return Handler


def _page(messages: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(m['at'])}</td><td>{html.escape(m['channel'])}</td>"
        f"<td>{html.escape(', '.join(m.get('to') or []) or m.get('path', ''))}</td>"
        f"<td>{html.escape(m.get('subject') or '')}</td>"
        f"<td><pre>{html.escape(m.get('text') or json.dumps(m.get('payload'), indent=1))}"
        "</pre></td></tr>"
        for m in messages)
    return ("<!doctype html><meta http-equiv=refresh content=10><title>Lakehouse alerts</title>"
            "<h1>Alerts received</h1><p>Newest first; the page refreshes every 10 s.</p>"
            "<table border=1 cellpadding=4><tr><th>at</th><th>channel</th><th>to</th>"
            f"<th>subject</th><th>message</th></tr>{rows}</table>")


@contextmanager
def running_inbox(mailbox: Mailbox, *, host: str = "127.0.0.1", smtp_port: int = 8025,
                  http_port: int = 8765) -> Iterator[tuple[int, int]]:
    """Serve the inbox until the block ends; yields the (SMTP, HTTP) ports bound."""
    smtp = Controller(_Smtp(mailbox), hostname=host, port=smtp_port)
    smtp.start()
    web = ThreadingHTTPServer((host, http_port), _handler(mailbox))
    thread = threading.Thread(target=web.serve_forever, name="inbox-http", daemon=True)
    thread.start()
    try:
        yield smtp.port, web.server_address[1]
    finally:
        web.shutdown()
        web.server_close()
        smtp.stop()
