"""Chaos in the suite: a small slice lands while a run worker, the Spark JVM and then the whole
Dagster daemon are SIGKILLed at random moments; the lakehouse settles by itself with every
archive committed exactly once or dead-lettered. `python -m benchmarks.chaos` is the full size.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.chaos import ChaosPlan, run_chaos
from tests.conftest import EditFn

pytestmark = [pytest.mark.spark, pytest.mark.slow]

FEEDS = ("lab_results", "adt_events")


def test_kills_of_a_run_worker_the_spark_jvm_and_the_daemon_leave_nothing_stuck(
    tmp_path: Path, metadata_copy: Path, edit_yaml: EditFn
) -> None:
    for feed in FEEDS:  # shorter waits than the shipped 30 s, so the test stays short
        edit_yaml(f"feeds/{feed}.yaml",
                  lambda data: data.update(retry={"max_attempts": 4, "backoff": "5s"}))
    plan = ChaosPlan(archives=16, kills=3, kinds=("run_worker", "spark_jvm", "daemon"),
                     in_order=True, waves=4, wave_seconds=15.0, feeds=FEEDS, faults=0.1,
                     seed=3, settle_timeout_s=480.0)
    result = run_chaos(tmp_path / "chaos", plan, metadata=metadata_copy)

    assert [k.kind for k in result.kills if k.pid is not None] == list(plan.kinds), result.kills
    assert result.settle_seconds is not None and result.stuck == 0, result
    assert result.committed + result.dead_lettered == result.landed > 0
    assert result.duplicated_rows == result.lost_rows == 0
    assert result.duplicate_manifest_rows == 0 and not result.unhealthy_tables
