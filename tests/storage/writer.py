"""A run worker stand-in: materializes partitions of `visits` on the instance of $DAGSTER_HOME.

    python -m tests.storage.writer FIRST_DAY COUNT
"""

from __future__ import annotations

import datetime as dt
import sys

import dagster as dg

visits_partitions = dg.DailyPartitionsDefinition("2025-01-01")


@dg.asset(partitions_def=visits_partitions)
def visits(context) -> dg.MaterializeResult:  # unannotated: Dagster rejects a string hint
    """Writes the events a bronze run writes: logs, a materialization with metadata."""
    for i in range(5):
        context.log.info(f"step {i}")
    return dg.MaterializeResult(metadata={"rows": 10})


def main(first: str, count: int) -> None:
    start = dt.date.fromisoformat(first)
    with dg.DagsterInstance.get() as instance:
        for i in range(count):
            day = (start + dt.timedelta(days=i)).isoformat()
            assert dg.materialize([visits], instance=instance, partition_key=day).success


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
