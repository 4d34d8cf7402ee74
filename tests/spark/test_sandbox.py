"""`lakehouse sandbox`: a gold projection materialized in a sandbox against production silver
pinned at a version writes only under the sandbox's prefix; production's versions stay as
they were, and `sandbox rm` removes what the sandbox wrote."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from typer.testing import CliRunner

from lake_assets.catalog.loader import load_catalog
from lake_assets.cli import app
from lake_assets.factory.gold import gold_specs, refresh_projection
from lake_assets.storage.lake import Lake
from lake_assets.storage.sandbox import load_sandbox
from tests.conftest import METADATA

pytestmark = pytest.mark.spark

DAY = "2026-11-20"
SCHEMA = "facility_code string, event_time timestamp, event_type string"


def events(spark: SparkSession, count: int, kind: str) -> DataFrame:
    moment = dt.datetime(2026, 11, 20, 9, 0)
    return spark.createDataFrame([("FAC00001", moment, kind)] * count, SCHEMA)


def tree(root: Path) -> dict[str, int]:
    """Every file under `root` with its size: what a write would change."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def prod(spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lake:
    """Production: silver.adt_messages at versions 0 and 1, gold.adt_daily_volume from it."""
    monkeypatch.setenv("LAKE_SANDBOXES", str(tmp_path / "boxes"))
    lake = Lake(root=str(tmp_path / "prod"), session_factory=lambda: spark)
    lake.write(events(spark, 3, "A01"), table="silver/adt_messages")
    lake.write(events(spark, 2, "A03"), table="silver/adt_messages")
    catalog = load_catalog(METADATA)
    spec = next(s for s in gold_specs(catalog) if s.projection.name == "adt_daily_volume")
    refresh_projection(lake, catalog, spec, day=DAY)
    return lake


def test_a_projection_in_a_sandbox_reads_pinned_prod_and_writes_only_its_own(
        prod: Lake, spark: SparkSession, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    made = runner.invoke(app, ["sandbox", "create", "try-census", "--read-prod", "--at", "0",
                               "--prod-root", prod.root or ""])
    assert made.exit_code == 0, made.output
    assert "silver/adt_messages@0" in made.output and "sandbox run try-census" in made.output
    box = load_sandbox("try-census", folder=Path(os.environ["LAKE_SANDBOXES"]))
    prod_root = Path(prod.root or "")
    before = tree(prod_root)
    versions = (prod.version("silver/adt_messages"), prod.version("gold/adt_daily_volume"))

    for key, value in box.environment(os.environ).items():
        monkeypatch.setenv(key, value)
    sandbox = Lake(session_factory=lambda: spark)
    catalog = load_catalog(Path(box.metadata))
    spec = next(s for s in gold_specs(catalog) if s.projection.name == "adt_daily_volume")
    refresh_projection(sandbox, catalog, spec, day=DAY)

    assert tree(prod_root) == before
    assert (prod.version("silver/adt_messages"), prod.version("gold/adt_daily_volume")) == versions
    own = Path(box.lake_root) / "gold" / "adt_daily_volume"
    assert (own / "_delta_log").is_dir() and not (Path(box.lake_root) / "silver").exists()
    rows = {(r.event_type, r.messages) for r in sandbox.read("gold/adt_daily_volume").collect()}
    assert rows == {("A01", 3)}  # silver at version 0: the A03 rows came later
    prod_rows = {(r.event_type, r.messages) for r in prod.read("gold/adt_daily_volume").collect()}
    assert prod_rows == {("A01", 3), ("A03", 2)}

    listed = runner.invoke(app, ["sandbox", "list"])
    assert "try-census" in listed.output and str(box.ports["ui"]) in listed.output
    removed = runner.invoke(app, ["sandbox", "rm", "try-census"])
    assert removed.exit_code == 0, removed.output
    assert not Path(box.lake_root).exists() and not Path(box.folder).exists()
    assert tree(prod_root) == before


def test_sandboxes_get_their_own_ports_and_names_are_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKE_SANDBOXES", str(tmp_path / "boxes"))
    runner = CliRunner()
    for name in ("one", "two"):
        assert runner.invoke(app, ["sandbox", "create", name]).exit_code == 0
    folder = tmp_path / "boxes"
    one, two = load_sandbox("one", folder=folder), load_sandbox("two", folder=folder)
    assert set(one.ports.values()).isdisjoint(two.ports.values())
    assert one.lake_root != two.lake_root and one.dagster_home != two.dagster_home
    assert (Path(one.dagster_home) / "dagster.yaml").is_file()
    env = runner.invoke(app, ["sandbox", "env", "one"]).output
    assert f"export LAKE_ROOT={one.lake_root}" in env and "unset DAGSTER_PG_URL" in env
    again = runner.invoke(app, ["sandbox", "create", "one"])
    assert again.exit_code == 1 and "exists" in again.output
    bad = runner.invoke(app, ["sandbox", "create", "../escape"])
    assert bad.exit_code == 1 and "sandbox name" in bad.output
    overlap = runner.invoke(app, ["sandbox", "create", "three", "--read-prod", "--prod-root",
                                  str(tmp_path / "prod"), "--lake-root", str(tmp_path / "prod")])
    assert overlap.exit_code == 1 and "overlaps" in overlap.output
