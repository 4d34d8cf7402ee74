"""The PostgreSQL wire-protocol endpoint: TLS when a certificate is configured, SCRAM-SHA-256
logins, the simple and extended query protocols, over the governed `Engine`.

Each client is an asyncio task; its statements run on a thread pool, where DuckDB releases the
GIL, so slow queries do not hold up other clients.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
from concurrent.futures import ThreadPoolExecutor

from scramp import ScramException

import lake_assets.serve.codec as codec
from lake_assets.errors import AccessDeniedError, LakehouseError
from lake_assets.serve.auth import MECHANISM, Credentials, LoginGuard
from lake_assets.serve.engine import Engine, Result, Session
from lake_assets.serve.extended import ExtendedQueries
from lake_assets.serve.pgcompat import SERVER_VERSION
from lake_assets.serve.replies import error_for, reply
from lake_assets.storage.audit import AuditRecord

log = logging.getLogger(__name__)


class ClientError(Exception):
    """The client broke the protocol or failed to log in; the connection ends."""


class Endpoint:
    """Serves `engine` to PostgreSQL clients on `host:port`."""

    def __init__(self, engine: Engine, credentials: Credentials, *, host: str = "127.0.0.1",
                 port: int = 5433, tls: ssl.SSLContext | None = None,
                 guard: LoginGuard | None = None, workers: int = 8) -> None:
        self.engine = engine
        self.credentials = credentials
        self.host, self.port, self.tls = host, port, tls
        self.guard = guard or LoginGuard()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="serve")

    async def serve(self, started: asyncio.Event | None = None) -> None:
        """Accept clients until cancelled."""
        server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        log.info("serving PostgreSQL clients on %s:%s (TLS %s)", self.host, self.port,
                 "on" if self.tls else "off")
        if started is not None:
            started.set()
        async with server:
            await server.serve_forever()

    def close(self) -> None:
        """Stop the query threads and commit the audit rows still buffered."""
        self.pool.shutdown(wait=True)
        if self.engine.audit is not None:
            self.engine.audit.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = str(writer.get_extra_info("peername", ("?",))[0])
        session: Session | None = None
        try:
            params = await self._startup(reader, writer)
            if params is None:
                return
            user = params.get("user", "")
            session = await self._login(reader, writer, user, client)
            await self._queries(reader, writer, session)
        except (ClientError, asyncio.IncompleteReadError, ConnectionError,
                asyncio.CancelledError):
            pass  # the client left, broke the protocol or failed to log in; the server stops
        finally:
            if session is not None:
                session.close()
            writer.close()

    async def _startup(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> dict[str, str] | None:
        while True:
            length, code = struct.unpack("!II", await reader.readexactly(8))
            body = await reader.readexactly(length - 8)
            if code == codec.SSL_REQUEST:
                writer.write(b"S" if self.tls else b"N")
                await writer.drain()
                if self.tls:
                    await writer.start_tls(self.tls)
            elif code == codec.GSS_REQUEST:
                writer.write(b"N")
            elif code == codec.CANCEL_REQUEST:
                return None
            elif code == codec.PROTOCOL_3:
                items = body.rstrip(b"\0").split(b"\0")
                return {k.decode(): v.decode() for k, v in zip(items[::2], items[1::2],
                                                                strict=False)}
            else:
                raise ClientError(f"unsupported protocol {code}")

    async def _login(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     user: str, client: str) -> Session:
        wait = self.guard.wait(user, client)
        if wait:
            await self._refuse(writer, user, client, f"too many failed logins; try again in "
                                                     f"{wait:.0f} s")
        exchange = self.credentials.exchange(user)
        writer.write(codec.sasl_mechanisms(MECHANISM))
        await writer.drain()
        try:
            body = await _password(reader)
            first = body.partition(b"\0")[2][4:].decode()
            exchange.set_client_first(named_client_first(first, user))
            exchange.client_first_bare = first.split(",", 2)[2]  # what the client signed
            writer.write(codec.authentication(11, exchange.get_server_first().encode()))
            await writer.drain()
            exchange.set_client_final((await _password(reader)).decode())
        except (ScramException, UnicodeDecodeError) as exc:
            self.guard.failed(user, client)
            await self._refuse(writer, user, client, f"password authentication failed for "
                                                     f"user {user!r}", detail=str(exc))
        writer.write(codec.authentication(12, exchange.get_server_final().encode()))
        try:
            session = self.engine.session(user, client=client)
        except AccessDeniedError as exc:
            await self._refuse(writer, user, client, str(exc))
        self.guard.succeeded(user, client)
        writer.write(codec.authentication(0))
        for name, value in (("server_version", SERVER_VERSION), ("server_encoding", "UTF8"),
                            ("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"),
                            ("TimeZone", "UTC"), ("integer_datetimes", "on"),
                            ("standard_conforming_strings", "on"), ("is_superuser", "off")):
            writer.write(codec.parameter_status(name, value))
        writer.write(codec.message(b"K", struct.pack("!II", 0, 0)) + codec.ready())
        await writer.drain()
        return session

    async def _refuse(self, writer: asyncio.StreamWriter, user: str, client: str,
                      reason: str, *, detail: str = "") -> None:
        log.warning("login refused: user %s from %s: %s %s", user, client, reason, detail)
        self.engine.record(AuditRecord(principal=user, role=None, client=client, path="serve",
                                       sql="<login>", allowed=False, reason=reason))
        writer.write(codec.error(reason, "28P01", "FATAL"))
        await writer.drain()
        raise ClientError(reason)

    async def _queries(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       session: Session) -> None:
        extended = ExtendedQueries(session, self._run)
        while True:
            kind, body = await _read(reader)
            if kind == b"X":
                return
            if kind == b"Q":
                await self._simple(writer, session, body[:-1].decode())
            else:
                writer.write(await extended.handle(kind, body))
            await writer.drain()

    async def _simple(self, writer: asyncio.StreamWriter, session: Session, sql: str) -> None:
        for statement in split(session, sql) or [""]:
            try:
                result = await self._run(session, statement, None)
            except LakehouseError as exc:
                writer.write(error_for(exc))
                break
            writer.write(b"".join(reply(result, describe=True)))
        writer.write(codec.ready())

    async def _run(self, session: Session, sql: str, params: list | None) -> Result:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, session.execute, sql, params)


def split(session: Session, sql: str) -> list[str]:
    """The statements of a simple query (DuckDB's own parser; one piece if it cannot parse)."""
    if not sql.strip():
        return []
    try:
        texts = [s.query for s in session.cursor.extract_statements(sql)]
    except Exception:  # time travel and PostgreSQL-only syntax: one statement, parsed later
        return [sql]
    # A statement DuckDB expands into several (PIVOT) has no text of its own: keep it whole.
    return texts if texts and all(t.strip() for t in texts) else [sql]


def named_client_first(message: str, user: str) -> str:
    """`message` (SCRAM client-first) with the startup user in its empty `n=` attribute:
    PostgreSQL clients leave it empty, and scramp (1.5) refuses an empty attribute."""
    header, _, bare = message.partition(",")
    authzid, _, bare = bare.partition(",")
    if bare.startswith("n=,"):
        bare = "n=" + user.replace("=", "=3D").replace(",", "=2C") + bare[2:]
    return f"{header},{authzid},{bare}"


async def _password(reader: asyncio.StreamReader) -> bytes:
    kind, body = await _read(reader)
    if kind != b"p":
        raise ClientError(f"expected a SASL response, got message {kind!r}")
    return body


async def _read(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    kind = await reader.readexactly(1)
    (length,) = struct.unpack("!I", await reader.readexactly(4))
    return kind, await reader.readexactly(length - 4)
