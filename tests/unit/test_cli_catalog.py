"""`lakehouse validate` and `lakehouse catalog`, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from lake_assets.catalog.loader import load_catalog
from lake_assets.catalog.query import run_query
from lake_assets.cli import app
from tests.conftest import METADATA, EditFn

runner = CliRunner()


def test_validate_shipped_metadata_exits_zero() -> None:
    result = runner.invoke(app, ["validate", str(METADATA)])
    assert result.exit_code == 0, result.output
    assert "4 feeds" in result.output


def test_validate_broken_copy_lists_every_problem_without_traceback(
    edit_yaml: EditFn, metadata_copy: Path
) -> None:
    edit_yaml("feeds/lab_results.yaml", lambda d: d["tables"][0].update(sequence_by="nope"))
    edit_yaml("owners.yaml", lambda d: d["teams"]["analytics"].update(pager="x"))
    completed = subprocess.run(
        [sys.executable, "-m", "lake_assets.cli", "validate", str(metadata_copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert "feeds/lab_results.yaml: tables[lab_results].sequence_by: 'nope'" in completed.stderr
    assert "owners.yaml: teams.analytics.pager: unknown key" in completed.stderr
    assert "Traceback" not in completed.stderr + completed.stdout


def test_catalog_lists_every_phi_column_with_its_file() -> None:
    sql = 'SELECT feed, "table", name, phi, file FROM columns WHERE phi IS NOT NULL'
    result = runner.invoke(app, ["catalog", sql, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {"feed": "lab_results", "table": "lab_results", "name": "mrn", "phi": "hash",
            "file": "feeds/lab_results.yaml"} in rows
    assert {r["phi"] for r in rows} == {"hash", "redact", "year_only", "zip3", "age"}


def test_catalog_prints_an_aligned_table() -> None:
    result = runner.invoke(app, ["catalog", "SELECT name, format FROM feeds ORDER BY name"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    row = next(line for line in lines if "bed_census" in line)
    header = next(line for line in lines if "format" in line)
    assert row.index("delimited") == header.index("format")
    assert "4 row(s)" in result.output


def test_catalog_tables_cover_feeds_tables_projections_owners() -> None:
    catalog = load_catalog(METADATA)
    _, tables = run_query(catalog, "SELECT feed, name, cdc, keys FROM tables ORDER BY 1, 2")
    assert ("lab_results", "lab_results", "scd1", "facility_code,result_id") in tables
    _, projections = run_query(catalog, "SELECT name, file FROM projections ORDER BY name")
    assert projections[0] == ("adt_daily_volume", "projections/adt_daily_volume.yaml")
    _, owners = run_query(catalog, "SELECT team FROM owners WHERE pagerduty_routing_key_secret "
                                   "IS NOT NULL")
    assert owners == [("lab-informatics",)]


def test_catalog_bad_sql_is_a_clean_error() -> None:
    result = runner.invoke(app, ["catalog", "SELECT nope FROM feeds"])
    assert result.exit_code == 1
    assert "no such column: nope" in result.output
    assert "columns(feed, table, name, type" in result.output


def test_catalog_is_read_only() -> None:
    result = runner.invoke(app, ["catalog", "DELETE FROM feeds"])
    assert result.exit_code == 1
    assert "readonly" in result.output


def test_catalog_cells_are_shown_verbatim() -> None:
    sql = "SELECT name, checks FROM columns WHERE feed = 'patient_encounters' AND name = 'code'"
    result = runner.invoke(app, ["catalog", sql])
    assert result.exit_code == 0, result.output
    assert r'^[A-Z]\\d{2}' in result.output.replace("\n", "")
