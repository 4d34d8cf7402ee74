"""Landing zone to bronze, end to end: simulator, sensors on a real instance, runs, Delta tables.

Bronze rows per table must equal the simulator's ground truth, every faulty archive must be
quarantined with its reason, and re-running sensors, a day partition or a crashed batch must not
change a count.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.loader import load_catalog
from lake_assets.definitions import build_definitions
from lake_assets.simulate import SimulationOptions, read_truth, simulate
from lake_assets.storage.lake import Lake
from lake_assets.storage.manifest import Manifest
from tests.conftest import METADATA

pytestmark = [pytest.mark.spark, pytest.mark.slow]

START = datetime(2026, 11, 20, 6, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(METADATA)


def simulate_zone(catalog: Catalog, lake: Path) -> Path:
    truth = lake.parent / "truth.jsonl"
    options = SimulationOptions(
        out=str(lake / "landing"), truth=str(truth), facilities=10, hours=1, rate=40,
        faults=0.25, seed=11, size_scale=0.02, start=START,
    )
    simulate(catalog, options)
    return truth


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursors: dict[str, str | None]
         ) -> list[tuple[dg.AssetsDefinition, dg.RunRequest]]:
    """Evaluate every feed sensor once; returns the requested runs with their target asset."""
    requested = []
    for sensor in (s for s in defs.sensors if s.name.endswith("_arrivals")):
        context = dg.build_sensor_context(instance=instance, cursor=cursors.get(sensor.name))
        result = sensor(context)
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        cursors[sensor.name] = result.cursor
        target = next(a for a in defs.assets if sensor.name.startswith(a.op.name[len("bronze__"):]))
        requested += [(target, run) for run in result.run_requests or []]
    return requested


def execute(defs: dg.Definitions, instance: dg.DagsterInstance, asset: dg.AssetsDefinition,
            request: dg.RunRequest, *, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [asset], instance=instance, resources=defs.resources, partition_key=request.partition_key,
        run_config=request.run_config, tags=request.tags, raise_on_error=raise_on_error,
    )


def bronze_counts(catalog: Catalog, lake: Path, layer: str = "bronze") -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for feed in catalog.feeds:
        for table in feed.tables:
            path = lake / layer / feed.name / table.name
            if DeltaTable.is_deltatable(str(path)):
                counts[(feed.name, table.name)] = DeltaTable(str(path)).to_pyarrow_table().num_rows
    return counts


def expected_counts(truth: Path, key: str) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for record in read_truth(str(truth)):
        for table, rows in getattr(record, key).items():
            counts[(record.feed, table)] += rows
    return +counts


def test_landing_to_bronze_exactly_once(
    spark, catalog: Catalog, instance: dg.DagsterInstance, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake = tmp_path / "lake"
    truth = simulate_zone(catalog, lake)
    defs = build_definitions(catalog)
    cursors: dict[str, str | None] = {}

    runs = tick(defs, instance, cursors)
    assert {r.tags["lake/feed"] for _, r in runs} == {f.name for f in catalog.feeds}
    assert len({r.run_key for _, r in runs}) == len(runs)
    # A crash between the data commits and the manifest commit, on the first batch.
    first_asset, first_run = runs[0]
    with monkeypatch.context() as patch:
        patch.setattr(Manifest, "record", _crash)
        assert not execute(defs, instance, first_asset, first_run, raise_on_error=False).success
    for asset, request in runs:
        assert execute(defs, instance, asset, request).success

    expected = expected_counts(truth, "rows")
    assert +bronze_counts(catalog, lake) == expected
    assert +bronze_counts(catalog, lake, "quarantine") == expected_counts(truth, "bad_rows")
    assert_archives_match_truth(lake, truth)

    # Sensors again: nothing new to request.
    assert tick(defs, instance, cursors) == []
    # Replaying a finished batch and re-materializing a whole day change nothing.
    assert execute(defs, instance, first_asset, first_run).success
    day = next(r for _, r in runs if r.tags["lake/feed"] == "lab_results")
    lab_asset = next(a for a, r in runs if r is day)
    rerun = dg.RunRequest(partition_key=day.partition_key, run_config={})
    assert execute(defs, instance, lab_asset, rerun).success
    # The census runs cover ranges of facility partitions; re-run one range from scratch.
    census_asset, census = next((a, r) for a, r in runs if r.tags["lake/feed"] == "bed_census")
    span = {k: v for k, v in census.tags.items() if k.startswith("dagster/")}
    assert span, "ten facilities' census archives should form one range run"
    rerun = dg.RunRequest(partition_key=census.partition_key, run_config={}, tags=span)
    assert execute(defs, instance, census_asset, rerun).success
    assert +bronze_counts(catalog, lake) == expected
    assert_archives_match_truth(lake, truth)


def _crash(*args: object, **kwargs: object) -> None:
    raise RuntimeError("simulated crash between the data commit and the manifest commit")


def assert_archives_match_truth(lake: Path, truth: Path) -> None:
    rows = Lake(root=str(lake)).manifest().rows().to_pylist()
    manifest = {r["path"]: r for r in rows}
    records = read_truth(str(truth))
    assert len(manifest) == len(rows) == len(records)
    for record in records:
        entry = manifest[record.archive]
        if record.status == "good":
            assert entry["status"] == "loaded", (record.archive, entry["reason"])
        elif record.status == "resent":
            assert (entry["status"], entry["resent_of"]) == ("resent", record.resent_of)
        else:
            assert (entry["status"], entry["reason"]) == ("quarantined", record.reason)
            kept = lake / "quarantine" / "_archives" / record.feed / record.archive
            assert kept.is_file(), f"original bytes of {record.archive} not kept"
