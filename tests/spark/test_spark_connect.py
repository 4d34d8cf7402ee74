"""Runs sharing one Spark Connect server, as under `make run`: sensors, runs and bronze tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from lake_assets.storage.spark import FAIR_POOLS, connect_server_command, shared_remote
from tests.conftest import PROJECT_ROOT
from tests.spark.servers import connect_server

JOB = Path(__file__).with_name("connect_job.py")
WORKERS = Path(__file__).with_name("connect_workers.py")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One `lakehouse spark-server` for the module: its URL and its folder."""
    folder = tmp_path_factory.mktemp("connect")
    with connect_server(folder) as remote:
        yield remote, folder


def _client_env(remote: str) -> dict[str, str]:
    env = dict(os.environ, SPARK_REMOTE=remote, PYTHONPATH=str(PROJECT_ROOT),
               LAKE_SECRETS_FILE=str(PROJECT_ROOT / "dev.secrets"))
    env.pop("SPARK_MASTER", None)
    return env


def _workers(remote: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, str(WORKERS), *args], env=_client_env(remote),
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_connect_server_shares_cores_fairly_inside_the_default_pool() -> None:
    """Connect cannot put a query in a pool of its choice, so every run lands in `default`:
    Spark's default pool is FIFO unless the allocation file says otherwise."""
    command = connect_server_command(port=15999, master="local[2]")
    assert f"spark.scheduler.allocation.file={FAIR_POOLS}" in command
    assert "spark.scheduler.mode=FAIR" in command
    pool = ET.parse(FAIR_POOLS).getroot().find("pool[@name='default']")
    assert pool is not None and pool.findtext("schedulingMode") == "FAIR"


@pytest.mark.spark
@pytest.mark.slow
def test_runs_load_bronze_through_a_connect_server(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    remote, folder = server
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, str(JOB), str(tmp_path), str(report)],
                          env=_client_env(remote), cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    log = (folder / "spark-connect.log").read_text(errors="replace")
    assert "Created pool: default, schedulingMode: FAIR" in log
    out = json.loads(report.read_text())
    assert out["runs"] >= 4 and out["failed_runs"] == 0
    assert out["found"] == out["expected"]
    assert out["sql"]["rows"] == out["expected"][out["sql"]["table"]]
    downstream = out["downstream"]
    assert downstream["success"]
    assert downstream["silver/lab_results"] > 0 and downstream["gold/lab_turnaround"] > 0


def test_a_shared_session_id_changes_every_hour() -> None:
    remote = "sc://127.0.0.1:15002"
    now = 1_800_000_000.0
    url = shared_remote(remote, now=now)
    assert url.startswith(f"{remote}/;session_id=")
    assert shared_remote(remote, now=now + 1) == url
    assert shared_remote(remote, now=now + 3600) != url
    assert shared_remote(f"{remote}/;token=x", now=now).startswith(f"{remote}/;token=x;session_id=")
    assert shared_remote(url) == url  # a URL that names its session keeps it


@pytest.mark.spark
@pytest.mark.slow
def test_processes_share_one_session_and_its_python_workers(server: tuple[str, Path]) -> None:
    """Each process is a run: the second finds the first one's workers, lake code imported.
    A client that stops the shared session leaves later runs a session of their own."""
    remote, _ = server
    first, second = _workers(remote), _workers(remote)
    if first["session"] != second["session"]:  # the hour turned between them
        first, second = second, _workers(remote)
    assert second["session"] == first["session"]
    assert second["fresh_workers"] == 0
    _workers(remote, "stop")
    after = _workers(remote)
    assert after["session"] != first["session"]
    assert after["fresh_workers"] > 0
