"""Landing zone to bronze through a Spark Connect server, as under `make run`.

    SPARK_REMOTE=sc://127.0.0.1:PORT python tests/spark/connect_job.py <workdir> <report.json>

Runs in its own process: the test process holds a classic local session. Sensors tick on a
temporary instance and every run they request executes in process; its Spark resource connects
to the server named by SPARK_REMOTE. The report compares bronze with the simulator's truth,
counts one table again with Spark SQL over the lake (`run_sql`), and carries lab results on to
silver and gold in one more run.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from deltalake import DeltaTable

from benchmarks.pipeline import run_pipeline
from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.loader import load_catalog, metadata_root
from lake_assets.definitions import build_definitions
from lake_assets.simulate import SimulationOptions, read_truth, simulate
from lake_assets.storage.lake import Lake
from lake_assets.storage.sql import run_sql

DAY = "2026-11-20"


def main(workdir: str, report: str) -> None:
    root = Path(workdir)
    catalog = load_catalog(metadata_root())
    landing, truth = root / "landing", root / "truth.jsonl"
    simulate(catalog, SimulationOptions(
        out=str(landing), truth=str(truth), facilities=3, hours=1, rate=12, faults=0.0,
        seed=5, size_scale=0.02, start=datetime(2026, 11, 20, 6, tzinfo=UTC)))
    result = run_pipeline(catalog, lake=root / "lake", landing=landing)
    expected: Counter[str] = Counter()
    for record in read_truth(str(truth)):
        for table, rows in record.rows.items():
            expected[f"{record.feed}/{table}"] += rows
    found = {name: DeltaTable(str(root / "lake" / "bronze" / name)).to_pyarrow_dataset()
             .count_rows() for name in expected}
    feed, table = sorted(expected)[0].split("/")
    counted = run_sql(Lake(), catalog, f"SELECT COUNT(*) AS n FROM bronze.{feed}__{table}")
    Path(report).write_text(json.dumps({
        "runs": result.runs, "failed_runs": result.failed_runs, "archives": result.archives,
        "expected": dict(expected), "found": found,
        "sql": {"table": f"{feed}/{table}", "rows": counted.collect()[0].n},
        "downstream": _silver_and_gold(catalog, root / "lake"),
    }))


def _silver_and_gold(catalog: Catalog, lake: Path) -> dict:
    """Silver lab results and the gold projection over them, for the simulated day."""
    defs = build_definitions(catalog)
    keys = [dg.AssetKey(["silver", "lab_results"]), dg.AssetKey(["gold", "lab_turnaround"])]
    with dg.instance_for_test() as instance:
        done = dg.materialize([defs.get_assets_def(k) for k in keys], instance=instance,
                              resources=defs.resources, partition_key=DAY, selection=keys)
    return {"success": done.success, **{
        "/".join(k.path): DeltaTable(str(lake.joinpath(*k.path))).to_pyarrow_dataset().count_rows()
        for k in keys}}


if __name__ == "__main__":
    main(*sys.argv[1:])
