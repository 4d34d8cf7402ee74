"""The extended query protocol (Parse, Bind, Describe, Execute, Sync) that psycopg, pgjdbc and
most BI drivers use, over a `Session`.

A portal's statement runs when it is described or executed, whichever comes first, and its
result is kept for the Execute that follows. After an error, messages are skipped until Sync,
as PostgreSQL does.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

import lake_assets.serve.codec as codec
from lake_assets.errors import LakehouseError, LakeQueryError
from lake_assets.serve.engine import Result, Session
from lake_assets.serve.replies import error_for, reply

Runner = Callable[[Session, str, list | None], Awaitable[Result]]
_TEXT_PARSERS: dict[int, Callable[[str], object]] = {
    16: lambda v: v.lower() in ("t", "true", "1", "on", "yes"),
    20: int, 21: int, 23: int, 700: float, 701: float, 1700: Decimal,
    1082: dt.date.fromisoformat, 1114: dt.datetime.fromisoformat,
    1184: dt.datetime.fromisoformat,
}
_BINARY_FORMATS = {16: "?", 20: "!q", 21: "!h", 23: "!i", 700: "!f", 701: "!d"}


@dataclass
class _Portal:
    sql: str
    params: list
    formats: tuple[int, ...] = ()
    result: Result | None = None


@dataclass
class ExtendedQueries:
    """One connection's prepared statements and portals."""

    session: Session
    run: Runner
    statements: dict[str, tuple[str, list[int]]] = field(default_factory=dict)
    portals: dict[str, _Portal] = field(default_factory=dict)
    failed: bool = False

    async def handle(self, kind: bytes, body: bytes) -> bytes:
        """The reply to one extended-protocol message."""
        if kind == b"S":
            self.failed = False
            return codec.ready()
        if kind == b"H" or self.failed:
            return b""
        try:
            return await self._handle(kind, body)
        except LakehouseError as exc:
            self.failed = True
            return error_for(exc)

    async def _handle(self, kind: bytes, body: bytes) -> bytes:
        if kind == b"P":
            name, rest = _cstring(body)
            sql, rest = _cstring(rest)
            (count,) = struct.unpack_from("!H", rest)
            oids = list(struct.unpack_from(f"!{count}I", rest, 2))
            self.statements[name] = (sql, oids)
            return codec.PARSE_COMPLETE
        if kind == b"B":
            self._bind(body)
            return codec.BIND_COMPLETE
        if kind == b"D":
            return await self._describe(body[:1], _cstring(body[1:])[0])
        if kind == b"E":
            return await self._execute(_cstring(body)[0])
        if kind == b"C":
            target = self.statements if body[:1] == b"S" else self.portals
            target.pop(_cstring(body[1:])[0], None)
            return codec.CLOSE_COMPLETE
        raise LakeQueryError(f"unsupported message {kind!r}")

    def _bind(self, body: bytes) -> None:
        portal, rest = _cstring(body)
        name, rest = _cstring(rest)
        if name not in self.statements:
            raise LakeQueryError(f"prepared statement {name!r} does not exist")
        sql, oids = self.statements[name]
        offset = 0
        (count,) = struct.unpack_from("!H", rest, offset)
        formats = list(struct.unpack_from(f"!{count}H", rest, offset + 2))
        offset += 2 + 2 * count
        (count,) = struct.unpack_from("!H", rest, offset)
        offset += 2
        params = []
        for index in range(count):
            (size,) = struct.unpack_from("!i", rest, offset)
            offset += 4
            raw = None if size < 0 else rest[offset:offset + size]
            offset += max(size, 0)
            fmt = formats[index] if len(formats) > 1 else (formats[0] if formats else 0)
            oid = oids[index] if index < len(oids) else 0
            params.append(_param(raw, oid, fmt))
        (count,) = struct.unpack_from("!H", rest, offset)
        results = struct.unpack_from(f"!{count}H", rest, offset + 2)
        self.portals[portal] = _Portal(sql, params, tuple(results))

    async def _describe(self, kind: bytes, name: str) -> bytes:
        if kind == b"S":
            sql, oids = self.statements[name]
            count = sql.count("$")
            described = [o or codec.TEXT_OID for o in oids] + [codec.TEXT_OID] * (
                count - len(oids))
            result = await self.run(self.session, sql, [None] * count or None)
            head = codec.parameter_description(described[:count])
        else:
            portal = self.portals[name]
            portal.result = portal.result or await self.run(self.session, portal.sql,
                                                            portal.params or None)
            result, head = portal.result, b""
            if result.rows is not None:
                return codec.row_description(result.rows.schema, portal.formats)
        if result.rows is None:
            return head + codec.NO_DATA
        return head + codec.row_description(result.rows.schema)

    async def _execute(self, name: str) -> bytes:
        portal = self.portals[name]
        result = portal.result or await self.run(self.session, portal.sql, portal.params or None)
        portal.result = None
        return b"".join(reply(result, describe=False, formats=portal.formats))


def _cstring(data: bytes) -> tuple[str, bytes]:
    text, _, rest = data.partition(b"\0")
    return text.decode(), rest


def _param(raw: bytes | None, oid: int, fmt: int) -> object:
    if raw is None:
        return None
    if fmt == 1:
        if oid in _BINARY_FORMATS:
            return struct.unpack(_BINARY_FORMATS[oid], raw)[0]
        if oid == 17:
            return raw
        return raw.decode()
    text = raw.decode()
    parser = _TEXT_PARSERS.get(oid)
    return parser(text) if parser else text
