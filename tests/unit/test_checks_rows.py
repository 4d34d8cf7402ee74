"""Row rules evaluated with Pandera on Arrow rows: counts, masked samples, quarantine reasons."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from lake_assets.catalog.models import Bounds, Column, ColumnChecks, Table
from lake_assets.checks import MASK, compile_rules, evaluate_rows

MRN = "MRN88812345"
LAB = Table(
    name="lab",
    keys=("site", "result"),
    columns=(
        Column(name="site", nullable=False, checks=ColumnChecks(regex=r"^FAC\d{5}$")),
        Column(name="result", nullable=False, checks=ColumnChecks(length=Bounds(min=3, max=8))),
        Column(name="mrn", nullable=False, phi="hash",
               checks=ColumnChecks(regex=r"^M\d+$", action="fail")),
        Column(name="status", checks=ColumnChecks(allowed=("P", "F", "C"))),
        Column(name="value", type="double",
               checks=ColumnChecks(range=Bounds(min=0, max=100), severity="warn", action="keep")),
        Column(name="rank", type="integer", checks=ColumnChecks(range=Bounds(min=1))),
    ),
)


def rows(**columns: list[object]) -> pa.Table:
    base: dict[str, pa.Array] = {
        "site": pa.array(["FAC00001", "FAC00001", "FAC00007", "FAC00002"]),
        "result": pa.array(["R001", "R002", "R003", "R004"]),
        "mrn": pa.array(["M1", "M2", "M3", "M4"]),
        "status": pa.array(["P", "F", "C", "P"]),
        "value": pa.array([1.0, 2.0, 3.0, 4.0]),
        "rank": pa.array([1, 2, 3, 4], pa.int32()),
        "_facility_id": pa.array(["FAC00001", "FAC00001", "FAC00007", "FAC00002"]),
    }
    base |= {name: pa.array(values) for name, values in columns.items()}
    return pa.table(base)


def test_clean_rows_pass_every_rule() -> None:
    verdict = evaluate_rows(compile_rules(LAB), rows())

    assert verdict.tally.rows == 4
    assert verdict.tally.failing == {}
    assert verdict.reasons.null_count == 4 and verdict.failed == ()


def test_counts_samples_and_reasons_per_rule() -> None:
    data = rows(
        site=["FAC00001", "FAC00001", "FAC1", "FAC00002"],
        status=["P", "X", None, "Q"],
        value=[1.0, 500.0, None, -1.0],
        result=["R001", "R1", None, "R004"],
    )

    verdict = evaluate_rows(compile_rules(LAB), data)

    tally = verdict.tally
    assert tally.failing == {
        "site.regex": 1, "result.not_null": 1, "result.length": 1, "status.allowed": 2,
        "value.range": 2,
    }
    assert tally.samples["status.allowed"] == ("X", "Q")
    assert tally.samples["result.not_null"] == ("null",)
    assert tally.failing_by_check == {
        "site_valid": 1, "result_valid": 2, "status_valid": 2, "value_valid": 2}
    assert tally.facilities["status_valid"] == {"FAC00001": 1, "FAC00002": 1}
    # `value.range` keeps its rows; the others quarantine them, naming every rule broken.
    assert verdict.reasons.to_pylist() == [
        None, "result.length, status.allowed", "site.regex, result.not_null", "status.allowed"]
    assert verdict.failed == ()


def test_phi_columns_never_show_their_values() -> None:
    verdict = evaluate_rows(compile_rules(LAB), rows(mrn=["M1", MRN, "x-9", None]))

    assert verdict.tally.failing == {"mrn.regex": 2, "mrn.not_null": 1}
    assert verdict.tally.samples["mrn.regex"] == (MASK,)
    assert MRN not in verdict.tally.to_json() and "x-9" not in verdict.tally.to_json()
    assert verdict.failed == ("mrn.not_null", "mrn.regex")  # the column's action is fail


def test_duplicate_keys_fail_after_the_first_and_nulls_are_not_compared() -> None:
    data = rows(site=["FAC00001"] * 4, result=["R001", "R001", "R002", "R001"],
                mrn=["M1"] * 4, status=["P"] * 4, value=[1.0] * 4, rank=[1] * 4)

    verdict = evaluate_rows(compile_rules(LAB), data)

    assert verdict.tally.failing == {"keys.unique": 2}
    assert verdict.tally.samples["keys.unique"] == ("FAC00001|R001",)
    assert verdict.reasons.null_count == 4  # uniqueness keeps rows: silver merges them


def test_records_sharing_a_key_with_other_content_are_conflicts_with_their_archives() -> None:
    data = rows(site=["FAC00001"] * 4, result=["R001", "R001", "R002", "R001"],
                mrn=["M1", "M1", "M2", "M88812345"], status=["P"] * 4, value=[1.0] * 4,
                rank=[1] * 4)
    data = data.append_column("_source_archive", pa.array(["a.zip", "a.zip", "a.zip", "b.zip"]))

    verdict = evaluate_rows(compile_rules(LAB), data)

    # R001 was sent as two different records: all three of its rows are in conflict.
    assert verdict.tally.failing == {"keys.unique": 2, "keys.conflict": 3}
    assert verdict.tally.failing_by_check["keys_conflict"] == 3
    assert verdict.tally.samples["keys.conflict"] == ("FAC00001|R001",)
    assert verdict.tally.archives == {"keys.conflict": ("a.zip", "b.zip")}
    assert "M88812345" not in verdict.tally.to_json()
    # Judged within each archive (as bronze does), a.zip's copies agree and b.zip has one.
    within = evaluate_rows(compile_rules(LAB), data, within=("_source_archive",))
    assert "keys.conflict" not in within.tally.failing


def test_on_conflict_chooses_keep_quarantine_or_fail() -> None:
    from lake_assets.catalog.models import TableChecks

    data = rows(site=["FAC00001"] * 4, result=["R001", "R001", "R002", "R003"])
    for action, reasons, failed in (
        ("keep_latest", [None] * 4, ()),
        ("quarantine_both", ["keys.conflict", "keys.conflict", None, None], ()),
        ("fail", [None] * 4, ("keys.conflict",)),
    ):
        table = LAB.model_copy(update={"checks": TableChecks(on_conflict=action)})
        verdict = evaluate_rows(compile_rules(table), data)
        assert verdict.tally.failing["keys.conflict"] == 2
        assert verdict.reasons.to_pylist() == reasons, action
        assert verdict.failed == failed, action


def test_a_wrong_type_fails_schema_once_and_skips_value_rules() -> None:
    data = rows(value=["1.0", "oops", None, "4"], rank=[1, 0, 2, 3]).drop_columns(["status"])

    verdict = evaluate_rows(compile_rules(LAB), data)

    assert verdict.tally.failing == {"value.type": 3, "status.type": 4, "rank.range": 1}
    assert verdict.tally.samples["value.type"] == ("found string",)
    assert verdict.tally.samples["status.type"] == ("column missing",)
    assert set(verdict.failed) == {"value.type", "status.type"}


def test_integer_widths_and_timestamp_units_conform() -> None:
    table = Table(name="t", columns=(
        Column(name="n", type="long", checks=ColumnChecks(range=Bounds(min=0))),
        Column(name="at", type="timestamp", nullable=False),
    ))
    data = pa.table({
        "n": pa.array([1, -1], pa.int16()),
        "at": pa.array([datetime(2026, 1, 1, tzinfo=UTC), None], pa.timestamp("ms")),
    })

    verdict = evaluate_rows(compile_rules(table), data.to_batches()[0])

    assert verdict.tally.failing == {"n.range": 1, "at.not_null": 1}


def test_uniqueness_within_groups_compares_only_rows_of_the_same_group() -> None:
    table = Table(name="msgs", columns=(Column(name="id", checks=ColumnChecks(unique=True)),))
    data = pa.table({"id": ["a", "a", "a", "b"], "_source_archive": ["x.zip", "x.zip", "y.zip",
                                                                     "y.zip"]})

    alone = evaluate_rows(compile_rules(table), data, within=("_source_archive",))
    together = evaluate_rows(compile_rules(table), data)

    assert alone.tally.failing == {"id.unique": 1}
    assert alone.reasons.to_pylist() == [None, "id.unique", None, None]
    assert together.tally.failing == {"id.unique": 2}
    assert together.tally.samples["id.unique"] == ("a",)


def test_uniqueness_does_not_compare_nulls() -> None:
    table = Table(name="msgs", columns=(Column(name="id", checks=ColumnChecks(unique=True)),))
    data = pa.table({"id": pa.array([None, None, "a", "a"], pa.string())})

    verdict = evaluate_rows(compile_rules(table), data)

    assert verdict.tally.failing == {"id.unique": 1}
    assert verdict.reasons.to_pylist() == [None, None, None, "id.unique"]
