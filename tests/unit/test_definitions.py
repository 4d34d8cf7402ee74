"""The one entry point: what a user sees in the UI, built from metadata without Spark or storage."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.loader import load_catalog
from lake_assets.definitions import build_definitions
from lake_assets.errors import MetadataError
from lake_assets.factory.partitions import FALLBACK_START
from tests.conftest import METADATA, EditFn


def test_definitions_load_without_spark_or_storage(tmp_path: Path) -> None:
    probe = (
        "import sys, dagster as dg\n"
        "from lake_assets.definitions import defs as load\n"
        "defs = load()\n"
        "dg.Definitions.validate_loadable(defs)\n"
        "from pyspark.sql import SparkSession\n"
        "assert SparkSession.getActiveSession() is None, 'Spark started at load'\n"
        "keys = defs.resolve_asset_graph().get_all_asset_keys()\n"
        "print(len(keys))\n"
    )
    env = {"LAKE_ROOT": "s3://bucket-that-does-not-exist/lake", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False,
        cwd=str(METADATA.parent), timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip()) == 19  # 7 bronze, 7 silver and 5 gold tables
    assert not (tmp_path / "lake").exists()


def test_importing_the_entry_point_reads_no_metadata() -> None:
    probe = (
        "import lake_assets.definitions as entry\n"
        "print('imported')\n"
        "entry.defs()\n"
    )
    env = {"LAKE_METADATA": "/nonexistent/metadata", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                          check=False, timeout=120)
    assert done.stdout.strip() == "imported"
    assert "MetadataError" in done.stderr and "/nonexistent/metadata" in done.stderr


def test_bronze_assets_carry_metadata_from_yaml() -> None:
    catalog = load_catalog(METADATA)
    defs = build_definitions(catalog)
    graph = defs.resolve_asset_graph()
    key = dg.AssetKey(["bronze", "adt_events", "patients"])
    node = graph.get(key)
    assert node.group_name == "bronze"
    assert node.owners == ["team:clinical-data"]
    assert node.kinds >= {"spark", "delta"}
    assert node.code_version == catalog.feed("adt_events").fingerprint(
        catalog.feed("adt_events").table("patients"))
    schema = node.metadata["dagster/column_schema"]
    phi = {c.name: c.tags.get("phi") for c in schema.columns if c.tags}
    assert phi == {"mrn": "hash", "family_name": "redact", "given_name": "redact",
                   "birth_date": "year_only", "postal_code": "zip3"}
    assert "_rescued_data" in [c.name for c in schema.columns]
    assert node.freshness_policy is not None
    census = graph.get(dg.AssetKey(["bronze", "bed_census", "bed_census"]))
    assert isinstance(census.partitions_def, dg.MultiPartitionsDefinition)


def test_one_sensor_per_feed_on_by_default() -> None:
    defs = build_definitions(load_catalog(METADATA))
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) >= {"adt_events_arrivals", "lab_results_arrivals",
                            "patient_encounters_arrivals", "bed_census_arrivals"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())


def test_code_version_changes_only_with_the_tables_metadata() -> None:
    catalog = load_catalog(METADATA)
    feed = catalog.feed("lab_results")
    table = feed.tables[0]
    renamed = feed.model_copy(update={"description": "other words"})
    assert renamed.fingerprint(table) == feed.fingerprint(table)
    stricter = table.model_copy(update={"keys": ("result_id",)})
    assert feed.fingerprint(stricter) != feed.fingerprint(table)


def test_every_feed_and_silver_find_a_run_slot() -> None:
    """dagster.yaml runs one bronze run per feed and one silver/gold run at a time; the run
    limit must leave room for all of them, or a feed's arrivals wait for silver."""
    settings = yaml.safe_load((METADATA.parent / "dagster.yaml").read_text())
    runs = settings["concurrency"]["runs"]
    limits = {limit["key"]: limit["limit"] for limit in runs["tag_concurrency_limits"]}
    feeds = len(load_catalog(METADATA).feeds)
    assert runs["max_concurrent_runs"] >= feeds * limits["lake/feed"] + limits["lake/downstream"]


