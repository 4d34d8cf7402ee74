"""Bad input gets an error naming the table and column, and never leaves half-written data."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lake_assets.errors import (
    DeltaMaintenanceError,
    DeltaPredicateError,
    DeltaSchemaError,
    NotADeltaTableError,
)
from lake_assets.storage.delta import WriteSpec, arrow_schema, vacuum, write_batches
from lake_assets.storage.lake import Lake
from tests.spark.conftest import parquet_files

pytestmark = pytest.mark.spark

SCHEMA = "id long, facility string, amount double"


def live(uri: str) -> set[str]:
    return {f.split(uri.rstrip("/") + "/", 1)[1] for f in DeltaTable(uri).file_uris()}


@pytest.fixture
def visits(spark: SparkSession, lake: Lake) -> str:
    lake.write(spark.createDataFrame([(1, "F1", 1.0), (2, "F2", 2.0)], SCHEMA),
               table="silver/visits", partition_by=["facility"])
    return lake.ref("silver/visits").uri


def test_a_path_that_is_not_a_delta_table(spark: SparkSession, lake: Lake) -> None:
    with pytest.raises(NotADeltaTableError, match="silver/missing"):
        lake.read("silver/missing")
    plain = lake.ref("silver/plain")
    spark.createDataFrame([(1, "F1", 1.0)], SCHEMA).write.parquet(plain.uri)
    with pytest.raises(NotADeltaTableError, match="silver/plain"):
        lake.read("silver/plain")
    with pytest.raises(NotADeltaTableError, match=r"silver/plain.*refusing"):
        lake.write(spark.createDataFrame([(1, "F1", 1.0)], SCHEMA), table="silver/plain")


def test_type_mismatch_names_table_and_column(
    spark: SparkSession, lake: Lake, visits: str
) -> None:
    bad = spark.createDataFrame([(3, "F1", "lots")], "id long, facility string, amount string")
    with pytest.raises(DeltaSchemaError, match=r"silver/visits.*'amount'"):
        lake.write(bad, table="silver/visits")
    assert DeltaTable(visits).version() == 0


def test_unknown_predicate_column_names_table_and_column(
    spark: SparkSession, lake: Lake, visits: str
) -> None:
    df = spark.createDataFrame([(3, "F1", 3.0)], SCHEMA)
    with pytest.raises(DeltaPredicateError, match=r"silver/visits.*'day'"):
        lake.write(df, table="silver/visits", mode="overwrite", replace_where={"day": "x"})
    with pytest.raises(DeltaSchemaError, match=r"silver/visits.*'seq'"):
        lake.merge(df, table="silver/visits", keys=["id"], sequence_by="seq")


def test_rows_outside_the_slice_fail_without_leaving_files(
    spark: SparkSession, lake: Lake, visits: str
) -> None:
    before = parquet_files(Path(visits))
    df = spark.createDataFrame([(3, "F1", 3.0), (4, "F9", 4.0)], SCHEMA).repartition(2)
    with pytest.raises(DeltaPredicateError, match=r"silver/visits: 1 rows fall outside"):
        lake.write(df, table="silver/visits", mode="overwrite", replace_where={"facility": "F1"})
    assert DeltaTable(visits).version() == 0
    assert parquet_files(Path(visits)) == before == live(visits)


def test_a_failed_task_commits_nothing(spark: SparkSession, lake: Lake, visits: str) -> None:
    before = parquet_files(Path(visits))
    boom = F.udf(lambda i: 1 // (i - 7), "long")
    df = spark.range(0, 10, numPartitions=2).select(
        boom("id").alias("id"), F.lit("F1").alias("facility"), F.lit(1.0).alias("amount"))
    with pytest.raises(Exception, match="ZeroDivisionError"):
        lake.write(df, table="silver/visits")
    assert DeltaTable(visits).version() == 0
    assert live(visits) == before
    assert sorted(r.id for r in lake.read("silver/visits").collect()) == [1, 2]
    # A task that finished while the job was aborting may leave its file behind, uncommitted;
    # vacuum is what removes such orphans.

    vacuum(lake.ref("silver/visits"), retention_hours=0, allow_short_retention=True)
    assert parquet_files(Path(visits)) == before


def test_orphans_are_never_read_and_vacuum_removes_them(lake: Lake, visits: str) -> None:
    spec = WriteSpec(uri=visits, table="silver/visits", schema=arrow_schema(DeltaTable(visits)),
                     partition_by=("facility",))
    orphan = pa.record_batch({"id": [9], "facility": ["F1"], "amount": [9.0]})
    written = write_batches([orphan], spec)  # as an executor killed before its commit would
    assert {f.path for f in written} <= parquet_files(Path(visits))
    assert sorted(r.id for r in lake.read("silver/visits").collect()) == [1, 2]

    with pytest.raises(DeltaMaintenanceError, match="silver/visits"):
        lake.vacuum("silver/visits", retention_hours=1)
    assert lake.vacuum("silver/visits") == []  # too new for the 7-day window

    removed = vacuum(lake.ref("silver/visits"), retention_hours=0, allow_short_retention=True)
    assert {Path(p).name for p in removed} == {Path(f.path).name for f in written}
    assert parquet_files(Path(visits)) == live(visits)
