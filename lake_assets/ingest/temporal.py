"""Strict dates and timestamps, vectorised with pyarrow.compute: HL7 DTM/TS and ISO 8601.

Both are read by their grammar, never by a lenient parser: a value either matches exactly and
converts to the instant it states, or it is rejected (null). Values with an offset are stored in
UTC; values without one are stored as sent. HL7 values also report their precision.

No maintained Python library parses HL7 DTM strictly: python-hl7's `parse_datetime` accepts
partial fractions and any offset width, hl7apy validates against a version's data type only when
the whole message is modelled, and `dateutil` guesses. Their grammar is small, so it lives here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from lake_assets.catalog.formats import PRECISIONS

_HL7 = (r"^(?P<digits>[0-9]{4}(?:[0-9]{2}){0,5})(?:\.(?P<fraction>[0-9]{1,4}))?"
        r"(?P<zone>[+-][0-9]{4})?$")
_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_ISO = (r"^(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})[T ](?P<clock>[0-9]{2}:[0-9]{2}(?::[0-9]{2})?)"
        r"(?:[.,](?P<fraction>[0-9]{1,9}))?(?P<zone>Z|[+-][0-9]{2}(?::?[0-9]{2})?)?$")
# What a value of each HL7 length lacks to read as %Y%m%d%H%M%S: Jan 1, midnight.
_HL7_FILL = pa.array(["0101000000", "01000000", "000000", "0000", "00", ""], pa.string())
_SECONDS = "%Y%m%d%H%M%S"
_MICROS = 1_000_000


@dataclass(frozen=True)
class Parsed:
    """Typed values (null where rejected) and, for HL7, each value's precision."""

    values: pa.Array
    precision: pa.Array | None = None


def parse_hl7(values: pa.Array, *, kind: str, target: pa.DataType) -> Parsed:
    """HL7 DTM/TS values: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`.

    Missing parts read as the start of the period (`2008` is 2008-01-01 00:00), and the
    precision (`year` ... `second.4`) says which parts were sent. Timestamps with an offset are
    shifted to UTC; dates keep the day as sent. Anything else is null.
    """
    parts = pc.extract_regex(values, _HL7)
    digits = pc.struct_field(parts, "digits")
    length = pc.utf8_length(digits)
    step = pc.divide(pc.subtract(length, 4), 2)
    padded = pc.binary_join_element_wise(digits, pc.take(_HL7_FILL, step), "")
    local = _exact_seconds(padded, _SECONDS, day_at=6, second_at=12)
    # Most feeds send neither fractions nor offsets: their arithmetic is skipped then.
    fraction = _sent(pc.struct_field(parts, "fraction"))
    zone = _sent(pc.struct_field(parts, "zone"))
    digits_sent = step
    if fraction is not None:
        # A fraction belongs to seconds only.
        local = _null_where(pc.and_(pc.is_valid(fraction), pc.not_equal(length, 14)), local)
        digits_sent = pc.add(step, pc.fill_null(pc.utf8_length(fraction), 0))
    precision = pc.take(pa.array(PRECISIONS, pa.string()), digits_sent)
    offset = _hl7_offset(zone) if zone is not None else None
    if kind == "date":
        typed = pc.cast(local, pa.date32())
        if zone is not None:
            typed = _null_where(pc.and_(pc.is_valid(zone), pc.is_null(offset)), typed)
    else:
        if fraction is not None:
            local = _plus_fraction(local, fraction)
        typed = pc.cast(local, target) if zone is None else _to_utc(local, zone, offset, target)
    return Parsed(typed, _null_where(pc.is_null(typed), precision))


def parse_iso8601(values: pa.Array, *, kind: str, target: pa.DataType) -> Parsed:
    """ISO 8601 values: dates `YYYY-MM-DD`; timestamps `YYYY-MM-DDTHH:MM[:SS][.fff…]` with an
    optional `Z` or offset (`+05:30`, `+0530`, `+05`), shifted to UTC.

    A fraction finer than microseconds is accepted only when its extra digits are zeros.
    """
    if kind == "date":
        matched = pc.match_substring_regex(values, _ISO_DATE)
        parsed = _exact_seconds(_null_where(pc.invert(matched), values), "%Y-%m-%d", day_at=8)
        return Parsed(pc.cast(parsed, pa.date32()))
    parts = pc.extract_regex(values, _ISO)
    clock = pc.struct_field(parts, "clock")
    clock = pc.if_else(pc.equal(pc.utf8_length(clock), 5),
                       pc.binary_join_element_wise(clock, ":00", ""), clock)
    text = pc.binary_join_element_wise(pc.struct_field(parts, "day"), clock, "T")
    local = _exact_seconds(text, "%Y-%m-%dT%H:%M:%S", day_at=8, second_at=17)
    fraction = _blank_to_null(pc.struct_field(parts, "fraction"))
    finer = pc.utf8_slice_codeunits(fraction, 6, 9)
    local = _null_where(pc.fill_null(pc.match_substring_regex(finer, "[1-9]"), False), local)
    fraction = pc.utf8_slice_codeunits(fraction, 0, 6)
    zone = _blank_to_null(pc.struct_field(parts, "zone"))
    return Parsed(_to_utc(_plus_fraction(local, fraction), zone, _iso_offset(zone), target))


