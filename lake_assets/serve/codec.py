"""PostgreSQL protocol 3.0 messages the endpoint sends, and Arrow results in its text format.

Only what a read-only server needs: authentication (SASL for SCRAM-SHA-256), row descriptions
with PostgreSQL type OIDs, data rows, command tags, errors and the extended-query replies.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections.abc import Iterator, Sequence
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from lake_assets.serve.binary import binary_values

SSL_REQUEST = 80877103
GSS_REQUEST = 80877104
CANCEL_REQUEST = 80877102
PROTOCOL_3 = 196608
TEXT_OID = 25
_NULL = struct.pack("!i", -1)


def message(kind: bytes, payload: bytes = b"") -> bytes:
    """One backend message: its type byte, length and payload."""
    return kind + struct.pack("!I", len(payload) + 4) + payload


def cstring(text: str) -> bytes:
    """`text` as a NUL-terminated UTF-8 string."""
    return text.encode() + b"\0"


def authentication(code: int, data: bytes = b"") -> bytes:
    """AuthenticationOk (0), SASL (10), SASLContinue (11) or SASLFinal (12)."""
    return message(b"R", struct.pack("!I", code) + data)


def sasl_mechanisms(*names: str) -> bytes:
    """AuthenticationSASL offering `names`."""
    return authentication(10, b"".join(cstring(n) for n in names) + b"\0")


def parameter_status(name: str, value: str) -> bytes:
    """ParameterStatus: a server setting the client reads after login."""
    return message(b"S", cstring(name) + cstring(value))


def ready(status: bytes = b"I") -> bytes:
    """ReadyForQuery; the server is always idle (autocommit)."""
    return message(b"Z", status)


def command_complete(tag: str) -> bytes:
    """CommandComplete with `tag` (e.g. `SELECT 5`)."""
    return message(b"C", cstring(tag))


def error(text: str, code: str = "XX000", severity: str = "ERROR") -> bytes:
    """ErrorResponse with SQLSTATE `code`."""
    fields = [(b"S", severity), (b"V", severity), (b"C", code), (b"M", text)]
    return message(b"E", b"".join(k + cstring(v) for k, v in fields) + b"\0")


def parameter_description(oids: Sequence[int]) -> bytes:
    """ParameterDescription: the type of each $n parameter."""
    return message(b"t", struct.pack(f"!H{len(oids)}I", len(oids), *oids))


PARSE_COMPLETE, BIND_COMPLETE, CLOSE_COMPLETE = (message(b"1"), message(b"2"), message(b"3"))
NO_DATA, EMPTY_QUERY = message(b"n"), message(b"I")


def type_oid(dtype: pa.DataType) -> tuple[int, int]:
    """The PostgreSQL type OID and size of an Arrow type (text for what has no match)."""
    if pa.types.is_boolean(dtype):
        return 16, 1
    if pa.types.is_int8(dtype) or pa.types.is_int16(dtype) or pa.types.is_uint8(dtype):
        return 21, 2
    if pa.types.is_int32(dtype) or pa.types.is_uint16(dtype):
        return 23, 4
    if pa.types.is_integer(dtype):
        return 20, 8
    if pa.types.is_float32(dtype):
        return 700, 4
    if pa.types.is_floating(dtype):
        return 701, 8
    if pa.types.is_decimal(dtype):
        return 1700, -1
    if pa.types.is_date(dtype):
        return 1082, 4
    if pa.types.is_timestamp(dtype):
        return (1184 if dtype.tz else 1114), 8
    if pa.types.is_time(dtype):
        return 1083, 8
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return 17, -1
    return TEXT_OID, -1


def column_formats(codes: Sequence[int], count: int) -> list[int]:
    """Per-column result formats (0 text, 1 binary) from a Bind's codes: none means all text,
    one applies to every column."""
    if not codes:
        return [0] * count
    return list(codes) * count if len(codes) == 1 else list(codes)


def row_description(schema: pa.Schema, formats: Sequence[int] = ()) -> bytes:
    """RowDescription of `schema`, each column in its format (text by default)."""
    formats = column_formats(formats, len(schema))
    parts = [struct.pack("!H", len(schema))]
    for field, fmt in zip(schema, formats, strict=True):
        oid, size = type_oid(field.type)
        parts.append(cstring(field.name) + struct.pack("!IhIhih", 0, 0, oid, size, -1, fmt))
    return message(b"T", b"".join(parts))


def data_rows(table: pa.Table, formats: Sequence[int] = ()) -> Iterator[bytes]:
    """A DataRow message per row of `table`, each column in its format (text by default).

    Raises LakeQueryError for binary asked of a type served in text only."""
    formats = column_formats(formats, table.num_columns)
    columns = [binary_values(table.column(i), type_oid(table.schema.field(i).type)[0])
               if formats[i] else _text(table.column(i)) for i in range(table.num_columns)]
    header = struct.pack("!H", table.num_columns)
    for row in zip(*columns, strict=True):
        parts = [header]
        for value in row:
            if value is None:
                parts.append(_NULL)
            else:
                parts.append(struct.pack("!i", len(value)))
                parts.append(value)
        yield message(b"D", b"".join(parts))


def _text(column: pa.ChunkedArray) -> list[bytes | None]:
    """`column`'s values as PostgreSQL text: `t`/`f`, ISO dates, `+00` time zones."""
    dtype = column.type
    if pa.types.is_boolean(dtype):
        return [None if v is None else (b"t" if v else b"f") for v in column.to_pylist()]
    if pa.types.is_timestamp(dtype):
        pattern = "%Y-%m-%d %H:%M:%S" + ("%z" if dtype.tz else "")
        strings = pc.strftime(column, format=pattern)
    elif pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return [None if v is None else b"\\x" + v.hex().encode() for v in column.to_pylist()]
    elif pa.types.is_nested(dtype) or pa.types.is_dictionary(dtype):
        return [None if v is None else json.dumps(v, default=_jsonable).encode()
                for v in column.to_pylist()]
    else:
        strings = column if pa.types.is_string(dtype) else pc.cast(column, pa.string())
    return [None if v is None else v.encode() for v in strings.to_pylist()]


def _jsonable(value: object) -> str:
    if isinstance(value, dt.date | dt.datetime | dt.time | Decimal):
        return str(value)
    return repr(value)
