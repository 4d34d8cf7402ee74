"""Maintenance: compaction and Z-order keep rows, vacuum keeps time travel, history, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from lake_assets.errors import DeltaMaintenanceError
from lake_assets.storage.lake import Lake

pytestmark = pytest.mark.spark

SCHEMA = "id long, _facility_id string, day string"


def test_compaction_zorder_vacuum_history_checkpoint(
    spark: SparkSession, lake: Lake
) -> None:
    uri = lake.ref("silver/visits").uri
    for day in ("2024-01-01", "2024-01-02", "2024-01-03"):
        rows = [(i, f"F{i % 4}", day) for i in range(30)]
        lake.write(spark.createDataFrame(rows, SCHEMA).repartition(3), table="silver/visits")
    before = sorted(tuple(r) for r in lake.read("silver/visits").collect())
    files_before = len(DeltaTable(uri).file_uris())

    metrics = lake.optimize("silver/visits", zorder_by=["_facility_id"])
    assert metrics["numFilesRemoved"] == files_before > len(DeltaTable(uri).file_uris())
    assert sorted(tuple(r) for r in lake.read("silver/visits").collect()) == before

    with pytest.raises(DeltaMaintenanceError, match=r"silver/visits.*'ward'"):
        lake.optimize("silver/visits", zorder_by=["ward"])
    assert lake.vacuum("silver/visits") == []  # nothing is 7 days old: time travel intact
    assert len(lake.read("silver/visits", version=0).collect()) == 30

    operations = [h["operation"] for h in lake.history("silver/visits")]
    assert operations[0] == "OPTIMIZE" and len(operations) == 4
    version = lake.checkpoint("silver/visits")
    assert (Path(uri) / "_delta_log" / f"{version:020d}.checkpoint.parquet").is_file()
    assert len(lake.read("silver/visits").collect()) == 90


def test_compaction_of_selected_partitions_only(spark: SparkSession, lake: Lake) -> None:
    for _ in range(2):
        rows = [(i, "F1", day) for i in range(5) for day in ("2024-01-01", "2024-01-02")]
        lake.write(spark.createDataFrame(rows, SCHEMA), table="bronze/f/t", partition_by=["day"])
    metrics = lake.optimize("bronze/f/t", where={"day": "2024-01-01"})
    assert metrics["numFilesRemoved"] >= 2 and metrics["numFilesAdded"] == 1
    with pytest.raises(DeltaMaintenanceError, match=r"bronze/f/t.*'id'"):
        lake.optimize("bronze/f/t", where={"id": 1})
