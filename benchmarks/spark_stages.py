"""Where Spark spent a phase: completed stages from the session's monitoring REST API.

`StageMark` remembers the last stage id before a phase; `stage_summary` then sums the phase's
stages: wall time, executor run and CPU time, tasks, and the call sites that took longest.
"""

from __future__ import annotations

import json
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import SparkSession

UI_CONF = {"spark.ui.retainedStages": "100000", "spark.ui.retainedJobs": "100000",
           "spark.ui.retainedTasks": "100000", "spark.ui.showConsoleProgress": "false"}


@dataclass(frozen=True)
class StageMark:
    """The highest stage id seen when a phase began."""

    last_stage: int


def mark(spark: SparkSession) -> StageMark:
    """A mark before a phase."""
    return StageMark(max((s["stageId"] for s in _stages(spark)), default=-1))


def stage_summary(spark: SparkSession, since: StageMark, *, top: int = 5) -> dict[str, object]:
    """Sums over the stages completed after `since`; empty when the UI is off."""
    stages = [s for s in _stages(spark) if s["stageId"] > since.last_stage]
    by_site: dict[str, float] = defaultdict(float)
    wall = 0.0
    for stage in stages:
        seconds = _wall(stage)
        wall += seconds
        by_site[_site(stage["name"])] += seconds
    longest = sorted(by_site.items(), key=lambda item: -item[1])[:top]
    return {
        "stages": len(stages),
        "tasks": sum(s.get("numCompleteTasks", 0) for s in stages),
        "stage_wall_s": round(wall, 1),
        "executor_run_s": round(sum(s.get("executorRunTime", 0) for s in stages) / 1e3, 1),
        "executor_cpu_s": round(sum(s.get("executorCpuTime", 0) for s in stages) / 1e9, 1),
        "deserialize_s": round(sum(s.get("executorDeserializeTime", 0) for s in stages) / 1e3, 1),
        "gc_s": round(sum(s.get("jvmGcTime", 0) for s in stages) / 1e3, 1),
        "longest_call_sites": {site: round(seconds, 1) for site, seconds in longest},
    }


def _stages(spark: SparkSession) -> list[dict]:
    context = spark.sparkContext
    if not context.uiWebUrl:
        return []
    url = f"{context.uiWebUrl}/api/v1/applications/{context.applicationId}/stages?status=complete"
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.load(response)


def _wall(stage: dict) -> float:
    if "submissionTime" not in stage or "completionTime" not in stage:
        return 0.0
    return (_time(stage["completionTime"]) - _time(stage["submissionTime"])).total_seconds()


def _time(text: str) -> datetime:
    return datetime.strptime(text.replace("GMT", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")


def _site(name: str) -> str:
    """`collect at /work/main/resources/delta/commit.py:88` as `collect at commit.py:88`."""
    action, _, where = name.partition(" at ")
    return f"{action} at {where.rsplit('/', 1)[-1]}" if where else action
