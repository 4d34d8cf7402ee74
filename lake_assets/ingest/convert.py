"""Convert raw string columns to their declared types, vectorised with pyarrow.compute.

Conversion is strict: a value converts to exactly what it states or is rejected. Dates and
timestamps match their format's exact layout first (`catalog.formats.strict_pattern`), so a
value of the wrong width never reads as another instant; Arrow's fast path is kept only where it
provably agrees with Python's parser, and the few rows it cannot settle fall back to Python.
Named formats (`hl7`, `iso8601`) have parsers of their own (`ingest.temporal`). Dates and
timestamps before the column's floor (default 1850-01-01) are rejected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc

from lake_assets.catalog.formats import DEFAULT_FORMATS, HL7, ISO8601, strict_pattern
from lake_assets.catalog.models import Column
from lake_assets.ingest.temporal import before, parse_hl7, parse_iso8601

__all__ = ["DEFAULT_FORMATS", "Conversion", "arrow_type", "convert"]

TRUE_VALUES = ("true", "1", "y")
FALSE_VALUES = ("false", "0", "n")
_INTEGER = r"^[+-]?[0-9]+$"
_DOUBLE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
# Directives Arrow's strptime does not handle the way Python does; such formats use Python only.
_PYTHON_ONLY = ("%f", "%z", "%y", "%I", "%p", "%b", "%B", "%a", "%A", "%j")


@dataclass(frozen=True)
class Conversion:
    """One column converted: typed values (null where empty or rejected), the rows whose
    non-empty raw value was rejected, those of them that were dates before the column's floor,
    and (format `hl7`) each value's precision."""

    values: pa.Array
    failed: pa.Array
    early: pa.Array | None = None
    precision: pa.Array | None = None


def arrow_type(column: Column) -> pa.DataType:
    """The Arrow type of `column` in bronze: timestamps that may carry an offset (`hl7`,
    `iso8601`, `%z`) are UTC."""
    if column.type == "timestamp":
        fmt = column.format or ""
        zoned = fmt in (HL7, ISO8601) or "%z" in fmt
        return pa.timestamp("us", tz="UTC") if zoned else pa.timestamp("us")
    return _TYPES[column.type]


def convert(column: Column, raw: pa.Array) -> Conversion:
    """`raw` strings as `column`'s type; empty and absent values become null, not failures.

    Strings keep their blanks; other types are trimmed first. Failed rows are null in the values.
    """
    none = pa.repeat(False, len(raw))
    if column.type == "string":
        return Conversion(_blank_to_null(raw), none)
    values = _blank_to_null(pc.utf8_trim_whitespace(raw))
    if column.type in ("date", "timestamp"):
        return _temporal(column, values)
    out = _CONVERTERS[column.type](column, values)
    return Conversion(out, pc.and_(pc.is_valid(values), pc.is_null(out)))


def _temporal(column: Column, values: pa.Array) -> Conversion:
    """Dates and timestamps by the column's format, then its floor."""
    target = arrow_type(column)
    precision = None
    if column.format == HL7:
        parsed = parse_hl7(values, kind=column.type, target=target)
        out, precision = parsed.values, parsed.precision
    elif column.format == ISO8601:
        out = parse_iso8601(values, kind=column.type, target=target).values
    else:
        out = _strptime(column, values, target)
    early = before(out, column.floor)
    if pc.any(early).as_py():
        out = _null_where(early, out)
        precision = None if precision is None else _null_where(early, precision)
    failed = pc.and_(pc.is_valid(values), pc.is_null(out))
    return Conversion(out, failed, early, precision)


def _blank_to_null(values: pa.Array) -> pa.Array:
    return _null_where(pc.equal(values, ""), values)


def _null_where(mask: pa.Array, values: pa.Array) -> pa.Array:
    """`values` with nulls where `mask` is true.

    Not `if_else(mask, <null scalar>, values)`: before Arrow 24 that shortcut ignores the offset
    of a sliced string array and returns other rows' bytes (apache/arrow#49410).
    """
    return pc.if_else(mask, pa.nulls(len(values), values.type), values)


def _integer(column: Column, values: pa.Array) -> pa.Array:
    low, high = _INT32 if column.type == "integer" else _INT64
    candidates = _null_where(pc.invert(pc.match_substring_regex(values, _INTEGER)), values)
    candidates = pc.replace_substring_regex(candidates, r"^\+", "")
    try:
        wide = pc.cast(candidates, pa.int64())
    except pa.ArrowInvalid:  # a value past int64: settle each row in Python
        wide = pa.array([_int_or_none(v, low, high) for v in candidates.to_pylist()], pa.int64())
    inside = pc.and_(pc.greater_equal(wide, low), pc.less_equal(wide, high))
    return pc.cast(pc.if_else(inside, wide, pa.scalar(None, pa.int64())), arrow_type(column))


