"""Conforming raw strings to declared types, nullability and schema-evolution modes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lake_assets.catalog.models import Column, ColumnType, EvolutionMode, Table
from lake_assets.ingest.conform import conform
from lake_assets.ingest.records import BadRecord, RawTable, Unknown


def run(
    columns: list[Column],
    values: dict[str, list[str | None]],
    *,
    unknown: list[Unknown | None] | None = None,
    mode: EvolutionMode = "rescue",
) -> tuple[pa.Table, list[BadRecord]]:
    table = Table(name="t", columns=tuple(columns), schema_evolution=mode)
    rows = len(next(iter(values.values())))
    raw = RawTable(columns=dict(values), unknown=unknown or [None] * rows)
    return conform(table, raw, members=pa.array(["m1"] * rows, pa.string()))


def typed(
    kind: ColumnType, values: list[str | None], fmt: str | None = None
) -> tuple[list[object], list[str]]:
    """(good values, bad row errors) for one nullable column of type `kind`."""
    good, bad = run([Column(name="c", type=kind, format=fmt)], {"c": values})
    return good.column("c").to_pylist(), [b.error for b in bad]


def test_strings_keep_blanks_and_empty_is_null() -> None:
    assert typed("string", ["a", " b ", "", None]) == (["a", " b ", None, None], [])


def test_integer_and_long() -> None:
    assert typed("integer", ["1", " -2 ", "+3", "007", ""]) == ([1, -2, 3, 7, None], [])
    good, errors = typed("integer", ["1.0", "2147483648", "1e3", "x", "\u0661"])
    assert good == []
    assert errors == ["column c is not an integer"] * 5
    assert typed("long", ["9223372036854775807", "-9223372036854775808"])[0] == [
        2**63 - 1,
        -(2**63),
    ]
    assert typed("long", ["9223372036854775808", "1"]) == ([1], ["column c is not a long"])


def test_double_is_finite_decimal() -> None:
    assert typed("double", ["1.5", ".5", "5.", "-1e3", " 2 "]) == (
        [1.5, 0.5, 5.0, -1000.0, 2.0],
        [],
    )
    good, errors = typed("double", ["NaN", "inf", "1,5", "0x10", "1e999"])
    assert good == [] and len(errors) == 5


def test_boolean_spellings() -> None:
    good, errors = typed("boolean", ["true", "FALSE", "1", "0", "Y", "n", "yes", "maybe"])
    assert good == [True, False, True, False, True, False]
    assert errors == ["column c is not a boolean"] * 2


@pytest.mark.parametrize(
    ("fmt", "value", "expected"),
    [
        ("%Y-%m-%d", "2024-02-29", date(2024, 2, 29)),
        ("%Y%m%d", "19800101", date(1980, 1, 1)),
        ("%d/%m/%Y", "31/12/1999", date(1999, 12, 31)),
        ("%b %d %Y", "Jan 05 2024", date(2024, 1, 5)),
        ("%b %d %Y", "JAN 05 2024", date(2024, 1, 5)),
    ],
)
def test_dates_follow_the_column_format(fmt: str, value: str, expected: date) -> None:
    assert typed("date", [value], fmt) == ([expected], [])


@pytest.mark.parametrize(
    ("fmt", "value", "expected"),
    [
        ("%Y%m%d%H%M%S", "20240115103000", datetime(2024, 1, 15, 10, 30)),
        ("%Y-%m-%dT%H:%M:%S", "2024-01-15T10:30:00", datetime(2024, 1, 15, 10, 30)),
        ("%Y-%m-%d %H:%M:%S", "2024-01-15 23:59:59", datetime(2024, 1, 15, 23, 59, 59)),
        (
            "%Y-%m-%d %H:%M:%S.%f",
            "2024-01-15 10:30:00.123456",
            datetime(2024, 1, 15, 10, 30, 0, 123456),
        ),
        ("%d/%m/%y %I:%M %p", "15/01/24 10:30 PM", datetime(2024, 1, 15, 22, 30)),
    ],
)
def test_timestamps_follow_the_column_format(fmt: str, value: str, expected: datetime) -> None:
    assert typed("timestamp", [value], fmt) == ([expected], [])


def test_timestamp_with_offset_is_utc() -> None:
    good, bad = run(
        [Column(name="c", type="timestamp", format="%Y-%m-%dT%H:%M:%S%z")],
        {"c": ["2024-01-15T10:30:00+0200"]},
    )
    assert good.schema.field("c").type == pa.timestamp("us", tz="UTC")
    assert good.column("c").to_pylist() == [datetime(2024, 1, 15, 8, 30, tzinfo=UTC)]
    assert bad == []


@pytest.mark.parametrize(
    ("kind", "fmt", "value"),
    [
        ("date", "%Y-%m-%d", "2024-02-30"),
        ("date", "%Y-%m-%d", "2023-02-29"),
        ("date", "%Y-%m-%d", "2024-13-01"),
        ("date", "%Y-%m-%d", "15/01/2024"),
        ("date", "%Y-%m-%d", "2024-01-15x"),
        ("date", "%Y-%m-%d", "2024-04-31"),
        ("date", "%Y%m%d", "2024-01-15"),
        ("timestamp", "%Y%m%d%H%M%S", "20240115103060"),
        ("timestamp", "%Y-%m-%d %H:%M:%S", "2024-01-15 24:00:00"),
        ("timestamp", "%Y%m%d%H%M%S", "20240230103000"),
        ("timestamp", "%Y%m%d%H%M%S", "20240115256000"),
        ("timestamp", "%Y-%m-%dT%H:%M:%S", "2024-01-15 10:30:00"),
        # Python's strptime reads these as other values: strict widths reject them.
        ("date", "%Y-%m-%d", "2024-1-5"),
        ("timestamp", "%Y%m%d%H%M%S", "200803051509"),
        ("timestamp", "%Y%m%d%H%M%S", "2008030515091"),
        ("timestamp", "%Y%m%d%H%M%S", "200803051509120"),
        ("date", "%Y%m%d", "813111"),
        ("timestamp", "%Y-%m-%d %H:%M:%S.%f", "2024-01-15 10:30:00.1234567"),
        ("timestamp", "%d/%m/%y %I:%M %p", "15/1/24 10:30 PM"),
    ],
)
def test_impossible_or_misformatted_dates_are_bad_values(
    kind: ColumnType, fmt: str, value: str
) -> None:
    assert typed(kind, [value], fmt) == ([], [f"column c does not match format {fmt}"])


def test_default_formats_are_iso() -> None:
    assert typed("date", ["2024-01-15"])[0] == [date(2024, 1, 15)]
    assert typed("timestamp", ["2024-01-15T10:30:00"])[0] == [datetime(2024, 1, 15, 10, 30)]


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)))
def test_every_real_date_round_trips(value: date) -> None:
    assert typed("date", [value.strftime("%Y%m%d")], "%Y%m%d") == ([value], [])


def test_non_nullable_absent_is_missing_column_and_empty_is_bad_value() -> None:
    columns = [Column(name="id", nullable=False), Column(name="n", type="integer")]
    good, bad = run(columns, {"id": ["a", None, "", "d"], "n": ["1", "2", "3", "x"]})
    assert good.column("id").to_pylist() == ["a"]
    assert [(b.reason, b.error) for b in bad] == [
        ("missing_column", "column id is absent"),
        ("bad_value", "column id is empty but not nullable"),
        ("bad_value", "column n is not an integer"),
    ]


def test_bad_rows_carry_the_raw_record_and_errors_never_carry_values() -> None:
    columns = [
        Column(name="mrn", source="PID-3.1", nullable=False),
        Column(name="age", type="integer"),
    ]
    _, bad = run(columns, {"mrn": ["SECRET-MRN"], "age": ["forty"]}, unknown=[{"ZPV": ["ZPV|1"]}])
    (record,) = bad
    assert json.loads(record.raw) == {"PID-3.1": "SECRET-MRN", "age": "forty", "ZPV": ["ZPV|1"]}
    assert "SECRET" not in record.error and "forty" not in record.error
    assert record.member == "m1"


def test_every_problem_of_a_row_is_listed_first_reason_wins() -> None:
    columns = [Column(name="a", type="integer"), Column(name="b", nullable=False)]
    _, bad = run(columns, {"a": ["x"], "b": [None]})
    assert [(b.reason, b.error) for b in bad] == [
        ("missing_column", "column b is absent; column a is not an integer")
    ]


def test_rescue_mode_puts_unknown_fields_in_rescued_data() -> None:
    good, bad = run([Column(name="a")], {"a": ["1", "2"]}, unknown=[{"Extra": "x"}, None])
    assert bad == []
    assert good.column("_rescued_data").to_pylist() == ['{"Extra":"x"}', None]
    assert good.column("_source_member").to_pylist() == ["m1", "m1"]


def test_fail_mode_makes_rows_with_unknown_fields_schema_mismatch() -> None:
    good, bad = run(
        [Column(name="a")], {"a": ["1", "2"]}, unknown=[{"Extra": "x"}, None], mode="fail"
    )
    assert good.column("a").to_pylist() == ["2"]
    assert [(b.reason, b.error) for b in bad] == [("schema_mismatch", "undeclared fields Extra")]


def test_add_columns_mode_keeps_unknown_fields_as_string_columns() -> None:
    unknown = [{"Extra Field": "x", "a": "clash", "Tags": ["p", "q"]}, None]
    good, _ = run([Column(name="a")], {"a": ["1", "2"]}, unknown=unknown, mode="add_columns")
    assert good.column_names == ["a", "extra_field", "tags", "_rescued_data", "_source_member"]
    assert good.column("extra_field").to_pylist() == ["x", None]
    assert good.column("tags").to_pylist() == ['["p","q"]', None]
    assert good.column("_rescued_data").to_pylist() == ['{"a":"clash"}', None]


@pytest.mark.parametrize(("kind", "fmt"), [
    ("string", None), ("integer", None), ("long", None), ("double", None), ("boolean", None),
    ("date", "%Y%m%d"), ("timestamp", "%Y%m%d%H%M%S"),
])
def test_sliced_input_converts_as_a_copy_does(kind: ColumnType, fmt: str | None) -> None:
    """Parsers may hand over slices of a shared buffer (HL7 cuts every column from one)."""
    sent = ["skipped", "20261120", "", None, "12", "x", "20261121063000", "2.5", "true", " "]
    sliced = pa.array(["a longer value ahead", *sent], pa.string()).slice(2)
    column = Column(name="c", type=kind, format=fmt)
    table = Table(name="t", columns=(column,))
    got = [conform(table, RawTable(columns={"c": values}, unknown=[None] * len(values)),
                   members=pa.array(["m1"] * len(values), pa.string()))
           for values in (sliced, pa.array(sent[1:], pa.string()))]
    got[0][0].validate(full=True)
    assert got[0][0].column("c").to_pylist() == got[1][0].column("c").to_pylist()
    assert [b.error for b in got[0][1]] == [b.error for b in got[1][1]]
