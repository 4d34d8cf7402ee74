"""Lineage from SQL: the tables a projection reads become its asset dependencies; a table the
catalog does not hold stops the load with the SQL file named."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from lake_assets.catalog.lineage import parse_query, rewrite, sql_name, table_references
from lake_assets.catalog.loader import load_catalog
from lake_assets.definitions import build_definitions
from lake_assets.errors import MetadataError
from lake_assets.factory.automation import SENSOR_NAME
from tests.conftest import METADATA, EditFn


def add_projection(root: Path, name: str, sql: str, *, partitioned: bool = False) -> None:
    folder = root / "projections"
    (folder / f"{name}.sql").write_text(sql)
    daily = "partitions: [date]\npartition_column: day\n" if partitioned else ""
    (folder / f"{name}.yaml").write_text(
        f"name: {name}\nowners: [analytics]\nsql: {name}.sql\n"
        f"freshness: {{warn_after: 1h, fail_after: 2h}}\n{daily}"
    )


def test_sql_references_become_asset_dependencies(metadata_copy: Path) -> None:
    add_projection(metadata_copy, "visit_census", """
        WITH per_day AS (SELECT CAST(event_time AS DATE) AS day, facility_code
                         FROM silver.visits)
        SELECT d.day, d.facility_code, v.messages
        FROM per_day AS d JOIN gold.adt_daily_volume AS v
          ON d.facility_code = v.facility_code AND d.day = v.event_date
    """, partitioned=True)
    graph = build_definitions(load_catalog(metadata_copy)).resolve_asset_graph()
    node = graph.get(dg.AssetKey(["gold", "visit_census"]))
    assert node.parent_keys == {dg.AssetKey(["silver", "visits"]),
                                dg.AssetKey(["gold", "adt_daily_volume"])}
    assert graph.get(dg.AssetKey(["gold", "daily_census"])).parent_keys == {
        dg.AssetKey(["silver", "bed_census"])}
    assert graph.get(dg.AssetKey(["silver", "bed_census"])).parent_keys == {
        dg.AssetKey(["bronze", "bed_census", "bed_census"])}
    assert node.owners == ["team:analytics"]
    assert node.automation_condition is not None


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT * FROM silver.vists", "unknown table silver.vists"),
    ("SELECT * FROM visits", "unknown table visits"),
    ("SELECT * FROM bronze.adt_events__visits", "silver and gold tables only"),
    ("SELECT * FROM gold.broken", "cannot read itself"),
    ("SELEC * FROM silver.visits", "SQL does not parse"),
    ("SELECT 1; SELECT 2", "exactly one SELECT"),
])
def test_a_bad_reference_fails_the_load_naming_the_sql_file(
    metadata_copy: Path, sql: str, expected: str
) -> None:
    add_projection(metadata_copy, "broken", sql)
    with pytest.raises(MetadataError) as failure:
        build_definitions(load_catalog(metadata_copy))
    assert "projections/broken.sql" in str(failure.value)
    assert expected in str(failure.value)


def test_cycles_between_projections_are_load_errors(metadata_copy: Path) -> None:
    add_projection(metadata_copy, "first", "SELECT * FROM gold.second")
    add_projection(metadata_copy, "second", "SELECT * FROM gold.first")
    with pytest.raises(MetadataError, match="cycle"):
        build_definitions(load_catalog(metadata_copy))


def test_tagged_merge_columns_are_load_errors(metadata_copy: Path, edit_yaml: EditFn) -> None:
    def year_only_sequence(data: dict) -> None:
        visits = next(t for t in data["tables"] if t["name"] == "visits")
        next(c for c in visits["columns"] if c["name"] == "event_time")["phi"] = "year_only"

    edit_yaml("feeds/adt_events.yaml", year_only_sequence)
    with pytest.raises(MetadataError, match=r"feeds/adt_events.yaml: tables\[visits\]"):
        build_definitions(load_catalog(metadata_copy))


def test_rewrite_reads_frames_and_keeps_names_usable() -> None:
    query = parse_query("SELECT visits.unit, c.mrn FROM silver.visits "
                        "JOIN silver.patients AS c ON visits.mrn = c.mrn", file="q.sql")
    assert table_references(query) == ("silver.patients", "silver.visits")
    spark_sql = rewrite(query)
    assert "{silver__visits} AS visits" in spark_sql
    assert "{silver__patients} AS c" in spark_sql
    assert sql_name("bronze/adt_events/visits") == "bronze.adt_events__visits"
    assert sql_name("gold/daily_census") == "gold.daily_census"


def test_silver_and_gold_update_themselves_with_the_sensor_on() -> None:
    defs = build_definitions(load_catalog(METADATA))
    sensor = next(s for s in defs.sensors if s.name == SENSOR_NAME)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    layers = {k.path[0] for k in graph.get_all_asset_keys()
              if graph.get(k).automation_condition is not None}
    assert layers == {"silver", "gold"}


def test_rewrite_keeps_braces_of_the_query_as_written() -> None:
    query = parse_query("SELECT '{mrn}' AS label, regexp_extract(mrn, '[0-9]{3}', 0) AS digits "
                        "FROM silver.patients", file="q.sql")
    spark_sql = rewrite(query).format(silver__patients="frame")
    assert "'{mrn}' AS label" in spark_sql
    assert "'[0-9]{3}'" in spark_sql
    assert "FROM frame AS patients" in spark_sql
