"""Real SMTP and HTTP servers on loopback that record what alerts reach them, for alert tests.

`RecordingHttp` stands in for Slack, PagerDuty and team webhooks (one path each) and answers
with the status set per path; `RecordingSmtp` is an aiosmtpd server keeping every message.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    """A loopback port nothing listens on (also what a 'closed port' test points at)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RecordingHttp:
    """Requests by path; `status[path]` sets the answer (default 202)."""

    port: int = 0
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        """The full URL of `path` on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        """JSON bodies received on `path`, in order (including those answered with an error)."""
        return [body for seen, body in self.requests if seen == path]

    def raw(self) -> str:
        """Every body received, as one string, for looking for text that must not be there."""
        return json.dumps([body for _, body in self.requests])


@dataclass
class RecordingSmtp:
    """Messages received, parsed."""

    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)

    def to(self, address: str) -> list[EmailMessage]:
        """Messages addressed to `address`."""
        return [m for m in self.messages if address in m["To"]]

    def raw(self) -> str:
        """Every message received, headers and body, as one string."""
        return "\n".join(m.as_string() for m in self.messages)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        record = self.server.record
        record.requests.append((self.path, body))
        code = record.status.get(self.path, 202)
        payload = json.dumps({"status": "success" if code < 300 else "error"}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest output is for failures."""


class _Server(ThreadingHTTPServer):
    record: RecordingHttp


class _SmtpHandler:
    def __init__(self, record: RecordingSmtp) -> None:
        self.record = record

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.record.messages.append(parsed)
        return "250 Message accepted"


@contextmanager
def serve_http() -> Iterator[RecordingHttp]:
    """A ThreadingHTTPServer on 127.0.0.1 in a thread, stopped on exit."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.record = RecordingHttp(port=server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.record
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def serve_smtp() -> Iterator[RecordingSmtp]:
    """An aiosmtpd server on 127.0.0.1, stopped on exit."""
    record = RecordingSmtp(port=free_port())
    controller = Controller(_SmtpHandler(record), hostname="127.0.0.1", port=record.port)
    controller.start()
    try:
        yield record
    finally:
        controller.stop()
