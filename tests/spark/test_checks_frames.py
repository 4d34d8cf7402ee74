"""Checks over Delta tables on disk: one-job tallies, duplicates across tasks, references and
row counts per arrival day."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import SparkSession

from lake_assets.catalog.models import Column, ColumnChecks, RowCountCheck, Table
from lake_assets.checks import (
    MASK,
    compile_rules,
    daily_counts,
    judge_row_count,
    missing_references,
    tally_frame,
)
from lake_assets.storage.lake import Lake

pytestmark = pytest.mark.spark

CENSUS = Table(
    name="census",
    keys=("bed",),
    columns=(
        Column(name="bed", nullable=False),
        Column(name="status", nullable=False,
               checks=ColumnChecks(allowed=("occupied", "available"))),
        Column(name="mrn", phi="hash", checks=ColumnChecks(regex=r"^M\d+$")),
    ),
)
SCHEMA = "bed string, status string, mrn string, _facility_id string, _arrival_date date"
DAY = dt.date(2026, 3, 10)


def test_tally_of_a_written_table_counts_every_rule_in_one_pass(
    spark: SparkSession, lake: Lake
) -> None:
    rows = [
        ("b1", "occupied", "M1", "FAC00001", DAY),
        ("b2", "broken", "MRN88812345", "FAC00002", DAY),
        ("b3", None, None, "FAC00002", DAY),
        # b1 again, in another file and so another task: only the whole frame sees it twice.
        ("b1", "available", "M4", "FAC00003", DAY + dt.timedelta(days=1)),
    ]
    lake.write(spark.createDataFrame(rows[:3], SCHEMA), table="silver/census")
    lake.write(spark.createDataFrame(rows[3:], SCHEMA), table="silver/census")
    df = lake.read("silver/census")

    jobs = spark.sparkContext.statusTracker()
    group = "checks-one-pass"
    spark.sparkContext.setJobGroup(group, "tally")
    try:
        tally = tally_frame(df, compile_rules(CENSUS))
    finally:
        spark.sparkContext.setJobGroup("", "")

    assert tally.rows == 4
    assert tally.failing == {
        "status.allowed": 1, "status.not_null": 1, "mrn.regex": 1, "keys.unique": 1}
    assert tally.failing_by_check["status_valid"] == 2
    assert tally.samples["mrn.regex"] == (MASK,)
    assert tally.samples["keys.unique"] == ("b1",)
    assert tally.failing_facilities("status_valid") == [("FAC00002", 2)]
    assert "MRN88812345" not in tally.to_json()
    # One action; adaptive execution runs the uniqueness group-by's shuffle as a job of its own.
    assert len(jobs.getJobIdsForGroup(group)) == 2


def test_tally_of_an_empty_frame(spark: SparkSession) -> None:
    tally = tally_frame(spark.createDataFrame([], SCHEMA), compile_rules(CENSUS))

    assert tally.rows == 0 and tally.failing == {}


def test_missing_references_count_rows_and_mask_phi_samples(
    spark: SparkSession, lake: Lake
) -> None:
    lake.write(spark.createDataFrame([("M1",), ("M2",), ("M2",)], "mrn string"),
               table="silver/patients")
    visits = spark.createDataFrame(
        [("v1", "M1"), ("v2", "M9"), ("v3", "M9"), ("v4", None), ("v5", "M2"), ("v6", "M7")],
        "visit string, mrn string")
    patients = lake.read("silver/patients")

    masked = missing_references(visits, patients, column="mrn", to_column="mrn", phi=True)
    plain = missing_references(visits, patients, column="mrn", to_column="mrn", phi=False)

    assert (masked.checked, masked.missing, masked.samples) == (5, 3, (MASK,))
    assert plain.samples == ("M7", "M9")


def test_row_count_against_the_trailing_days_of_a_partitioned_table(
    spark: SparkSession, lake: Lake
) -> None:
    sizes = {DAY - dt.timedelta(days=d): n for d, n in ((3, 10), (2, 12), (1, 8), (0, 3))}
    rows = [(f"b{i}", "occupied", None, "FAC00001", day)
            for day, n in sizes.items() for i in range(n)]
    lake.write(spark.createDataFrame(rows, SCHEMA), table="bronze/census_feed/census",
               partition_by=["_arrival_date"])
    check = RowCountCheck(lookback_days=7, min_ratio=0.5, max_ratio=2.0)
    bronze = lake.read("bronze/census_feed/census")

    counts = daily_counts(bronze, date_column="_arrival_date",
                          first=DAY - dt.timedelta(days=7), last=DAY)
    low = judge_row_count(check, day=DAY, counts=counts)
    usual = judge_row_count(check, day=DAY - dt.timedelta(days=1), counts=counts)
    first = judge_row_count(check, day=DAY - dt.timedelta(days=3), counts=counts)

    assert counts == sizes
    assert (low.rows, low.average, low.history_days, low.passed) == (3, 10.0, 3, False)
    assert low.expected_min == 5.0 and round(low.ratio or 0, 2) == 0.3
    assert usual.passed and usual.average == 11.0
    assert first.passed and first.average is None  # nothing to compare with yet
