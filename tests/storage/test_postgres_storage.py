"""The instance on PostgreSQL (dagster-postgres) whenever DAGSTER_PG_URL is set, from the same
dagster.yaml as SQLite; and several processes sharing one instance storage, as a webserver,
a daemon and run workers do."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster_postgres import PostgresRunStorage

from lake_assets.errors import InstanceStorageError
from lake_assets.instance_storage import PooledSqliteRunStorage
from tests.conftest import PROJECT_ROOT
from tests.storage.conftest import write_settings
from tests.storage.writer import visits


@dg.asset(deps=[visits])
def visit_summary() -> None:
    """Downstream of visits: what the sensor below asks for."""


@dg.sensor(target=[visit_summary])
def visits_landed(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Requests a summary for every visits materialization newer than its cursor."""
    after = int(context.cursor or 0)
    records = context.instance.fetch_materializations(visits.key, limit=100, cursor=None)
    new = [r for r in records.records if r.storage_id > after]
    if not new:
        return dg.SensorResult(skip_reason="nothing new")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=str(r.storage_id), tags={"visits": r.partition_key})
                      for r in new],
        cursor=str(max(r.storage_id for r in new)))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    write_settings(tmp_path)
    return tmp_path


def test_postgres_holds_runs_events_and_sensor_ticks(
    home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_PG_URL", postgres_url)
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert dg.materialize([visits], instance=instance, partition_key="2025-01-20").success
        result = visits_landed(dg.build_sensor_context(instance=instance))
        [request] = result.run_requests
        assert request.tags == {"visits": "2025-01-20"}
        run = dg.materialize([visits, visit_summary], selection=[visit_summary],
                             instance=instance, tags=request.tags)
        assert run.success
    assert not (home / "history").exists() and not (home / "schedules").exists()  # no SQLite
    with dg.DagsterInstance.get() as again:  # another process's view: all of it in Postgres
        assert again.get_materialized_partitions(visits.key) == {"2025-01-20"}
        assert again.get_run_by_id(run.run_id).tags["visits"] == "2025-01-20"
        ref = again.get_ref()
        assert postgres_url not in repr(ref)  # run workers get the variable, not the URL


def test_without_the_variable_the_instance_stays_on_sqlite(home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PooledSqliteRunStorage)


def test_a_url_without_the_psycopg2_driver_is_refused(
    home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_PG_URL", postgres_url.replace("+psycopg2", ""))
    with pytest.raises(InstanceStorageError, match="DAGSTER_PG_URL must name the psycopg2"):
        dg.DagsterInstance.get()


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["project_sqlite", "postgres"])
def test_two_writer_processes_and_a_reader_lose_nothing(
    home: Path, storage: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two run-worker processes write runs and events while this process reads, as the
    webserver does: every run and partition arrives, and SQLite never reports a lock."""
    if storage == "postgres":
        monkeypatch.setenv("DAGSTER_PG_URL", request.getfixturevalue("postgres_url"))
    count = 8
    writers = [subprocess.Popen([sys.executable, "-m", "tests.storage.writer", first,
                                 str(count)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
               for first in ("2025-01-01", "2025-02-01")]
    seen: set[str] = set()
    with dg.DagsterInstance.get() as reader:
        while any(w.poll() is None for w in writers):
            seen = reader.get_materialized_partitions(visits.key)
            reader.get_runs(limit=20)
            time.sleep(0.05)
        outputs = [w.communicate()[0] for w in writers]
        assert [w.returncode for w in writers] == [0, 0], outputs
        assert not any("database is locked" in o for o in outputs)
        runs = reader.get_runs()
        assert len(runs) == 2 * count and all(r.is_success for r in runs)
        days = reader.get_materialized_partitions(visits.key)
        assert len(days) == 2 * count and seen <= days
        events = reader.all_logs(runs[0].run_id)
        assert sum(e.dagster_event is None for e in events) >= 5  # the run's log lines
