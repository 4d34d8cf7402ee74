"""Landing zone to gold, end to end: simulator, feed sensors, bronze runs, then silver and gold
requested by declarative automation alone. A gold number must match the simulator's ground
truth, and no raw value of a PHI-tagged column may reach any silver or gold table.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.loader import load_catalog
from lake_assets.definitions import build_definitions
from lake_assets.ingest.cdc import silver_schema
from lake_assets.ingest.mask import AGE_CAP
from lake_assets.simulate import SimulationOptions, read_truth, simulate
from lake_assets.storage.delta import arrow_schema, arrow_to_spark
from tests.conftest import DEV_SECRETS, METADATA, project_instance

pytestmark = [pytest.mark.spark, pytest.mark.slow]

START = datetime(2026, 11, 20, 6, tzinfo=UTC)
TOKEN = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True)
class Landed:
    """What one pipeline run left behind: the lake, the truth file and the automation log."""

    catalog: Catalog
    lake: Path
    raw: Path
    truth: Path
    requested: list[tuple[str, str | None]]
    # Each asset's last materialization: its row count and schema version as the UI shows them.
    shown: dict[str, dict[str, object]]
    census_rules: dict[str, object]


@pytest.fixture(scope="module")
def landed(spark, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Landed]:
    """Simulate a small landing zone and run it through bronze, silver and gold once.

    Module-scoped, so it sets up its own environment: the autouse one is per test.
    """
    root = tmp_path_factory.mktemp("e2e")
    with pytest.MonkeyPatch.context() as patch, project_instance() as instance:
        patch.setenv("LAKE_ROOT", str(root / "lake"))
        patch.setenv("LAKE_BRONZE_ROOT", str(root / "raw"))  # raw PHI kept apart
        patch.setenv("LAKE_SECRETS_FILE", str(DEV_SECRETS))
        patch.delenv("LANDING_ROOT", raising=False)
        catalog = load_catalog(METADATA)
        truth = root / "truth.jsonl"
        simulate(catalog, SimulationOptions(
            out=str(root / "lake" / "landing"), truth=str(truth), facilities=3, hours=1,
            rate=16, faults=0.1, seed=5, size_scale=0.02, start=START,
        ))
        defs = build_definitions(catalog)
        automation = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert automation.total_requested == 0  # nothing landed yet
        for asset, request in tick_feed_sensors(defs, instance):
            run(defs, instance, [asset], request.partition_key, request.run_config, request.tags)
        # One tick requests silver and the gold built from it together; one run per day.
        automation = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=automation.cursor)
        requested = materialize_requested(defs, instance, automation)
        automation = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=automation.cursor)
        assert automation.total_requested == 0  # nothing new since
        rules = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey(["gold", "daily_census"]), "rules")])
        evaluation = next(iter(rules.values())).evaluation
        yield Landed(catalog, root / "lake", root / "raw", truth, requested,
                     _shown(instance, defs),
                     {"passed": evaluation.passed,
                      "failing_rows": evaluation.metadata["failing_rows"].value})


def _shown(instance: dg.DagsterInstance, defs: dg.Definitions) -> dict[str, dict[str, object]]:
    shown = {}
    for key in (k for a in defs.assets for k in a.keys):
        event = instance.get_latest_materialization_event(key)
        if event is not None and event.asset_materialization is not None:
            shown[key.to_user_string()] = {
                name: value.value for name, value in event.asset_materialization.metadata.items()
                if name in ("dagster/row_count", "batch_rows", "table_rows", "schema_version")}
    return shown


def tick_feed_sensors(defs: dg.Definitions, instance: dg.DagsterInstance
                      ) -> list[tuple[dg.AssetsDefinition, dg.RunRequest]]:
    """Evaluate each feed's arrival sensor once; returns its runs with their bronze asset."""
    requested = []
    for sensor in (s for s in defs.sensors if s.name.endswith("_arrivals")):
        result = sensor(dg.build_sensor_context(instance=instance))
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        feed = sensor.name.removesuffix("_arrivals")
        asset = next(a for a in defs.assets if a.op.name == f"bronze__{feed}")
        requested += [(asset, r) for r in result.run_requests or []]
    return requested


def materialize_requested(defs: dg.Definitions, instance: dg.DagsterInstance,
                          automation: object) -> list[tuple[str, str | None]]:
    """Run what an automation tick requested, one run per partition, as the daemon would."""
    by_partition: dict[str | None, list[dg.AssetsDefinition]] = {}
    for asset in defs.assets:
        for partition in {p for k in asset.keys for p in automation.get_requested_partitions(k)}:
            by_partition.setdefault(partition, []).append(asset)
    for partition, assets in by_partition.items():
        run(defs, instance, assets, partition)
    return [(a.key.to_user_string(), p) for p, assets in by_partition.items() for a in assets]


