"""Silver reports records that share an identity but differ in content, within a day and against
what silver already holds, and applies `checks.on_conflict`."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from lake_assets.catalog.models import CdcMode, Column, ConflictAction, Feed, Table, TableChecks
from lake_assets.factory.silver import SilverSource, update_silver
from lake_assets.storage.lake import Lake

pytestmark = pytest.mark.spark

DAYS = [date(2026, 3, 1), date(2026, 3, 2)]
BRONZE = "id string, at timestamp, body string, _facility_id string, _arrival_date date, " \
         "_source_archive string, _source_member string, _archive_sha256 string, " \
         "_ingested_at timestamp, _batch_id string, _rescued_data string"
AT = datetime(2026, 3, 1, 8, tzinfo=UTC)


def source(cdc: CdcMode, action: ConflictAction = "keep_latest") -> SilverSource:
    table = Table(
        name="messages", keys=("id",), sequence_by="at", cdc=cdc,
        checks=TableChecks(on_conflict=action),
        columns=(Column(name="id", nullable=False, phi="hash"),
                 Column(name="at", type="timestamp", nullable=False), Column(name="body")),
    )
    feed = Feed.model_validate({
        "name": "feed", "owners": ["t"], "format": {"kind": "csv"},
        "landing": {"prefix": "feed/"}, "freshness": {"warn_after": "1h", "fail_after": "2h"},
        "tables": [table.model_dump()],
    })
    return SilverSource(table, (feed,), ("feeds/feed.yaml",))


def land(spark: SparkSession, lake: Lake, rows: list[tuple[str, int, str, str]]) -> None:
    """(id, day index, body, archive) rows into bronze; every record of one id shares `at`."""
    data = [(key, AT, body, "FAC00001", DAYS[day], archive, "m.csv", "sha",
             datetime(2026, 3, day + 1, 12, tzinfo=UTC), f"b{day}", None)
            for key, day, body, archive in rows]
    lake.write(spark.createDataFrame(data, BRONZE), table="bronze/feed/messages",
               mode="overwrite", partition_by=["_arrival_date"])


def bodies(lake: Lake) -> list[str]:
    table = DeltaTable(lake.ref("silver/messages").uri)
    return sorted(table.to_pyarrow_table(columns=["body"]).column(0).to_pylist())


# m1 is sent again a day later with other content (two runs reusing one id); m2 twice with
# other content on one day; m3 twice, the same record both times (not a conflict).
ROWS = [("m1", 0, "first", "run1/a.zip"), ("m1", 1, "second", "run2/b.zip"),
        ("m2", 0, "x", "run1/a.zip"), ("m2", 0, "y", "run2/c.zip"),
        ("m3", 0, "same", "run1/a.zip"), ("m3", 1, "same", "run2/b.zip")]


@pytest.mark.parametrize("cdc", ["append", "scd1"])
def test_conflicts_are_counted_with_the_archives_involved(
    spark: SparkSession, lake: Lake, cdc: CdcMode
) -> None:
    land(spark, lake, ROWS)
    first = update_silver(lake, source(cdc), date=DAYS[0].isoformat()).checks.tally
    assert first.failing.get("keys.conflict") == 2  # both m2 records of the day
    assert first.archives["keys.conflict"] == ("run1/a.zip", "run2/c.zip")
    # The id is PHI-tagged: the identity shows masked (with its sequence_by for scd1).
    assert first.samples["keys.conflict"] == (("***",) if cdc == "append" else ("***|***",))
    second = update_silver(lake, source(cdc), date=DAYS[1].isoformat()).checks.tally
    # m1 differs from the record silver already holds; m3 repeats it exactly.
    assert second.failing.get("keys.conflict") == 1
    assert second.archives["keys.conflict"] == ("run1/a.zip", "run2/b.zip")
    # keep_latest: append keeps the first record of a key, scd1 the latest.
    assert len(bodies(lake)) == 3


def test_quarantine_both_keeps_the_conflicting_records_out_of_silver(
    spark: SparkSession, lake: Lake
) -> None:
    land(spark, lake, ROWS)
    day = update_silver(lake, source("append", "quarantine_both"), date=DAYS[0].isoformat())
    assert day.metadata["held_back_conflicts"] == 2
    assert bodies(lake) == ["first", "same"]  # m2 is held back; it stays in bronze


def test_fail_stops_the_merge(spark: SparkSession, lake: Lake) -> None:
    land(spark, lake, ROWS)
    day = update_silver(lake, source("append", "fail"), date=DAYS[0].isoformat())
    assert day.checks.failed == ("keys.conflict",)
    assert not DeltaTable.is_deltatable(lake.ref("silver/messages").uri)
