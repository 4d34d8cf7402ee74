"""The `lake_run_health` sensor: runs whose process died are marked failed within seconds.

Dagster's run monitoring fails runs stuck starting (`start_timeout_seconds`) or running past
their `dagster/max_runtime_seconds`, but the default run launcher cannot tell whether a run's
process is alive, so a run whose worker was killed, or that a daemon or `dagster dev` restart
left behind, stays STARTED forever, holding its feed's slot. Its worker logged its pid when it
started ("Started process for run"); the launcher runs it on this host, where sensors are
evaluated, so the pid is checked here. A launcher that checks its workers itself (Docker, K8s)
is left to Dagster.
"""

from __future__ import annotations

import dagster as dg
import psutil

SENSOR_NAME = "lake_run_health"
INTERVAL_SECONDS = 15
CHECKED = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
# A process created this long after its run's pid event is a new process with a reused pid.
_CLOCK_SLACK_S = 2.0
_EVENTS_SCANNED = 50


def build_run_health_sensor() -> dg.SensorDefinition:
    """The sensor failing runs whose process is gone (on by default)."""

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Marks runs failed whose process died (a killed worker, a daemon restart), "
                    "so their slots free and their batches are retried.",
    )
    def lake_run_health(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        failed = fail_dead_runs(context.instance)
        for run_id, note in failed:
            context.log.warning(f"run {run_id}: {note}")
        return dg.SkipReason(f"{len(failed)} dead runs marked failed")

    return lake_run_health


def fail_dead_runs(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    """Mark failed every starting or running run whose worker process is gone, and free the
    concurrency slots it held; returns (run id, note) for each."""
    if instance.run_launcher.supports_check_run_worker_health:
        return []  # Dagster's run monitoring asks that launcher itself
    failed = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=CHECKED)):
        run = record.dagster_run
        worker = worker_process(instance, run.run_id)
        if worker is None or is_alive(*worker):
            continue
        # The worker may have ended the run cleanly just before exiting: read it again.
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status not in CHECKED:
            continue
        note = f"the run's process (pid {worker[0]}) is gone; marked failed so it can be retried"
        instance.report_run_failed(current, message=note)
        # A dead process releases nothing; Dagster's monitoring would free these a minute or
        # more later (`free_slots_after_run_end_seconds` plus its poll interval).
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        failed.append((run.run_id, note))
    return failed


def worker_process(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid a run's worker logged when it started, and when it logged it (epoch s)."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=_EVENTS_SCANNED).records
    for record in records:
        event = record.event_log_entry.dagster_event
        data = event.engine_event_data if event is not None else None
        pid = data.metadata.get("pid") if data is not None else None
        if pid is not None:
            return int(getattr(pid, "value", pid)), record.event_log_entry.timestamp
    return None


def is_alive(pid: int, logged_at: float) -> bool:
    """Whether process `pid`, which existed at `logged_at`, is still running."""
    try:
        process = psutil.Process(pid)
        if process.create_time() > logged_at + _CLOCK_SLACK_S:
            return False  # the pid was reused by a later process
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