def run(defs: dg.Definitions, instance: dg.DagsterInstance, assets: list, partition: object,
        run_config: dict | None = None, tags: dict | None = None) -> None:
    result = dg.materialize(assets, instance=instance, resources=defs.resources,
                            partition_key=partition, run_config=run_config or {}, tags=tags)
    assert result.success


def table(lake: Path, *path: str) -> list[dict]:
    location = str(lake.joinpath(*path))
    assert DeltaTable.is_deltatable(location), f"{'/'.join(path)} was not written"
    return DeltaTable(location).to_pyarrow_table().to_pylist()


def test_automation_carries_arrivals_to_gold(landed: Landed) -> None:
    silver = {key for key, _ in landed.requested if key.startswith("silver/")}
    gold = {key for key, _ in landed.requested if key.startswith("gold/")}
    assert silver == {f"silver/{t.name}" for f in landed.catalog.feeds for t in f.tables}
    assert gold == {f"gold/{p.name}" for p in landed.catalog.projections}
    assert {p for _, p in landed.requested} == {"2026-11-20"}
    empty = [p.name for p in landed.catalog.projections
             if not table(landed.lake, "gold", p.name)]
    assert empty == []


def test_the_ui_shows_each_table_s_rows_and_schema_version(landed: Landed) -> None:
    """The row count is the table's (silver, unpartitioned gold) or the partition's (bronze,
    daily gold), never only the last batch's; each table is at its first schema."""
    for name, shown in landed.shown.items():
        layer, *path = name.split("/")
        rows = len(table(landed.raw if layer == "bronze" else landed.lake, layer, *path))
        assert shown["schema_version"] == 1, name
        assert shown["table_rows"] == rows, name
        if layer == "silver":
            assert shown["dagster/row_count"] == rows, name
        elif layer == "bronze":  # one day landed, so the day's rows are the table's
            assert shown["dagster/row_count"] == rows and shown["batch_rows"] <= rows, name
    assert {n.split("/")[0] for n in landed.shown} == {"bronze", "silver", "gold"}


def test_projection_checks_run_on_what_gold_wrote(landed: Landed) -> None:
    """daily_census declares rules in its YAML: one `rules` check judged each written day."""
    assert landed.census_rules == {"passed": True, "failing_rows": 0}


def test_silver_tables_have_the_schema_gold_assumes_before_they_exist(landed: Landed) -> None:
    for name in _silver_names(landed.catalog):
        declared = next(t for f in landed.catalog.feeds for t in f.tables if t.name == name)
        written = arrow_to_spark(arrow_schema(DeltaTable(str(landed.lake / "silver" / name))))
        expected = silver_schema(declared)
        assert [(f.name, f.dataType) for f in written] == [
            (f.name, f.dataType) for f in expected], name


def test_adt_volume_per_facility_matches_ground_truth(landed: Landed) -> None:
    expected: Counter[str] = Counter()
    for record in read_truth(str(landed.truth)):
        if record.feed == "adt_events" and record.resent_of is None:
            expected[record.facility] += record.rows.get("adt_messages", 0)
    gold: Counter[str] = Counter()
    for row in table(landed.lake, "gold", "adt_daily_volume"):
        gold[row["facility_code"]] += row["messages"]
    assert +expected, "the simulation sent no ADT messages"
    assert gold == +expected


def test_no_raw_phi_value_reaches_silver_or_gold(landed: Landed) -> None:
    raw: dict[str, str] = {}  # raw value -> where it came from
    for feed in landed.catalog.feeds:
        for declared in feed.tables:
            rows = table(landed.raw, "bronze", feed.name, declared.name)
            # Ages under the cap are kept by design; older ones are checked below.
            for column in (c for c in declared.columns if c.phi and c.phi != "age"):
                values = {row[column.name] for row in rows} - {None}
                raw |= {str(v): f"bronze {feed.name}.{declared.name}.{column.name}"
                        for v in values}
    assert len(raw) > 100, "too few PHI values to make the test meaningful"
    assert not (landed.lake / "bronze").exists() and not (landed.lake / "quarantine").exists()
    scanned = 0
    for layer, names in (("silver", _silver_names(landed.catalog)),
                         ("gold", [p.name for p in landed.catalog.projections])):
        for name in names:
            for row in table(landed.lake, layer, name):
                for column, value in row.items():
                    assert _leak(value, raw) is None, (
                        f"{layer}.{name}.{column} holds a raw value of {_leak(value, raw)}")
                    scanned += 1
    assert scanned > 1000
    ages = [r["age"] for r in table(landed.lake, "silver", "encounters")]
    assert max(a for a in ages if a is not None) <= AGE_CAP


def _leak(value: object, raw: dict[str, str]) -> str | None:
    """Where `value` came from if it is a raw PHI value; text is also searched word by word."""
    text = str(value)
    if text in raw:
        return raw[text]
    if isinstance(value, str):
        return next((raw[t] for t in TOKEN.findall(text) if t in raw), None)
    return None


def _silver_names(catalog: Catalog) -> list[str]:
    return sorted({t.name for f in catalog.feeds for t in f.tables})
