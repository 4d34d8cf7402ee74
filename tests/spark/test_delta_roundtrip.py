"""Round trips through the delta_rs data source: every write mode, time travel and pruning."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from lake_assets.errors import DeltaSchemaError
from lake_assets.storage.delta._predicate import Term
from lake_assets.storage.delta._snapshot import list_files, may_match
from lake_assets.storage.lake import Lake

pytestmark = pytest.mark.spark

SCHEMA = "id long, facility string, day string, amount double"


def rows_of(lake: Lake, table: str, **kwargs: object) -> list[tuple]:
    return sorted(tuple(r) for r in lake.read(table, **kwargs).collect())


def test_append_twice_then_overwrite(spark: SparkSession, lake: Lake) -> None:
    first = spark.createDataFrame([(1, "F1", "2024-01-01", 1.5), (2, "F2", "2024-01-01", None)],
                                  SCHEMA)
    one = lake.write(first, table="bronze/feed/visits")
    two = lake.write(first, table="bronze/feed/visits")
    assert (one.version, two.version, one.rows, two.rows) == (0, 1, 2, 2)
    assert len(rows_of(lake, "bronze/feed/visits")) == 4

    second = spark.createDataFrame([(9, "F9", "2024-02-01", 9.0)], SCHEMA)
    lake.write(second, table="bronze/feed/visits", mode="overwrite")
    assert rows_of(lake, "bronze/feed/visits") == [(9, "F9", "2024-02-01", 9.0)]


def test_replace_where_on_partition_is_idempotent(spark: SparkSession, lake: Lake) -> None:
    days = spark.createDataFrame(
        [(1, "F1", "2024-01-01", 1.0), (2, "F1", "2024-01-02", 2.0), (3, "F2", "2024-01-02", 3.0)],
        SCHEMA,
    )
    lake.write(days, table="bronze/feed/visits", partition_by=["day"])
    rerun = spark.createDataFrame([(20, "F1", "2024-01-02", 20.0)], SCHEMA)
    for _ in range(2):
        lake.write(rerun, table="bronze/feed/visits", mode="overwrite",
                   replace_where={"day": "2024-01-02"})
    assert rows_of(lake, "bronze/feed/visits") == [
        (1, "F1", "2024-01-01", 1.0), (20, "F1", "2024-01-02", 20.0)
    ]
    assert DeltaTable(lake.ref("bronze/feed/visits").uri).metadata().partition_columns == ["day"]


def test_replace_where_on_data_column_keeps_other_rows_of_shared_files(
    spark: SparkSession, lake: Lake
) -> None:
    mixed = spark.createDataFrame(
        [(i, f"F{i % 3}", f"2024-01-0{1 + i % 2}", float(i)) for i in range(10)], SCHEMA
    ).coalesce(1)
    lake.write(mixed, table="silver/visits")
    rerun = spark.createDataFrame([(100, "F1", "2024-01-02", 1.0)], SCHEMA)
    lake.write(rerun, table="silver/visits", mode="overwrite",
               replace_where=[("day", ">=", "2024-01-02"), ("facility", "=", "F1")])
    kept = [(i, f"F{i % 3}", f"2024-01-0{1 + i % 2}", float(i)) for i in range(10)
            if not (i % 2 == 1 and i % 3 == 1)]
    assert rows_of(lake, "silver/visits") == sorted([*kept, (100, "F1", "2024-01-02", 1.0)])


def test_schema_evolution_only_when_asked(spark: SparkSession, lake: Lake) -> None:
    lake.write(spark.createDataFrame([(1, "F1", "2024-01-01", 1.0)], SCHEMA), table="silver/v")
    wider = spark.createDataFrame([(2, "F1", "2024-01-01", 2.0, "new")], SCHEMA + ", note string")
    with pytest.raises(DeltaSchemaError, match=r"silver/v.*'note'"):
        lake.write(wider, table="silver/v")
    lake.write(wider, table="silver/v", evolve_schema=True)
    assert rows_of(lake, "silver/v") == [(1, "F1", "2024-01-01", 1.0, None),
                                         (2, "F1", "2024-01-01", 2.0, "new")]
    narrower = spark.createDataFrame([(3, "F3")], "id long, facility string")
    lake.write(narrower, table="silver/v")
    assert (3, "F3", None, None, None) in rows_of(lake, "silver/v")


def test_app_transaction_makes_a_retried_batch_a_no_op(
    spark: SparkSession, lake: Lake
) -> None:
    batch = spark.createDataFrame([(1, "F1", "2024-01-01", 1.0)], SCHEMA)
    zero = lake.write(batch, table="bronze/feed/other", app_txn=("feed/other", 0))
    assert lake.write(batch, table="bronze/feed/other", app_txn=("feed/other", 0)).skipped
    assert not zero.skipped
    first = lake.write(batch, table="bronze/feed/visits", app_txn=("feed/visits", 7))
    again = lake.write(batch, table="bronze/feed/visits", app_txn=("feed/visits", 7))
    older = lake.write(batch, table="bronze/feed/visits", app_txn=("feed/visits", 6))
    newer = lake.write(batch, table="bronze/feed/visits", app_txn=("feed/visits", 8))
    assert (first.skipped, again.skipped, older.skipped, newer.skipped) == (
        False, True, True, False)
    assert len(rows_of(lake, "bronze/feed/visits")) == 2
    assert DeltaTable(lake.ref("bronze/feed/visits").uri).transaction_version("feed/visits") == 8


def test_time_travel_by_version_and_timestamp(spark: SparkSession, lake: Lake) -> None:
    lake.write(spark.createDataFrame([(1, "F1", "2024-01-01", 1.0)], SCHEMA), table="gold/p")
    time.sleep(0.05)
    between = dt.datetime.now(dt.UTC)
    time.sleep(0.05)
    lake.write(spark.createDataFrame([(2, "F1", "2024-01-01", 2.0)], SCHEMA), table="gold/p",
               mode="overwrite")
    assert rows_of(lake, "gold/p", version=0) == [(1, "F1", "2024-01-01", 1.0)]
    assert rows_of(lake, "gold/p", as_of=between) == [(1, "F1", "2024-01-01", 1.0)]
    assert rows_of(lake, "gold/p") == [(2, "F1", "2024-01-01", 2.0)]


def test_reads_prune_files_by_partition_and_statistics(
    spark: SparkSession, lake: Lake, tmp_path: Path
) -> None:
    data = spark.createDataFrame(
        [(i, f"F{i // 10}", f"2024-01-0{1 + i % 2}", float(i)) for i in range(40)], SCHEMA
    ).repartition(4, "facility")
    lake.write(data, table="silver/v", partition_by=["day"])
    entries = list_files(DeltaTable(lake.ref("silver/v").uri))
    hit = [e for e in entries if may_match(e, [Term("day", "=", "2024-01-01"),
                                               Term("id", ">=", 30)])]
    assert 0 < len(hit) < len(entries)
    assert all(e.partition_values["day"] == "2024-01-01" and e.max_values["id"] >= 30 for e in hit)
    got = lake.read("silver/v").filter("day = '2024-01-01' and id >= 30").collect()
    assert sorted(r.id for r in got) == [30, 32, 34, 36, 38]


def test_the_data_source_works_through_plain_spark_calls(
    spark: SparkSession, tmp_path: Path
) -> None:
    uri = str(tmp_path / "plain_spark")
    df = spark.createDataFrame([(1, "F1", "2024-01-01", 1.0)], SCHEMA)
    df.write.format("delta_rs").mode("append").option("partitionBy", "day").save(uri)
    df.write.format("delta_rs").mode("overwrite").save(uri)
    assert spark.read.format("delta_rs").load(uri).count() == 1
    old = spark.read.format("delta_rs").option("versionAsOf", 0).load(uri)
    assert [tuple(r) for r in old.collect()] == [(1, "F1", "2024-01-01", 1.0)]
    assert DeltaTable(uri).metadata().partition_columns == ["day"]
