"""A bronze run on a standalone cluster, as its own driver process, for the worker-loss test.

    python tests/spark/cluster_bronze_job.py <work dir> <report.json>

SPARK_MASTER names the cluster and LAKE_ROOT the lake. The script lands lab result archives,
asks the feed's sensor for a run and executes it. A thread watches the run's Spark stages: it
writes `<work dir>/tasks_running` once two tasks run at once (the test then kills a worker) and
keeps the most failed tasks seen. The report holds the outcome, the failed tasks, the executors
lost and the rows in bronze against the simulator's truth.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from deltalake import DeltaTable
from pyspark import SparkContext

from lake_assets.catalog.loader import load_catalog, metadata_root
from lake_assets.definitions import build_definitions
from lake_assets.simulate import SimulationOptions, read_truth, simulate
from lake_assets.storage.lake import Lake

FEED = "lab_results"


class StageWatch(threading.Thread):
    """Marks the moment two tasks run at once; remembers the most failed tasks of a stage."""

    def __init__(self, marker: Path) -> None:
        super().__init__(daemon=True)
        self.marker, self.failed_tasks, self.done = marker, 0, False

    def run(self) -> None:
        while not self.done:
            context = SparkContext._active_spark_context
            if context is not None and getattr(context, "_jsc", None) is not None:
                self._look(context)
            time.sleep(0.2)

    def _look(self, context: SparkContext) -> None:
        tracker = context.statusTracker()
        for stage in tracker.getActiveStageIds():
            info = tracker.getStageInfo(stage)
            if info is None:
                continue
            self.failed_tasks = max(self.failed_tasks, info.numFailedTasks)
            if info.numActiveTasks >= 2 and not self.marker.exists():
                self.marker.write_text(str(time.time()))


def lost_executors() -> int:
    """Executors that were removed from the application (their worker died)."""
    context = SparkContext._active_spark_context
    url = f"{context.uiWebUrl}/api/v1/applications/{context.applicationId}/allexecutors"
    with urllib.request.urlopen(url, timeout=10) as response:
        executors = json.load(response)
    return sum(1 for e in executors if e["id"] != "driver" and not e["isActive"])


def main(work: Path, report: Path) -> None:
    catalog = load_catalog(metadata_root())
    lake = Lake()
    truth = work / "truth.jsonl"
    simulate(catalog, SimulationOptions(
        out=f"{os.environ['LAKE_ROOT']}/landing", truth=str(truth), facilities=6, hours=1,
        rate=48, faults=0, resend_rate=0.0, seed=9, size_scale=0.3, feeds=(FEED,),
        start=datetime(2026, 11, 20, 6, tzinfo=UTC)))
    defs = build_definitions(catalog)
    sensor = next(s for s in defs.sensors if s.name == f"{FEED}_arrivals")
    bronze = next(a for a in defs.assets if a.op.name == f"bronze__{FEED}")
    watch = StageWatch(work / "tasks_running")
    watch.start()
    with dg.instance_for_test() as instance:
        [request] = sensor(dg.build_sensor_context(instance=instance)).run_requests
        result = dg.materialize([bronze], instance=instance, resources=defs.resources,
                                partition_key=request.partition_key,
                                run_config=request.run_config, tags=request.tags,
                                raise_on_error=False)
    watch.done = True
    table = DeltaTable(f"{lake.ref(['bronze', FEED, FEED]).uri}")
    sources = table.to_pyarrow_table(columns=["_source_archive"]).column(0).to_pylist()
    expected = {r.archive: r.rows.get(FEED, 0) for r in read_truth(str(truth))}
    report.write_text(json.dumps({
        "success": result.success,
        "failed_tasks": watch.failed_tasks,
        "lost_executors": lost_executors(),
        "rows_by_archive": {a: sources.count(a) for a in sorted(set(sources))},
        "expected_by_archive": {a: n for a, n in sorted(expected.items()) if n},
        "manifest": sorted(set(lake.manifest().rows(FEED).column("status").to_pylist())),
    }))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