def before(values: pa.Array, floor: date) -> pa.Array:
    """Mask of values (dates or timestamps) earlier than `floor`; null stays false."""
    if pa.types.is_date(values.type):
        limit = pa.scalar(floor, pa.date32())
    else:
        limit = pc.cast(pa.scalar(floor, pa.date32()), values.type)
    return pc.fill_null(pc.less(values, limit), False)


def _exact_seconds(text: pa.Array, fmt: str, *, day_at: int, second_at: int | None = None
                   ) -> pa.Array:
    """`text` parsed by `fmt` (seconds resolution), null where Arrow rolled a value over: it
    reads Feb 30 as March 1 and second 60 as the next minute (hour 24 and minute 60 it
    rejects), so the parsed day and second must be the digits that were sent."""
    parsed = pc.strptime(text, format=fmt, unit="us", error_is_null=True)
    checks = [(pc.day, day_at)] + ([(pc.second, second_at)] if second_at is not None else [])
    same = pc.is_valid(parsed)
    for extract, at in checks:
        sent = pc.cast(pc.utf8_slice_codeunits(text, at, at + 2), pa.int64())
        same = pc.and_(same, pc.equal(pc.cast(extract(parsed), pa.int64()), sent))
    return _null_where(pc.invert(pc.fill_null(same, False)), parsed)


def _plus_fraction(local: pa.Array, fraction: pa.Array) -> pa.Array:
    micros = pc.cast(pc.utf8_rpad(fraction, 6, "0"), pa.int64())
    return pc.add(local, pc.cast(pc.fill_null(micros, 0), pa.duration("us")))


def _hl7_offset(zone: pa.Array) -> pa.Array:
    """Offsets `+HHMM` in microseconds; null for a malformed one (minutes 60+, hours 15+)."""
    return _offset(zone, sign=zone, hours_at=1, minutes_at=3)


def _iso_offset(zone: pa.Array) -> pa.Array:
    """Offsets `Z`, `+HH`, `+HHMM`, `+HH:MM` in microseconds; zero for `Z`."""
    bare = pc.replace_substring(pc.replace_substring(zone, ":", ""), "Z", "+0000")
    bare = pc.if_else(pc.equal(pc.utf8_length(bare), 3),
                      pc.binary_join_element_wise(bare, "00", ""), bare)
    return _offset(bare, sign=bare, hours_at=1, minutes_at=3)


def _offset(zone: pa.Array, *, sign: pa.Array, hours_at: int, minutes_at: int) -> pa.Array:
    hours = pc.cast(pc.utf8_slice_codeunits(zone, hours_at, hours_at + 2), pa.int64())
    minutes = pc.cast(pc.utf8_slice_codeunits(zone, minutes_at, minutes_at + 2), pa.int64())
    valid = pc.and_(pc.less_equal(hours, 14), pc.less(minutes, 60))
    total = pc.multiply(pc.add(pc.multiply(hours, 60), minutes), 60 * _MICROS)
    negative = pc.starts_with(sign, "-")
    signed = pc.if_else(negative, pc.negate(total), total)
    return pc.if_else(valid, signed, pa.scalar(None, pa.int64()))


def _to_utc(local: pa.Array, zone: pa.Array, offset: pa.Array, target: pa.DataType
            ) -> pa.Array:
    """`local` minus its offset (none sent: as sent), as `target`; null where an offset was
    sent but is not a valid one."""
    shift = pc.cast(pc.fill_null(offset, 0), pa.duration("us"))
    utc = pc.cast(pc.subtract(local, shift), target)
    return _null_where(pc.and_(pc.is_valid(zone), pc.is_null(offset)), utc)


def _sent(values: pa.Array) -> pa.Array | None:
    """An optional group's values, null where absent; None when no row has it."""
    values = _blank_to_null(values)
    return None if values.null_count == len(values) else values


def _blank_to_null(values: pa.Array) -> pa.Array:
    return _null_where(pc.equal(values, ""), values)


def _null_where(mask: pa.Array, values: pa.Array) -> pa.Array:
    # Not `if_else(mask, <null scalar>, values)`: see convert._null_where (apache/arrow#49410).
    return pc.if_else(pc.fill_null(mask, False), pa.nulls(len(values), values.type), values)