def test_gold_tables_show_the_schema_their_sql_returns_with_phi_carried(tmp_path: Path) -> None:
    """Types come from the SQL over silver; a column computed from a PHI-tagged column keeps the
    tag, through a second projection that reads the first."""
    metadata = Path(shutil.copytree(METADATA, tmp_path / "metadata"))
    projections = metadata / "projections"
    (projections / "patient_tests.sql").write_text(
        "SELECT facility_code, mrn, CONCAT(mrn, '-', test_code) AS patient_test,\n"
        "       COUNT(*) AS results\nFROM silver.lab_results GROUP BY 1, 2, 3\n")
    (projections / "patient_tests.yaml").write_text(
        "name: patient_tests\ndescription: Results per patient and test.\nowners: [analytics]\n"
        "sql: patient_tests.sql\nfreshness: {warn_after: 3h, fail_after: 8h}\n")
    (projections / "test_mix.sql").write_text(
        "SELECT patient_test, SUM(results) AS results FROM gold.patient_tests GROUP BY 1\n")
    (projections / "test_mix.yaml").write_text(
        "name: test_mix\ndescription: Results per patient test.\nowners: [analytics]\n"
        "sql: test_mix.sql\nfreshness: {warn_after: 3h, fail_after: 8h}\n")
    graph = build_definitions(load_catalog(metadata)).resolve_asset_graph()

    def columns(name: str) -> dict[str, tuple[str, str | None]]:
        schema = graph.get(dg.AssetKey(["gold", name])).metadata["dagster/column_schema"]
        return {c.name: (c.type, (c.tags or {}).get("phi")) for c in schema.columns}

    assert columns("patient_tests") == {
        "facility_code": ("string", None), "mrn": ("string", "hash"),
        "patient_test": ("string", "hash"), "results": ("bigint", None)}
    assert columns("test_mix") == {"patient_test": ("string", "hash"),
                                   "results": ("bigint", None)}
    census = columns("daily_census")
    assert census["census_date"] == ("date", None) and census["occupancy"][0] == "double"


def test_runs_name_their_feed_s_job_and_descriptions_name_the_code_version() -> None:
    defs = build_definitions(load_catalog(METADATA))
    sensors = {s.name: s for s in defs.sensors}
    assert sensors["lab_results_arrivals"].job_name == "ingest_lab_results"
    node = defs.resolve_asset_graph().get(dg.AssetKey(["bronze", "lab_results", "lab_results"]))
    assert f"Code version `{node.code_version}`" in node.description
    assert "`feeds/lab_results.yaml`" in node.description


def test_projection_checks_must_name_columns_the_sql_returns(tmp_path: Path) -> None:
    metadata = Path(shutil.copytree(METADATA, tmp_path / "metadata"))
    census = metadata / "projections" / "daily_census.yaml"
    census.write_text(census.read_text().replace("not_null: [facility_code, census_date]",
                                                 "not_null: [facility_code, census_day]"))
    with pytest.raises(MetadataError) as problems:
        load_catalog(metadata)
    assert "projections/daily_census.yaml: checks.census_day: the SQL of daily_census.sql " \
           "returns no column 'census_day'" in str(problems.value)
    graph = build_definitions(load_catalog(METADATA)).resolve_asset_graph()
    assert dg.AssetCheckKey(dg.AssetKey(["gold", "daily_census"]), "rules") in \
        graph.asset_check_keys


def test_partitions_start_on_the_first_arrival_or_the_declared_start_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metadata_copy: Path, edit_yaml: EditFn
) -> None:
    """The partition bar counts days from the lake's first arrival, not from a fixed date; a
    feed's `start_date` reaches further back; nothing landed yet keeps the early fallback."""
    def first_day(catalog: Catalog) -> str:
        graph = build_definitions(catalog).resolve_asset_graph()
        days = graph.get(dg.AssetKey(["bronze", "lab_results", "lab_results"])).partitions_def
        assert days is not None
        return days.get_first_partition_key() or ""

    monkeypatch.setenv("LANDING_ROOT", str(tmp_path / "landing"))
    assert first_day(load_catalog(metadata_copy)) == FALLBACK_START
    for feed, day in (("lab_results", "2026-11-27"), ("adt_events", "2026-11-25")):
        (tmp_path / "landing" / feed / day / "09").mkdir(parents=True)
    assert first_day(load_catalog(metadata_copy)) == "2026-11-25"
    edit_yaml("feeds/bed_census.yaml", lambda doc: doc.update(start_date="2026-10-01"))
    assert first_day(load_catalog(metadata_copy)) == "2026-10-01"
