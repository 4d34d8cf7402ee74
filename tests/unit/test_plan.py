"""`lakehouse plan`: a metadata change compared with its base, as a reviewer reads it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lake_assets.catalog.loader import load_catalog
from lake_assets.catalog.plan import Plan, build_plan
from tests.conftest import METADATA, EditFn

LABS = "feeds/lab_results.yaml"


def plan_of(metadata: Path) -> Plan:
    return build_plan(load_catalog(METADATA), load_catalog(metadata))


def columns(change: Callable[[list[dict[str, Any]]], None]) -> Callable[[dict[str, Any]], None]:
    """An edit of the lab_results table's column list."""
    return lambda feed: change(feed["tables"][0]["columns"])


def set_column(column_name: str, **values: Any) -> Callable[[list[dict[str, Any]]], None]:
    def change(found: list[dict[str, Any]]) -> None:
        column = next(c for c in found if c["name"] == column_name)
        for key, value in values.items():
            if value is None:
                column.pop(key, None)
            else:
                column[key] = value
    return change


def ids(plan: Plan) -> dict[str, str | None]:
    return {b.id: b.acknowledged for b in plan.breaking}


def test_no_change_plans_nothing(metadata_copy: Path) -> None:
    plan = plan_of(metadata_copy)
    assert (plan.changes, plan.breaking, plan.backfills, plan.teams) == ([], [], [], {})


def test_removed_column_is_breaking_and_names_its_readers(
    metadata_copy: Path, edit_yaml: EditFn
) -> None:
    edit_yaml(LABS, columns(lambda cols: cols.remove(next(c for c in cols if c["name"] == "unit"))))
    plan = plan_of(metadata_copy)
    [found] = plan.breaking
    assert found.id == "silver/lab_results:column_removed:unit"
    assert "gold/data_completeness read it" in found.message
    assert plan.blocking == [found]
    changed = {c.asset: c.reasons for c in plan.changes}
    assert changed["silver/lab_results"] == ("column unit removed",)
    assert set(changed) == {"silver/lab_results", "bronze/lab_results/lab_results"}


def test_a_rename_is_a_removal_with_a_hint(metadata_copy: Path, edit_yaml: EditFn) -> None:
    edit_yaml(LABS, columns(set_column("unit", name="units", source="unit")))
    [found] = plan_of(metadata_copy).breaking
    assert found.message.startswith("column unit removed (renamed to units?)")


@pytest.mark.parametrize(("old", "new", "breaks"), [
    ("double", "integer", True), ("double", "string", False)])
def test_narrowed_types_break_and_widened_do_not(
    metadata_copy: Path, edit_yaml: EditFn, old: str, new: str, breaks: bool
) -> None:
    edit_yaml(LABS, columns(set_column("value", type=new, checks=None)))
    plan = plan_of(metadata_copy)
    assert ("silver/lab_results:type_narrowed:value" in ids(plan)) is breaks
    assert [b.asset for b in plan.backfills if b.asset.startswith("silver/")] == \
        ["silver/lab_results"]


def test_keys_and_cdc_changes_break(metadata_copy: Path, edit_yaml: EditFn) -> None:
    def change(feed: dict[str, Any]) -> None:
        feed["tables"][0]["keys"] = ["result_id"]
        feed["tables"][0]["cdc"] = "scd2"
    edit_yaml(LABS, change)
    plan = plan_of(metadata_copy)
    assert set(ids(plan)) == {"silver/lab_results:keys_changed", "silver/lab_results:cdc_changed"}
    assert any(b.why == "its keys or CDC mode changed" for b in plan.backfills)


def test_a_phi_downgrade_is_always_reported_even_when_acknowledged(
    metadata_copy: Path, edit_yaml: EditFn
) -> None:
    def change(feed: dict[str, Any]) -> None:
        set_column("mrn", phi=None)(feed["tables"][0]["columns"])
        feed["acknowledge"] = [{"change": "silver/lab_results:phi_weakened:mrn",
                                "reason": "hashed upstream since March"}]
    edit_yaml(LABS, change)
    plan = plan_of(metadata_copy)
    [found] = plan.breaking
    assert found.phi and found.acknowledged == "hashed upstream since March"
    assert plan.blocking == []
    assert {b.asset: b.why for b in plan.backfills}["silver/lab_results"] == \
        "its masking changed"
    # The acknowledgement itself changes no asset's code version.
    assert "acknowledge changed" not in {r for c in plan.changes for r in c.reasons}


def test_a_projection_chain_reports_a_dropped_column_its_readers_use(
    metadata_copy: Path, tmp_path: Path
) -> None:
    projections = metadata_copy / "projections"
    (projections / "census_trend.yaml").write_text(
        "name: census_trend\nowners: [analytics]\nsql: census_trend.sql\n"
        "freshness: {warn_after: 2h, fail_after: 6h}\n")
    (projections / "census_trend.sql").write_text(
        "SELECT facility_code, AVG(occupancy) AS mean_occupancy FROM gold.daily_census "
        "GROUP BY facility_code\n")
    base = load_catalog(shutil.copytree(metadata_copy, tmp_path / "base"))
    sql = projections / "daily_census.sql"
    sql.write_text(sql.read_text().replace(",\n  ROUND(SUM(CASE WHEN c.status = 'occupied' "
                                           "THEN 1 ELSE 0 END) / COUNT(*), 4) AS occupancy", ""))
    census = projections / "daily_census.yaml"  # its rule on the column goes with it
    census.write_text(census.read_text().replace("    occupancy: {range: {min: 0, max: 1}}\n", ""))
    plan = build_plan(base, load_catalog(metadata_copy))
    assert ids(plan) == {"gold/daily_census:column_dropped:occupancy": None}
    assert {b.asset for b in plan.backfills} == {"gold/daily_census", "gold/census_trend"}
    assert plan.teams["analytics"]["downstream"] == ["gold/census_trend"]


def test_teams_owning_and_following_a_change_are_named(
    metadata_copy: Path, edit_yaml: EditFn
) -> None:
    edit_yaml(LABS, columns(set_column("test_name", description="Display name of the test")))
    teams = plan_of(metadata_copy).teams
    assert teams["lab-informatics"]["owns"] == ["bronze/lab_results/lab_results",
                                                "silver/lab_results"]
    assert "silver/lab_results" in teams["quality"]["subscribes to"]


def test_command_plans_against_a_git_ref_and_fails_on_unacknowledged(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(METADATA, repo / "metadata")
    git = ["git", "-C", str(repo), "-c", "user.email=ci@lake", "-c", "user.name=ci"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    labs = repo / "metadata" / LABS
    labs.write_text(labs.read_text().replace("      - {name: unit}\n", ""))
    command = [sys.executable, "-m", "lake_assets.cli", "plan", "--metadata",
               str(repo / "metadata"), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["blocking"] == 1
    assert report["breaking"][0]["id"] == "silver/lab_results:column_removed:unit"
    unknown = subprocess.run([*command, "--base", "no-such-ref"], capture_output=True,
                             text=True, check=False)
    assert unknown.returncode == 2 and "no-such-ref" in unknown.stderr
