"""The instance storage dagster.yaml names: Dagster's SQLite files, with connections kept open."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from lake_assets.instance_storage import (
    DAGSTER_PROCESS_ENV,
    PooledSqliteEventLogStorage,
    PooledSqliteRunStorage,
)
from tests.conftest import PROJECT_ROOT

STOCK = {"sqlite": {"base_dir": {"env": "DAGSTER_HOME"}}}


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))


@dg.asset(partitions_def=dg.DailyPartitionsDefinition("2025-01-01"))
def visits() -> None:
    """A partitioned asset whose runs write the events a bronze run writes."""


def _instance(home: Path, storage: dict | None = None) -> dg.DagsterInstance:
    """The instance of `home` with the project's dagster.yaml, or with its `storage` replaced."""
    settings = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    settings["storage"] = storage or settings["storage"]
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    return dg.DagsterInstance.from_config(str(home))


def _materialize(instance: dg.DagsterInstance, day: str) -> str:
    result = dg.materialize([visits], instance=instance, partition_key=day)
    assert result.success
    return result.run_id


def _materialized_days(instance: dg.DagsterInstance) -> set[str]:
    return instance.get_materialized_partitions(visits.key)


def test_the_project_instance_stores_runs_and_events_in_pooled_sqlite(tmp_path: Path) -> None:
    instance = _instance(tmp_path)
    assert isinstance(instance.run_storage, PooledSqliteRunStorage)
    assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
    run_id = _materialize(instance, "2025-01-20")
    assert instance.get_run_by_id(run_id).is_success
    assert _materialized_days(instance) == {"2025-01-20"}
    assert (tmp_path / "history" / "runs" / f"{run_id}.db").exists()  # Dagster's own layout
    instance.dispose()


def test_a_home_opens_with_either_storage(tmp_path: Path) -> None:
    """Switching between Dagster's storage and ours loses nothing, in either direction."""
    stock = _instance(tmp_path, STOCK)
    first = _materialize(stock, "2025-01-19")
    stock.dispose()
    ours = _instance(tmp_path)
    assert ours.get_run_by_id(first).is_success
    second = _materialize(ours, "2025-01-20")
    ours.dispose()
    stock = _instance(tmp_path, STOCK)
    assert stock.get_run_by_id(second).is_success
    assert _materialized_days(stock) == {"2025-01-19", "2025-01-20"}
    stock.dispose()


def test_an_open_instance_sees_what_another_writes(tmp_path: Path) -> None:
    """As a webserver and a run worker do: each keeps its connections, neither reads stale data."""
    reader = _instance(tmp_path)
    assert _materialized_days(reader) == set()
    writer = _instance(tmp_path)
    run_id = _materialize(writer, "2025-01-20")
    assert _materialized_days(reader) == {"2025-01-20"}
    assert [e.dagster_event_type for e in reader.all_logs(run_id)][-1] == (
        dg.DagsterEventType.RUN_SUCCESS
    )
    writer.dispose()
    reader.dispose()


@pytest.mark.parametrize("runs", [1, 20])
def test_wipe_drops_runs_behind_open_connections(tmp_path: Path, runs: int) -> None:
    """More runs than engines kept open (16) closes the oldest; wiping closes the rest."""
    instance = _instance(tmp_path)
    for day in range(1, runs + 1):
        _materialize(instance, f"2025-01-{day:02d}")
    instance.wipe()
    assert instance.get_runs() == []
    assert _materialized_days(instance) == set()
    _materialize(instance, "2025-01-25")
    assert _materialized_days(instance) == {"2025-01-25"}
    instance.dispose()


def test_the_shipped_settings_load_a_10000_asset_code_location(tmp_path: Path) -> None:
    """`benchmarks.ui_scale` measured 400 s and a repository snapshot over 100 MB for 10,000
    assets on 2 cores: Dagster's defaults (180 s, 100 MB) would fail that code location."""
    instance = _instance(tmp_path)
    assert instance.code_server_process_startup_timeout >= 600
    assert all(int(DAGSTER_PROCESS_ENV[variable]) >= 500_000_000
               for variable in ("DAGSTER_GRPC_MAX_RX_BYTES", "DAGSTER_GRPC_MAX_SEND_BYTES"))