def _int_or_none(value: str | None, low: int, high: int) -> int | None:
    if value is None:
        return None
    number = int(value)
    return number if low <= number <= high else None


def _double(column: Column, values: pa.Array) -> pa.Array:
    candidates = _null_where(pc.invert(pc.match_substring_regex(values, _DOUBLE)), values)
    numbers = pc.cast(candidates, pa.float64())
    return pc.if_else(pc.is_finite(numbers), numbers, pa.scalar(None, pa.float64()))


def _boolean(column: Column, values: pa.Array) -> pa.Array:
    lowered = pc.utf8_lower(values)
    true = pc.is_in(lowered, value_set=pa.array(TRUE_VALUES))
    false = pc.is_in(lowered, value_set=pa.array(FALSE_VALUES))
    none = pa.scalar(None, pa.bool_())
    return pc.if_else(true, True, pc.if_else(false, False, none))


def _strptime(column: Column, values: pa.Array, target: pa.DataType) -> pa.Array:
    """Values matching the format's exact layout, parsed with strptime semantics (Feb 30 is a
    failure); anything else is null."""
    fmt = column.format or DEFAULT_FORMATS[column.type]
    values = _null_where(pc.invert(pc.match_substring_regex(values, strict_pattern(fmt))), values)
    python = _python_parser(column.type, fmt)
    if any(directive in fmt for directive in _PYTHON_ONLY):
        return pa.array([python(v) for v in values.to_pylist()], target)
    parsed, settled = _numeric_fast_path(values, fmt) or _round_trip_fast_path(values, fmt)
    unsettled = pc.and_(pc.is_valid(values), pc.invert(pc.fill_null(settled, False)))
    fast = pc.cast(parsed, target)
    if not pc.any(unsettled).as_py():
        return fast
    redo = pc.filter(values, unsettled).to_pylist()
    return pc.replace_with_mask(fast, unsettled, pa.array([python(v) for v in redo], target))


def _numeric_fast_path(values: pa.Array, fmt: str) -> tuple[pa.Array, pa.Array] | None:
    """Zero-padded numeric formats (%Y %m %d %H %M %S, each once): values (already matched to
    the format's exact layout) are settled when Arrow did not roll them over (Feb 30 into
    March, second 60 into the next minute), checked by comparing the parsed day and second
    with the digits sent."""
    layout = _fixed_layout(fmt)
    if layout is None:
        return None
    _, offsets = layout
    matched = pc.is_valid(values)
    parsed = pc.strptime(values, format=fmt, unit="s", error_is_null=True)
    settled = matched
    for code, extract in (("d", pc.day), ("S", pc.second)):
        if code in offsets:
            digits = pc.utf8_slice_codeunits(values, offsets[code], offsets[code] + 2)
            sent = pc.cast(_null_where(pc.invert(matched), digits), pa.int64())
            settled = pc.and_(settled, pc.equal(extract(parsed), sent))
    return parsed, settled


def _round_trip_fast_path(values: pa.Array, fmt: str) -> tuple[pa.Array, pa.Array]:
    """Any other format: a value is settled when it formats back to itself."""
    parsed = pc.strptime(values, format=fmt, unit="s", error_is_null=True)
    return parsed, pc.equal(pc.strftime(parsed, format=fmt), values)


_DIGITS = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2}


@lru_cache(maxsize=256)
def _fixed_layout(fmt: str) -> tuple[str, dict[str, int]] | None:
    """An RE2 pattern of `fmt`'s exact layout and the offset of each directive, or None when
    `fmt` uses anything but zero-padded %Y %m %d %H %M %S, each at most once."""
    pattern = ["^"]
    offsets: dict[str, int] = {}
    position = 0
    for token in re.findall(r"%.|[^%]", fmt):
        if token.startswith("%") and token != "%%":
            code = token[1]
            if code not in _DIGITS or code in offsets:
                return None
            offsets[code] = position
            pattern.append(f"[0-9]{{{_DIGITS[code]}}}")
            position += _DIGITS[code]
        else:
            pattern.append(re.escape(token[-1]))
            position += 1
    return "".join(pattern) + "$", offsets


def _python_parser(kind: str, fmt: str) -> Callable[[str | None], date | datetime | None]:
    def parse(value: str | None) -> date | datetime | None:
        if value is None:
            return None
        try:
            moment = datetime.strptime(value, fmt)
        except ValueError:
            return None
        if kind == "date":
            return moment.date()
        if moment.tzinfo is not None:
            return moment.astimezone(UTC)
        return moment

    return parse


_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int32(),
    "long": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
}
_CONVERTERS: dict[str, Callable[[Column, pa.Array], pa.Array]] = {
    "integer": _integer,
    "long": _integer,
    "double": _double,
    "boolean": _boolean,
}
