"""Consumers: `lakehouse sql` and `read_table` over lake tables by name, at a version."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from lake_assets.api import query, read_table
from lake_assets.cli import app
from lake_assets.storage.lake import Lake

pytestmark = pytest.mark.spark


@pytest.fixture(autouse=True)
def _as_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads act as a named user; these read as the admin of the shipped access.yaml."""
    monkeypatch.setenv("LAKE_USER", "admin")


@pytest.fixture
def visits(spark: SparkSession, lake: Lake) -> Lake:
    """`silver/visits` at version 0 with one row and version 1 with two."""
    schema = "facility_code string, visit_number string"
    lake.write(spark.createDataFrame([("FAC00001", "h1")], schema), table="silver/visits")
    lake.write(spark.createDataFrame([("FAC00002", "h2")], schema), table="silver/visits")
    return lake


def test_sql_command_prints_rows_at_a_version(visits: Lake) -> None:
    runner = CliRunner()
    sql = "SELECT facility_code FROM silver.visits ORDER BY facility_code"
    latest = runner.invoke(app, ["sql", sql])
    assert latest.exit_code == 0, latest.output
    assert "FAC00001" in latest.output and "FAC00002" in latest.output
    first = runner.invoke(app, ["sql", sql, "--version", "0"])
    assert "FAC00002" not in first.output and "1 row(s)" in first.output
    unknown = runner.invoke(app, ["sql", "SELECT * FROM silver.vists"])
    assert unknown.exit_code == 1
    assert "unknown table silver.vists" in unknown.output
    assert "silver.visits" in unknown.output  # the known tables are listed


def test_read_table_as_spark_pandas_and_arrow(visits: Lake) -> None:
    assert read_table("silver.visits", lake=visits).count() == 2
    assert read_table("silver/visits", 0, kind="pandas", lake=visits).shape == (1, 2)
    assert read_table("silver.visits", kind="arrow", lake=visits).num_rows == 2


def test_silver_tables_not_written_yet_read_as_empty(visits: Lake) -> None:
    joined = query("SELECT v.facility_code FROM silver.visits AS v "
                   "JOIN silver.patients AS p ON v.visit_number = p.mrn", lake=visits)
    assert joined.count() == 0


def test_braces_in_a_query_stay_as_written(visits: Lake) -> None:
    [row] = query("SELECT '{x}' AS label, COUNT(*) AS n FROM silver.visits", lake=visits).collect()
    assert (row.label, row.n) == ("{x}", 2)
    digits = query("SELECT regexp_extract('FAC00012', '[0-9]{5}', 0) AS d", lake=visits)
    assert digits.collect()[0].d == "00012"  # no lake table: nothing to pass, braces kept
