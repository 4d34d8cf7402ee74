"""A real 2-worker standalone cluster on loopback: executors in their own JVMs write the files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.spark.servers import LOOPBACK, standalone_cluster

pytestmark = [pytest.mark.spark, pytest.mark.slow]

JOB = Path(__file__).with_name("cluster_job.py")
BRONZE_JOB = Path(__file__).with_name("cluster_bronze_job.py")


def test_write_and_merge_run_on_two_executors(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    with standalone_cluster(tmp_path) as cluster:
        env = dict(os.environ, SPARK_LOCAL_IP=LOOPBACK, PYSPARK_PYTHON=sys.executable)
        done = subprocess.run(
            [sys.executable, str(JOB), cluster.master_url, str(tmp_path / "lake"), str(report)],
            env=env, capture_output=True, text=True, timeout=240,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(report.read_text())
    assert out["executors"] == 2
    assert (out["write_version"], out["merge_version"]) == (0, 1)
    assert out["counts"] == {"v1": 3600, "v2": 400}

    for files in (out["write_files"], out["merge_files"]):
        assert files and all(f["executor"] for f in files), files
        assert out["driver_pid"] not in {f["pid"] for f in files}
        assert out["driver_jvm_pid"] not in {f["jvm_pid"] for f in files}
    assert len({f["jvm_pid"] for f in out["write_files"]}) == 2  # both executors wrote


def test_a_bronze_run_loses_a_worker_mid_run_and_still_loads_its_archives_once(
    tmp_path: Path,
) -> None:
    """The worker (and the executor it started) is SIGKILLed while two tasks run: Spark runs
    the lost tasks again on the other worker, and the batch commits once, with no human help."""
    report, running = tmp_path / "report.json", tmp_path / "tasks_running"
    with standalone_cluster(tmp_path) as cluster:
        env = dict(os.environ, SPARK_MASTER=cluster.master_url, SPARK_LOCAL_IP=LOOPBACK,
                   PYSPARK_PYTHON=sys.executable)
        with (tmp_path / "job.log").open("wb") as log:
            job = subprocess.Popen([sys.executable, str(BRONZE_JOB), str(tmp_path), str(report)],
                                   env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while not running.exists() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running.exists(), (tmp_path / "job.log").read_text()[-3000:]
        worker = cluster.processes[1]
        os.killpg(worker.pid, signal.SIGKILL)  # the worker JVM and its executor's process tree
        worker.wait()
        assert job.wait(timeout=600) == 0, (tmp_path / "job.log").read_text()[-3000:]
    out = json.loads(report.read_text())
    assert out["success"] and out["manifest"] == ["loaded"]
    assert out["lost_executors"] == 1 and out["failed_tasks"] >= 1
    assert out["rows_by_archive"] == out["expected_by_archive"]  # every row once, none lost
