"""Dates and timestamps are read exactly or rejected: HL7 DTM/TS, ISO 8601, strict strptime
formats and the date floor, with properties over generated values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lake_assets.catalog.formats import PRECISIONS
from lake_assets.catalog.models import Column, ColumnType
from lake_assets.ingest.convert import arrow_type, convert

FLOOR = datetime(1850, 1, 1)
moments = st.datetimes(min_value=FLOOR, max_value=datetime(9999, 12, 30))
whole_seconds = moments.map(lambda m: m.replace(microsecond=0))


def read(kind: ColumnType, fmt: str | None, values: list[str | None], **extra: object
         ) -> tuple[list[object], list[object]]:
    """(values, precisions) of `values` read by a column of `kind` and `fmt`; None = rejected."""
    column = Column(name="c", type=kind, format=fmt, **extra)
    done = convert(column, pa.array(values, pa.string()))
    precision = done.precision.to_pylist() if done.precision is not None else [None] * len(values)
    return done.values.to_pylist(), precision


def one(kind: ColumnType, fmt: str | None, value: str) -> object:
    return read(kind, fmt, [value])[0][0]


# --- strict strptime formats ----------------------------------------------------------------

STRPTIME = [
    ("date", "%Y-%m-%d"), ("date", "%Y%m%d"), ("date", "%d/%m/%Y"), ("date", "%b %d %Y"),
    ("timestamp", "%Y%m%d%H%M%S"), ("timestamp", "%Y-%m-%dT%H:%M:%S"),
    ("timestamp", "%Y-%m-%d %H:%M:%S"), ("timestamp", "%Y%m%d%H%M"),
    ("timestamp", "%d.%m.%Y %H:%M"),
]  # fmt: skip


def _expected(kind: str, moment: datetime, fmt: str) -> object:
    if kind == "date":
        return moment.date()
    if "%S" not in fmt:
        moment = moment.replace(second=0)
    return moment


@pytest.mark.parametrize(("kind", "fmt"), STRPTIME)
@settings(max_examples=60, deadline=None)
@given(moment=whole_seconds)
def test_strptime_formats_read_back_what_they_write_and_nothing_wider_or_narrower(
    kind: ColumnType, fmt: str, moment: datetime
) -> None:
    text = moment.strftime(fmt)
    assert one(kind, fmt, text) == _expected(kind, moment, fmt)
    variants = [text[:-1], text[1:], text + "0", "0" + text, text + " ", text.replace("0", "", 1)]
    values, _ = read(kind, fmt, [v for v in variants if v.strip() and v.strip() != text])
    assert values == [None] * len(values)


def test_minute_precision_is_never_read_as_seconds() -> None:
    # Python's strptime("200803051509", "%Y%m%d%H%M%S") is 15:00:09.
    assert one("timestamp", "%Y%m%d%H%M%S", "200803051509") is None
    assert one("timestamp", "%Y%m%d%H%M", "200803051509") == datetime(2008, 3, 5, 15, 9)


def test_a_fraction_reads_as_the_decimal_it_states() -> None:
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    assert one("timestamp", fmt, "2024-01-15 10:30:00.5") == datetime(2024, 1, 15, 10, 30, 0,
                                                                        500_000)
    assert one("timestamp", fmt, "2024-01-15 10:30:00.1234567") is None


def test_unsupported_directives_fail_validation_naming_them() -> None:
    with pytest.raises(ValidationError, match="'%c' is not supported"):
        Column(name="c", type="timestamp", format="%c")
    with pytest.raises(ValidationError, match="format applies to date and timestamp"):
        Column(name="c", type="string", format="%Y")


# --- the date floor ---------------------------------------------------------------------------

def test_dates_before_the_floor_are_bad_values() -> None:
    # strptime reads 10131113 as 1013-11-13.
    assert one("date", "%Y%m%d", "10131113") is None
    assert one("date", "%Y%m%d", "18500101") == date(1850, 1, 1)
    assert one("timestamp", "hl7", "18491231235959") is None
    values, _ = read("date", "%Y%m%d", ["18991231", "19000101"], not_before=date(1900, 1, 1))
    assert values == [None, date(1900, 1, 1)]


def test_a_value_before_the_floor_says_so_in_its_error() -> None:
    from lake_assets.catalog.models import Table
    from lake_assets.ingest.conform import conform
    from lake_assets.ingest.records import RawTable

    table = Table(name="t", columns=(Column(name="born", type="date", format="%Y%m%d"),))
    raw = RawTable(columns={"born": ["10131113"]}, unknown=[None])
    _, bad = conform(table, raw, members=pa.array(["m"]))
    assert [(b.reason, b.error) for b in bad] == [
        ("bad_value", "column born is before 1850-01-01 (not_before)")]


# --- HL7 DTM/TS -------------------------------------------------------------------------------

_HL7_LAYOUT = ["%Y", "%Y%m", "%Y%m%d", "%Y%m%d%H", "%Y%m%d%H%M", "%Y%m%d%H%M%S"]
offsets = st.one_of(st.none(), st.integers(min_value=-12 * 60, max_value=14 * 60))


def _hl7_text(moment: datetime, step: int, digits: int, offset: int | None) -> str:
    text = moment.strftime(_HL7_LAYOUT[step])
    if step == 5 and digits:
        text += "." + f"{moment.microsecond:06d}"[:digits]
    if offset is not None:
        sign = "-" if offset < 0 else "+"
        text += f"{sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
    return text


def _truncated(moment: datetime, step: int, digits: int) -> datetime:
    fields = [moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second]
    kept = fields[: step + 1] + [1, 1, 0, 0, 0][step:]
    micros = int(f"{moment.microsecond:06d}"[:digits].ljust(6, "0")) if step == 5 else 0
    return datetime(*kept[:6], micros)


@settings(max_examples=300, deadline=None)
@given(moment=moments.filter(lambda m: m.year > 1850), step=st.integers(0, 5),
       digits=st.integers(0, 4), offset=offsets)
def test_hl7_values_of_every_precision_read_back_in_utc(
    moment: datetime, step: int, digits: int, offset: int | None
) -> None:
    digits = digits if step == 5 else 0
    text = _hl7_text(moment, step, digits, offset)
    local = _truncated(moment, step, digits)
    utc = local - timedelta(minutes=offset or 0)
    values, precision = read("timestamp", "hl7", [text])
    if utc < FLOOR or utc.year > 9999:
        return
    assert values == [utc.replace(tzinfo=UTC)]
    assert precision == [PRECISIONS[step + digits]]
    # A date keeps the day as sent, whatever the offset.
    assert read("date", "hl7", [text]) == ([local.date()], [PRECISIONS[step + digits]])


@settings(max_examples=300, deadline=None)
@given(moment=moments.filter(lambda m: m.year > 1850), step=st.integers(0, 5),
       digits=st.integers(0, 4), offset=offsets)
def test_hl7_truncated_or_padded_values_never_read_as_the_same_value(
    moment: datetime, step: int, digits: int, offset: int | None
) -> None:
    digits = digits if step == 5 else 0
    text = _hl7_text(moment, step, digits, offset)
    original = read("timestamp", "hl7", [text])
    for variant in (text[:-1], text + "0", "0" + text, text + "+0000" if offset else text + "Z"):
        values, precision = read("timestamp", "hl7", [variant])
        if values == [None]:
            continue
        # Only a fraction may gain or lose a digit, and then it says so in its precision.
        assert digits and not offset and variant in (text[:-1], text + "0")
        assert precision != original[1]


@pytest.mark.parametrize(
    ("value", "expected", "precision"),
    [
        ("200803051509", datetime(2008, 3, 5, 15, 9, tzinfo=UTC), "minute"),
        ("200803051509-0400", datetime(2008, 3, 5, 19, 9, tzinfo=UTC), "minute"),
        ("20080305150912+0700", datetime(2008, 3, 5, 8, 9, 12, tzinfo=UTC), "second"),
        ("20080305150912.1234", datetime(2008, 3, 5, 15, 9, 12, 123400, tzinfo=UTC), "second.4"),
        ("2008", datetime(2008, 1, 1, tzinfo=UTC), "year"),
        ("2008030515091", None, None),
        ("20080230", None, None),
        ("2008030524", None, None),
        ("200803051560", None, None),
        ("20080305150912.12345", None, None),
        ("200803051509.5", None, None),
        ("200803051509+2500", None, None),
        ("200803051509+0560", None, None),
        ("2008-03-05", None, None),
    ],
)
def test_hl7_examples(value: str, expected: datetime | None, precision: str | None) -> None:
    assert read("timestamp", "hl7", [value]) == ([expected], [precision])


def test_a_birth_date_sent_with_a_time_keeps_its_day() -> None:
    assert read("date", "hl7", ["198001011230-0500", "19800101", "1980"]) == (
        [date(1980, 1, 1)] * 3, ["minute", "day", "year"])


def test_hl7_columns_are_utc_and_carry_a_precision_sibling() -> None:
    column = Column(name="event_time", type="timestamp", format="hl7")
    assert arrow_type(column) == pa.timestamp("us", tz="UTC")
    assert column.precision_column == "event_time_precision"
    assert Column(name="t", type="timestamp", format="iso8601").precision_column is None


# --- ISO 8601 -------------------------------------------------------------------------------

zones = st.one_of(st.none(), st.just("Z"),
                  st.tuples(st.sampled_from("+-"), st.integers(0, 14), st.integers(0, 59),
                            st.sampled_from(["{}{:02d}:{:02d}", "{}{:02d}{:02d}"])))


def _zone_text(zone: object) -> tuple[str, int]:
    if zone is None:
        return "", 0
    if zone == "Z":
        return "Z", 0
    sign, hours, minutes, layout = zone  # type: ignore[misc]
    minutes_total = (hours * 60 + minutes) * (-1 if sign == "-" else 1)
    return layout.format(sign, hours, minutes), minutes_total


@settings(max_examples=300, deadline=None)
@given(moment=moments.filter(lambda m: m.year > 1850), digits=st.integers(0, 6), zone=zones,
       separator=st.sampled_from("T "))
def test_iso8601_timestamps_read_back_in_utc(
    moment: datetime, digits: int, zone: object, separator: str
) -> None:
    fraction = f"{moment.microsecond:06d}"[:digits]
    suffix, minutes = _zone_text(zone)
    text = moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S") + (f".{fraction}" if digits else "")
    text += suffix
    local = moment.replace(microsecond=int(Decimal(f"0.{fraction or 0}") * 1_000_000))
    utc = local - timedelta(minutes=minutes)
    if utc < FLOOR or utc.year > 9999:
        return
    assert read("timestamp", "iso8601", [text])[0] == [utc.replace(tzinfo=UTC)]
    for variant in (text + "0" if not digits and not suffix else text + "+", "0" + text,
                    text.replace(":", "", 1)):
        assert read("timestamp", "iso8601", [variant])[0] == [None]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2019-02-17T05:07:38Z", datetime(2019, 2, 17, 5, 7, 38, tzinfo=UTC)),
        ("2019-02-17T05:07:38.123+05:30", datetime(2019, 2, 16, 23, 37, 38, 123000, tzinfo=UTC)),
        ("2019-02-17 05:07", datetime(2019, 2, 17, 5, 7, tzinfo=UTC)),
        ("2019-02-17T05:07:38.1234560-0200", datetime(2019, 2, 17, 7, 7, 38, 123456, tzinfo=UTC)),
        ("2019-02-17T05:07:38.1234567Z", None),
        ("2019-02-17", None),
        ("2019-02-30T00:00:00Z", None),
        ("2019-02-17T24:00:00Z", None),
        ("2019-02-17T05:07:38+99:00", None),
        ("2019-2-17T05:07:38Z", None),
    ],
)
def test_iso8601_examples(value: str, expected: datetime | None) -> None:
    assert read("timestamp", "iso8601", [value])[0] == [expected]


def test_iso8601_dates_are_exactly_year_month_day() -> None:
    values, _ = read("date", "iso8601", ["2019-02-17", "2019-02-30", "2019-2-1", "2019-02-17T00"])
    assert values == [date(2019, 2, 17), None, None, None]
