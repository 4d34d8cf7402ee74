"""Checks end to end on a real Dagster instance, Spark and Delta on disk: facility silence from
the manifest, a blocking check that stops gold, and a silver check result with counts and
masked samples. Bronze rows are written straight to the bronze Delta tables, as the bronze
asset writes them, so each test controls exactly what is wrong.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from pyspark.sql import SparkSession

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.loader import load_catalog
from lake_assets.checks import CheckTally, compile_rules, evaluate_rows
from lake_assets.definitions import build_definitions
from lake_assets.factory.checks import check_results, table_check_specs
from lake_assets.factory.silver import build_silver_assets
from lake_assets.factory.specs import build_bronze_specs
from lake_assets.resources import DeltaLake
from lake_assets.simulate import SimulationOptions, read_truth, simulate
from lake_assets.storage.lake import Lake
from lake_assets.storage.manifest import ManifestRow
from tests.alert_servers import serve_http, serve_smtp
from tests.conftest import DAILY, METADATA, EditFn

pytestmark = [pytest.mark.spark, pytest.mark.slow]

DAY = "2026-03-10"
LAB_SILVER = dg.AssetKey(["silver", "lab_results"])
TURNAROUND = dg.AssetKey(["gold", "lab_turnaround"])
ENCOUNTERS = dg.AssetKey(["silver", "encounters"])
LAB_BRONZE = dg.AssetKey(["bronze", "lab_results", "lab_results"])
CENSUS_BRONZE = dg.AssetKey(["bronze", "bed_census", "bed_census"])
CENSUS_SILVER = dg.AssetKey(["silver", "bed_census"])
PHI_MRN, PHI_NAME = "MRN88812345", "Doe"
_STAMP = re.compile(r"-(\d{8}T\d{6})-\d+\.\w+$")


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog(METADATA)


def latest_check(
    instance: dg.DagsterInstance, asset: dg.AssetKey, name: str
) -> dg.AssetCheckEvaluation:
    [record] = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(asset, name), limit=1)
    assert record.evaluation is not None, f"{name} was not evaluated"
    return record.evaluation


def metadata_of(evaluation: dg.AssetCheckEvaluation) -> dict[str, object]:
    return {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}


# Facility silence ------------------------------------------------------------------------------


def record_deliveries(truth: Path, lake_root: Path, *, run: str) -> None:
    """Record the simulated archives in the manifest at the time each one arrived, as the
    bronze asset would have had it loaded them as they landed."""
    manifest = Lake(root=str(lake_root)).manifest()
    for index, record in enumerate(read_truth(str(truth))):
        found = _STAMP.search(record.archive)
        assert found, record.archive
        at = dt.datetime.strptime(found.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
        row = ManifestRow(
            path=record.archive, size=1, sha256="0" * 64, feed=record.feed,
            facility=record.facility, arrival_date=at.date().isoformat(),
            batch_id=f"{run}-{index}", status=record.status, rows=sum(record.rows.values()),
            bad_rows=0, rows_by_table=json.dumps(record.rows), reason=record.reason,
            message=None, ingested_at=at, committed_at=at,
        )
        manifest.record(record.feed, row.batch_id, [row])


def simulate_lab(catalog: Catalog, out: Path, *, facilities: int, start: dt.datetime,
                 seed: int) -> set[str]:
    truth = out / f"truth-{seed}.jsonl"
    simulate(catalog, SimulationOptions(
        out=str(out / "landing"), truth=str(truth), facilities=facilities, hours=3, rate=20,
        faults=0.0, seed=seed, size_scale=0.02, start=start, feeds=("lab_results",),
        resend_rate=0.0, late_rate=0.0,
    ))
    record_deliveries(truth, out, run=f"sim{seed}")
    return {r.facility for r in read_truth(str(truth))}


def test_the_facility_that_stopped_sending_is_the_one_reported_to_its_owners(
    catalog: Catalog, instance: dg.DagsterInstance, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake_root = tmp_path / "lake"
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    before = simulate_lab(catalog, lake_root, facilities=4, start=now - dt.timedelta(hours=6),
                          seed=3)
    after = simulate_lab(catalog, lake_root, facilities=3, start=now - dt.timedelta(hours=3),
                         seed=4)
    stopped = before - after
    assert len(stopped) == 1 and after < before
    defs = build_definitions(catalog)

    schedule = defs.resolve_schedule_def("facility_silence")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    job = defs.resolve_job_def(schedule.job_name)
    result = job.execute_in_process(instance=instance, resources=defs.resources)

    assert result.success
    silence = latest_check(instance, LAB_BRONZE, "facility_silence")
    found = metadata_of(silence)
    assert not silence.passed and silence.severity == dg.AssetCheckSeverity.WARN
    assert found["facility"] == next(iter(stopped))
    assert found["failing_count"] == 1 and found["facilities_seen"] == 4
    assert [f["facility"] for f in found["silent_facilities"]] == sorted(stopped)
    assert latest_check(instance, dg.AssetKey(["bronze", "bed_census", "bed_census"]),
                        "facility_silence").passed  # no deliveries: nobody is silent

    with serve_smtp() as smtp, serve_http() as http:
        monkeypatch.setenv("LAKE_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("LAKE_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("LAKE_PAGERDUTY_URL", http.url("/pagerduty"))
        monkeypatch.setenv("LAKE_SECRET_PAGERDUTY_LAB", "lab-routing-key")
        alerts = defs.resolve_sensor_def("lake_alerts")
        with dg.build_sensor_context(instance=instance, definitions=defs,
                                     resources=defs.resources) as context:
            alerts(context)
        [mail] = [m for m in smtp.to("lab-informatics@example.org")
                  if "facility_silence" in m["Subject"]]
    body = mail.get_content()
    assert f"Facility:   {next(iter(stopped))}" in body and "failing_count=1" in body


# Silver checks ---------------------------------------------------------------------------------


def write_bronze(spark: SparkSession, catalog: Catalog, feed: str, table: str,
                 rows: list[dict[str, object]]) -> None:
    """Bronze rows of one arrival day: declared columns as text, which silver casts, and the
    lineage columns silver keeps."""
    declared = catalog.feed(feed).table(table)
    assert declared is not None
    names = [c.name for c in declared.columns]
    schema = ", ".join(f"{n} string" for n in names) + ", _facility_id string, " \
        "_arrival_date date, _source_archive string, _source_member string, " \
        "_ingested_at timestamp"
    day = dt.date.fromisoformat(DAY)
    at = dt.datetime(2026, 3, 10, 8, tzinfo=dt.UTC)
    data = [
        (*(row.get(n) for n in names), row.get("facility_code"), day, f"a{i}.zip", "m.csv", at)
        for i, row in enumerate(rows)
    ]
    Lake().write(spark.createDataFrame(data, schema), table=["bronze", feed, table],
                      mode="overwrite", partition_by=["_arrival_date"])


def lab_rows(statuses: list[str]) -> list[dict[str, object]]:
    return [
        {"result_id": f"RES{i:05d}", "facility_code": "FAC00001", "order_id": f"O{i}",
         "mrn": f"M{i}", "test_code": "1234-5", "value": "4.2", "status": status,
         "collected_at": "2026-03-10 07:00:00", "resulted_at": "2026-03-10 07:40:00"}
        for i, status in enumerate(statuses)
    ]


@pytest.fixture
def blocking_catalog(metadata_copy: Path, edit_yaml: EditFn) -> Catalog:
    def block_on_status(data: dict) -> None:
        status = next(c for c in data["tables"][0]["columns"] if c["name"] == "status")
        status["checks"]["blocking"] = True

    edit_yaml("feeds/lab_results.yaml", block_on_status)
    return load_catalog(metadata_copy)


def test_a_failed_blocking_check_stops_gold_until_it_passes(
    spark: SparkSession, blocking_catalog: Catalog, instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(blocking_catalog)
    assets = [defs.get_assets_def(LAB_SILVER), defs.get_assets_def(TURNAROUND)]
    ticked = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    write_bronze(spark, blocking_catalog, "lab_results", "lab_results",
                 lab_rows(["F", "F", "X", "P"]))

    run = dg.materialize(assets, instance=instance, resources=defs.resources,
                         partition_key=DAY, raise_on_error=False)

    materialized = {e.asset_key for e in run.get_asset_materialization_events()}
    assert materialized == {LAB_SILVER}  # gold did not run after the failed blocking check
    status = latest_check(instance, LAB_SILVER, "status_valid")
    assert not status.passed and metadata_of(status)["status.allowed"] == 1
    ticked = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=ticked.cursor)
    assert ticked.get_requested_partitions(TURNAROUND) == set()

    write_bronze(spark, blocking_catalog, "lab_results", "lab_results",
                 lab_rows(["F", "F", "C", "P"]))
    dg.materialize(assets[:1], instance=instance, resources=defs.resources, partition_key=DAY)
    assert latest_check(instance, LAB_SILVER, "status_valid").passed
    ticked = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=ticked.cursor)
    assert ticked.get_requested_partitions(TURNAROUND) == {DAY}


def census_rows(statuses: list[str]) -> pa.Table:
    return pa.table({
        "facility_code": ["FAC00002"] * len(statuses),
        "snapshot_time": pa.array([dt.datetime(2026, 3, 10, 8, tzinfo=dt.UTC)] * len(statuses)),
        "unit": ["ICU"] * len(statuses),
        "bed_id": [f"B{i}" for i in range(len(statuses))],
        "status": statuses,
        "_facility_id": ["FAC00002"] * len(statuses),
    })


def bronze_census_stub(catalog: Catalog, plan: dict[str, list[str]]) -> dg.AssetsDefinition:
    """The census bronze asset with its real specs and checks and no Spark: each run evaluates
    the rules on two Arrow batches, as two executor tasks would, and merges their tallies."""
    feed = catalog.feed("bed_census")
    [table] = feed.tables
    specs = build_bronze_specs(feed, source_file="feeds/bed_census.yaml", daily=DAILY)
    key = specs[0].key

    @dg.multi_asset(specs=specs, partitions_def=specs[0].partitions_def,
                    check_specs=table_check_specs(key, table, specs[0].partitions_def))
    def _bronze() -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        rules = compile_rules(table)
        halves = [plan["statuses"][:2], plan["statuses"][2:]]
        tallies = [CheckTally.from_json(evaluate_rows(rules, census_rows(h)).tally.to_json())
                   for h in halves]
        yield dg.MaterializeResult(asset_key=key)
        yield from check_results(key, table, CheckTally.merge_all(tallies), facility="FAC00002")

    return _bronze


def test_a_failed_blocking_bronze_check_holds_back_silver_of_that_day(
    metadata_copy: Path, edit_yaml: EditFn, instance: dg.DagsterInstance
) -> None:
    def block_on_status(data: dict) -> None:
        status = next(c for c in data["tables"][0]["columns"] if c["name"] == "status")
        status["checks"]["blocking"] = True

    edit_yaml("feeds/bed_census.yaml", block_on_status)
    catalog = load_catalog(metadata_copy)
    plan = {"statuses": ["occupied", "available", "on fire", "cleaning"]}
    bronze = bronze_census_stub(catalog, plan)
    silver = next(a for a in build_silver_assets(catalog, DAILY) if a.key == CENSUS_SILVER)
    defs = dg.Definitions(assets=[bronze, silver], resources={"lake": DeltaLake()})
    instance.add_dynamic_partitions("bed_census__facility", ["FAC00001", "FAC00002"])
    ticked = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    partition = dg.MultiPartitionKey({"date": DAY, "facility": "FAC00002"})

    dg.materialize([bronze], instance=instance, partition_key=partition, raise_on_error=False)

    status = latest_check(instance, CENSUS_BRONZE, "status_valid")
    assert not status.passed and status.partition == str(partition)
    found = metadata_of(status)
    assert (found["status.allowed"], found["total_rows"], found["facility"]) == (
        1, 4, "FAC00002")
    assert found["samples"] == {"status.allowed": ["on fire"]}
    ticked = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=ticked.cursor)
    assert ticked.get_requested_partitions(CENSUS_SILVER) == set()

    plan["statuses"] = ["occupied", "available", "blocked", "cleaning"]
    dg.materialize([bronze], instance=instance, partition_key=partition)
    ticked = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=ticked.cursor)
    assert ticked.get_requested_partitions(CENSUS_SILVER) == {DAY}


def test_silver_check_results_carry_counts_and_masked_samples(
    spark: SparkSession, catalog: Catalog, instance: dg.DagsterInstance
) -> None:
    encounter = {"facility_code": "FAC00002", "family_name": PHI_NAME, "age": "47",
                 "encounter_type": "inpatient", "admit_time": "2026-03-09T10:00:00",
                 "updated_at": "2026-03-10T07:00:00", "attending_npi": "1234567890"}
    rows = [
        encounter | {"encounter_id": "E1", "mrn": PHI_MRN},
        encounter | {"encounter_id": "E2", "mrn": "MRN2", "encounter_type": "teleport"},
        encounter | {"encounter_id": "E3", "mrn": "MRN3", "encounter_type": "spa"},
        encounter | {"encounter_id": "E4", "mrn": "MRN4", "facility_code": "FACX"},
    ]
    write_bronze(spark, catalog, "patient_encounters", "encounters", rows)
    defs = build_definitions(catalog)

    dg.materialize([defs.get_assets_def(ENCOUNTERS)], instance=instance,
                   resources=defs.resources, partition_key=DAY)

    kind = latest_check(instance, ENCOUNTERS, "encounter_type_valid")
    found = metadata_of(kind)
    assert not kind.passed and kind.severity == dg.AssetCheckSeverity.ERROR
    assert (found["failing_rows"], found["total_rows"], found["encounter_type.allowed"]) == (
        2, 4, 2)
    assert found["samples"] == {"encounter_type.allowed": ["teleport", "spa"]}
    assert (found["column"], found["facility"]) == ("encounter_type", "FAC00002")
    facility = metadata_of(latest_check(instance, ENCOUNTERS, "facility_code_valid"))
    assert facility["samples"] == {"facility_code.regex": ["FACX"]}
    orphans = latest_check(instance, ENCOUNTERS, "mrn_in_patients")
    assert not orphans.passed and orphans.severity == dg.AssetCheckSeverity.WARN
    assert metadata_of(orphans)["failing_rows"] == 4
    assert metadata_of(orphans)["samples"] == {"mrn_in_patients": ["***"]}
    assert latest_check(instance, ENCOUNTERS, "schema").passed
    every = [latest_check(instance, ENCOUNTERS, c.name)
             for c in defs.get_assets_def(ENCOUNTERS).check_specs]
    text = json.dumps([(e.description, metadata_of(e)) for e in every], default=str)
    for raw in (PHI_MRN, PHI_NAME, "1234567890"):
        assert raw not in text
