"""Table upkeep from metadata: sealed partitions compacted, the open day left alone, time travel
kept, a bronze run beside a compaction of the same table, and the job's observations."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from lake_assets.catalog.loader import load_catalog
from lake_assets.factory.maintenance import JOB_NAME, build_maintenance_job, upkeep_specs
from lake_assets.resources import DeltaLake
from lake_assets.storage.batch import bronze_row_schema
from lake_assets.storage.delta import arrow_to_spark
from lake_assets.storage.lake import Lake
from lake_assets.storage.upkeep import UpkeepSpec, upkeep
from tests.conftest import METADATA, project_instance
from tests.spark.test_bronze_batch import land, run_batch
from tests.unit.ingest_builders import aes_zip, feed, lab_csv

pytestmark = pytest.mark.spark

TODAY = dt.date(2026, 11, 20)
SEALED = TODAY - dt.timedelta(days=1)
SCHEMA = "id long, _facility_id string, _arrival_date date"
BRONZE = ("bronze", "lab_results", "lab_results")


def append_batches(spark: SparkSession, lake: Lake, table: tuple[str, ...], day: dt.date,
                   batches: int, *, start: int = 0) -> None:
    """One commit per micro-batch, as bronze writes them."""
    for batch in range(batches):
        rows = [(start + batch * 10 + i, f"FAC0000{i % 3}", day) for i in range(10)]
        lake.write(spark.createDataFrame(rows, SCHEMA).coalesce(1), table=table,
                   partition_by=["_arrival_date"])


def files_of(lake: Lake, table: tuple[str, ...], day: dt.date) -> int:
    actions = pa.table(DeltaTable(lake.ref(table).uri).get_add_actions(flatten=True))
    return sum(1 for a in actions.to_pylist() if a["partition._arrival_date"] == day)


def test_sealed_partitions_are_compacted_and_the_open_day_is_left_alone(
    spark: SparkSession, lake: Lake
) -> None:
    table = ("bronze", "f", "t")
    append_batches(spark, lake, table, SEALED, 12)
    append_batches(spark, lake, table, TODAY, 4, start=1000)
    spec = UpkeepSpec(table, "_arrival_date", daily=True, zorder_by=("_facility_id",))

    done = upkeep(lake, spec, sealed_before=TODAY)

    assert done is not None and done.compacted == [SEALED.isoformat()]
    assert (done.before.files, done.after.files) == (16, 5)
    assert files_of(lake, table, SEALED) == 1 and files_of(lake, table, TODAY) == 4
    assert lake.read(table).count() == 160
    assert lake.read(table, version=0).count() == 10  # time travel intact
    again = upkeep(lake, spec, sealed_before=TODAY)
    assert again is not None and again.compacted == []  # one file per sealed day: done


def test_tidying_checkpoints_and_vacuum_keeps_the_time_travel_window(
    spark: SparkSession, lake: Lake
) -> None:
    table = ("silver", "visits")
    for batch in range(3):
        rows = [(batch * 10 + i, "FAC00001", SEALED) for i in range(10)]
        lake.write(spark.createDataFrame(rows, SCHEMA), table=table)
    spec = UpkeepSpec(table, vacuum_hours=7 * 24)

    done = upkeep(lake, spec, sealed_before=TODAY, tidy=True)

    assert done is not None and done.vacuumed == 0  # no removed file is a week old yet
    log = Path(lake.ref(table).uri) / "_delta_log"
    assert (log / f"{done.checkpoint_version:020d}.checkpoint.parquet").is_file()
    assert lake.read(table, version=0).count() == 10


def test_a_bronze_run_beside_a_compaction_of_the_same_table_loses_nothing(
    spark: SparkSession, lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANDING_ROOT", str(tmp_path / "landing"))
    monkeypatch.setenv("LAKE_SECRET_LAB_ZIP_PASSWORD", "s3cret-pass")
    append_batches_bronze(spark, lake)
    rows = [{"result_id": f"R{n:06d}"} for n in range(20)]
    archive = land(tmp_path / "landing", "a.zip", aes_zip([("a.csv", lab_csv(rows))]))
    spec = UpkeepSpec(BRONZE, "_arrival_date", daily=True, zorder_by=("_facility_id",))
    errors: list[BaseException] = []

    def compact() -> None:
        try:
            upkeep(lake, spec, sealed_before=TODAY)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    worker = threading.Thread(target=compact)
    worker.start()
    run_batch(lake, [archive], "20261120-0000001", "rescue")
    worker.join()

    assert errors == []
    assert files_of(lake, BRONZE, SEALED) == 1
    assert lake.read(BRONZE).count() == 120 + 20


def append_batches_bronze(spark: SparkSession, lake: Lake) -> None:
    """Twelve earlier micro-batches of the lab results table, on the sealed day."""
    schema = arrow_to_spark(bronze_row_schema(feed("lab_results"), "lab_results"))
    for batch in range(12):
        rows = [tuple({"result_id": f"S{batch:02d}{i:04d}", "_facility_id": "FAC00001",
                       "_arrival_date": SEALED}.get(name) for name in schema.fieldNames())
                for i in range(10)]
        lake.write(spark.createDataFrame(rows, schema), table=BRONZE,
                   partition_by=["_arrival_date"])


def test_the_maintenance_job_observes_every_kept_table(spark: SparkSession, lake: Lake) -> None:
    catalog = load_catalog(METADATA)
    append_batches(spark, lake, ("bronze", "adt_events", "patients"), SEALED, 3)
    specs = {".".join(spec.table): key for key, spec in upkeep_specs(catalog)}
    assert specs["bronze.lab_results.lab_results"] == dg.AssetKey(list(BRONZE))
    assert specs["quarantine.lab_results.lab_results"] is None
    assert "_lake.ingested_files" in specs and "gold.daily_census" in specs

    clock = lambda: dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)  # noqa: E731
    job = build_maintenance_job(catalog, clock=clock)
    with project_instance() as instance:
        result = job.execute_in_process(instance=instance,
                                        resources={"lake": DeltaLake(root=lake.root)})
    assert result.success and result.dagster_run.job_name == JOB_NAME
    [observed] = [e.event_specific_data.asset_observation
                  for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert observed.asset_key == dg.AssetKey(["bronze", "adt_events", "patients"])
    assert observed.metadata["files"].value == 1
    assert observed.metadata["compacted_partitions"].value == 1
