"""Build and run the endpoint: `build_endpoint` assembles engine, logins, TLS and audit;
`running` serves it from a background thread (tests, benchmarks); `serve_forever` in the
foreground (`lakehouse serve`)."""

from __future__ import annotations

import asyncio
import signal
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lake_assets.catalog.catalog import Catalog
from lake_assets.errors import ServeError
from lake_assets.serve.auth import Credentials, LoginGuard
from lake_assets.serve.engine import Engine
from lake_assets.serve.wire import Endpoint
from lake_assets.storage.audit import AUDIT_TABLE, AuditLog, AuditWriter
from lake_assets.storage.lake import Lake


def tls_context(cert: Path | str, key: Path | str) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2+) for `cert` and `key`; raises ServeError naming a
    missing or unreadable file."""
    for path in (cert, key):
        if not Path(path).is_file():
            raise ServeError(f"TLS file {path} does not exist")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise ServeError(f"TLS certificate {cert} or key {key} cannot be used: {exc}") from exc
    return context


def audit_log(lake: Lake) -> AuditLog:
    """The lake's audit table."""
    ref = lake.ref(AUDIT_TABLE)
    return AuditLog(ref.uri, ref.options or None)


def build_endpoint(lake: Lake, catalog: Catalog, *, host: str = "127.0.0.1", port: int = 5433,
                   tls_cert: Path | str | None = None, tls_key: Path | str | None = None,
                   guard: LoginGuard | None = None, audit_interval: float = 1.0) -> Endpoint:
    """The endpoint over `lake` for the users of `catalog`'s access policy.

    Raises ServeError for a TLS file that cannot be used, or only one of cert and key.
    """
    if (tls_cert is None) != (tls_key is None):
        raise ServeError("TLS needs both a certificate and a key")
    tls = tls_context(tls_cert, tls_key) if tls_cert and tls_key else None
    engine = Engine(lake, catalog, audit=AuditWriter(audit_log(lake), interval=audit_interval))
    return Endpoint(engine, Credentials(engine.policy), host=host, port=port, tls=tls,
                    guard=guard)


def serve_forever(endpoint: Endpoint) -> None:
    """Serve until interrupted or terminated, then commit the audit rows still buffered."""
    signal.signal(signal.SIGTERM, _interrupt)  # `make run` stops it with SIGTERM
    try:
        asyncio.run(endpoint.serve())
    except KeyboardInterrupt:
        pass
    finally:
        endpoint.close()


def _interrupt(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def running(endpoint: Endpoint) -> Iterator[Endpoint]:
    """`endpoint` served from a background thread; stopped (audit committed) on exit."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    ready = asyncio.Event()

    async def main() -> None:
        task = asyncio.ensure_future(endpoint.serve(ready))
        await ready.wait()
        started.set()
        await task

    thread = threading.Thread(target=lambda: _run(loop, main()), daemon=True)
    thread.start()
    if not started.wait(60):
        raise ServeError(f"the endpoint did not start on {endpoint.host}:{endpoint.port}")
    try:
        yield endpoint
    finally:
        if not loop.is_closed():
            loop.call_soon_threadsafe(_cancel_all, loop)
        thread.join(30)
        endpoint.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()


def _run(loop: asyncio.AbstractEventLoop, main: object) -> None:
    try:
        loop.run_until_complete(main)  # type: ignore[arg-type]
    except asyncio.CancelledError:
        pass
    finally:
        loop.close()
