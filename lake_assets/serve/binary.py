"""Result values in PostgreSQL's binary format, for clients that ask for it per column (pgjdbc
does once a statement has run five times): integers, floats, booleans, text, bytea, dates,
timestamps and numerics."""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable
from decimal import Decimal

import pyarrow as pa

from lake_assets.errors import LakeQueryError

_EPOCH_DATE = dt.date(2000, 1, 1)
_EPOCH = dt.datetime(2000, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=dt.UTC)
_STRUCTS = {16: "!?", 21: "!h", 23: "!i", 20: "!q", 700: "!f", 701: "!d"}


def binary_values(column: pa.ChunkedArray, oid: int) -> list[bytes | None]:
    """`column`'s values in binary format for type `oid`; raises LakeQueryError for a type
    served in text only."""
    encode = _encoder(column.type, oid)
    return [None if v is None else encode(v) for v in column.to_pylist()]


def _encoder(dtype: pa.DataType, oid: int) -> Callable[[object], bytes]:
    if oid in _STRUCTS:
        packer = struct.Struct(_STRUCTS[oid])
        return lambda v: packer.pack(v)
    if oid in (25, 1043):
        return lambda v: str(v).encode()
    if oid == 17:
        return bytes  # type: ignore[return-value]
    if oid == 1082:
        return lambda v: struct.pack("!i", (v - _EPOCH_DATE).days)  # type: ignore[operator]
    if oid in (1114, 1184):
        return _timestamp
    if oid == 1700:
        return _numeric  # type: ignore[return-value]
    raise LakeQueryError(f"type {dtype} is served in text format only")


def _timestamp(value: object) -> bytes:
    assert isinstance(value, dt.datetime)
    delta = value - (_EPOCH_UTC if value.tzinfo else _EPOCH)
    return struct.pack("!q", (delta.days * 86_400 + delta.seconds) * 1_000_000
                       + delta.microseconds)


def _numeric(value: Decimal) -> bytes:
    """PostgreSQL's numeric: base-10000 digits, the weight of the first, sign and scale."""
    sign, digits, exponent = value.as_tuple()
    scale = max(0, -int(exponent))
    text = "".join(map(str, digits)) or "0"
    whole, fraction = (text[:len(text) - scale] or "0", text[len(text) - scale:]) if scale \
        else (text + "0" * int(exponent), "")
    whole = whole.zfill((len(whole) + 3) // 4 * 4)
    fraction = fraction.ljust((len(fraction) + 3) // 4 * 4, "0")
    groups = [int(whole[i:i + 4]) for i in range(0, len(whole), 4)]
    weight = len(groups) - 1
    groups += [int(fraction[i:i + 4]) for i in range(0, len(fraction), 4)]
    while groups and groups[0] == 0 and weight >= 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    return struct.pack(f"!hhhh{len(groups)}h", len(groups), weight if groups else 0,
                       0x4000 if sign else 0, scale, *groups)
