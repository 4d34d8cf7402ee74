"""Runs sharing one Spark Connect server, as under `make run`: sensors, runs and bronze tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lake_assets.settings import PROJECT_ROOT
from resources.spark import FAIR_POOLS, connect_server_command
from tests.spark.servers import connect_server

JOB = Path(__file__).with_name("connect_job.py")


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
def test_runs_load_bronze_through_a_connect_server(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    with connect_server(tmp_path) as remote:
        env = dict(os.environ, SPARK_REMOTE=remote, PYTHONPATH=str(PROJECT_ROOT),
                   LAKE_SECRETS_FILE=str(PROJECT_ROOT / "dev.secrets"))
        env.pop("SPARK_MASTER", None)
        done = subprocess.run([sys.executable, str(JOB), str(tmp_path), str(report)],
                              env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    log = (tmp_path / "spark-connect.log").read_text(errors="replace")
    assert "Created pool: default, schedulingMode: FAIR" in log
    out = json.loads(report.read_text())
    assert out["runs"] >= 4 and out["failed_runs"] == 0
    assert out["found"] == out["expected"]
