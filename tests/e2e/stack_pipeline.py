"""Landing zone to gold on the stack: S3 (moto), the Spark cluster through Connect, Dagster on
PostgreSQL; the settings come from the environment (`lakehouse stack env` plus the test's own
prefixes and database).

    python -m tests.e2e.stack_pipeline <workdir>

Runs in its own process because a Spark Connect client marks the whole process as one, and the
test process holds classic local sessions. Simulates into $LANDING_ROOT (truth in
`<workdir>/truth.jsonl`), ticks the feed sensors and runs what they request, then silver and
gold as one automation tick requests them, then the `lake_alerts` sensor once (the simulated
faults fail a silver reference check, so owners hear of it). Phases and times go to stderr.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import dagster as dg

from lake_assets.catalog.loader import load_catalog
from lake_assets.definitions import build_definitions
from lake_assets.simulate import SimulationOptions, simulate
from tests.conftest import METADATA
from tests.e2e.test_silver_gold_e2e import START, materialize_requested, run, tick_feed_sensors


def main(workdir: str) -> None:
    root = Path(workdir)
    began = time.monotonic()

    def phase(name: str) -> None:
        print(f"stack pipeline: {name} at {time.monotonic() - began:.0f} s", file=sys.stderr,
              flush=True)

    catalog = load_catalog(METADATA)
    simulate(catalog, SimulationOptions(
        out=os.environ["LANDING_ROOT"], truth=str(root / "truth.jsonl"), facilities=2, hours=1,
        rate=12, faults=0.1, seed=11, size_scale=0.02, start=START,
    ))
    phase("simulated")
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        defs = build_definitions(catalog)
        automation = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        for asset, request in tick_feed_sensors(defs, instance):
            run(defs, instance, [asset], request.partition_key, request.run_config, request.tags)
            phase(f"bronze {asset.op.name}")
        automation = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=automation.cursor)
        materialize_requested(defs, instance, automation)
        phase("silver and gold")
        alerts = next(s for s in defs.sensors if s.name == "lake_alerts")
        with dg.build_sensor_context(instance=instance, resources=defs.resources,
                                     definitions=defs) as context:
            alerts(context)
        phase("alerts")


if __name__ == "__main__":
    main(sys.argv[1])
    # The Connect client's threads would keep the interpreter waiting on a server that the
    # test stops next; everything this process wrote is committed by now.
    sys.stdout.flush()
    os._exit(0)
