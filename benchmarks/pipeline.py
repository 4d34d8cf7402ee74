"""Our pipeline as a user meets it: feed sensors tick on a real Dagster instance and every run
they request executes in process, on the warm local Spark session, until a tick finds nothing.

The clock runs from the first tick to the last manifest commit (`committed_at`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import yaml

from benchmarks import PROJECT_ROOT
from benchmarks.memory import MemoryPeaks, MemorySampler
from lake_assets.catalog.catalog import Catalog
from lake_assets.definitions import build_definitions
from lake_assets.resources import DeltaLake

# Runs still log every event to the instance; only the console copy is trimmed.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
ARRIVALS = "_arrivals"  # suffix of the feed sensors (factory/sensors.py)
Requested = list[tuple[dg.AssetsDefinition, dg.RunRequest]]


@dataclass
class PipelineResult:
    """Wall time, runs and what the manifest says was committed."""

    seconds: float = 0.0
    ticks: int = 0
    tick_seconds: float = 0.0
    runs: int = 0
    failed_runs: int = 0
    run_seconds: list[float] = field(default_factory=list)
    body_seconds: list[float] = field(default_factory=list)
    feed_runs: dict[str, list[float]] = field(default_factory=dict)
    archives: int = 0
    quarantined: int = 0
    rows: int = 0
    memory: MemoryPeaks = field(default_factory=MemoryPeaks)


def run_pipeline(catalog: Catalog, *, lake: Path, landing: Path) -> PipelineResult:
    """Tick every feed sensor and run what it asks until nothing is left; returns the timings.

    Sets LAKE_ROOT and LANDING_ROOT for the runs, as a deployment would.
    """
    os.environ["LAKE_ROOT"] = str(lake)
    os.environ["LANDING_ROOT"] = str(landing)
    defs = build_definitions(catalog)
    result = PipelineResult()
    cursors: dict[str, str | None] = {}
    # A fresh instance in a temporary home, stored as the project's dagster.yaml says.
    storage = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())["storage"]
    with (
        dg.instance_for_test(overrides={"storage": storage}) as instance,
        MemorySampler() as sampler,
    ):
        began = datetime.now(UTC)
        while True:
            ticked = time.monotonic()
            requested = _tick(defs, instance, cursors)
            result.ticks += 1
            result.tick_seconds += time.monotonic() - ticked
            if not requested:
                break
            for asset, request in requested:
                _execute(defs, instance, asset, request, result)
    result.memory = sampler.peaks
    _read_manifest(defs, began, result)
    return result


def _tick(
    defs: dg.Definitions, instance: dg.DagsterInstance, cursors: dict[str, str | None]
) -> Requested:
    """Evaluate every feed sensor once; returns the requested runs with their target asset."""
    assets = {a.op.name: a for a in defs.assets if isinstance(a, dg.AssetsDefinition)}
    requested: Requested = []
    for sensor in defs.sensors:
        if not sensor.name.endswith(ARRIVALS):
            continue  # alert sensors and the like request no bronze runs
        context = dg.build_sensor_context(instance=instance, cursor=cursors.get(sensor.name))
        outcome = sensor(context)
        for ask in outcome.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(ask.partitions_def_name, ask.partition_keys)
        cursors[sensor.name] = outcome.cursor
        target = assets[f"bronze__{sensor.name.removesuffix(ARRIVALS)}"]
        requested += [(target, run) for run in outcome.run_requests or []]
    return requested


def _execute(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    asset: dg.AssetsDefinition,
    request: dg.RunRequest,
    result: PipelineResult,
) -> None:
    started = time.monotonic()
    outcome = dg.materialize(
        [asset], instance=instance, resources=defs.resources,
        partition_key=request.partition_key, run_config={**request.run_config, **QUIET},
        tags=request.tags, raise_on_error=False,
    )
    seconds = time.monotonic() - started
    result.run_seconds.append(seconds)
    result.feed_runs.setdefault(request.tags["lake/feed"], []).append(seconds)
    result.runs += 1
    if not outcome.success:
        result.failed_runs += 1
        return
    events = outcome.get_asset_materialization_events()
    if events:
        metadata = events[0].materialization.metadata
        result.body_seconds.append(float(metadata["duration_s"].value))


def _read_manifest(defs: dg.Definitions, began: datetime, result: PipelineResult) -> None:
    lake = defs.resources["lake"]
    assert isinstance(lake, DeltaLake)
    rows = lake.open().manifest().rows()
    if rows.num_rows == 0:
        return
    last = pc.max(rows.column("committed_at")).as_py()
    result.seconds = (last - began).total_seconds()
    result.archives = rows.num_rows
    result.quarantined = int(pc.sum(pc.not_equal(rows.column("status"), "loaded")).as_py() or 0)
    result.rows = int(pc.sum(rows.column("rows")).as_py() or 0)
