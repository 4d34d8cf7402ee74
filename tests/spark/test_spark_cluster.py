"""A real 2-worker standalone cluster on loopback: executors in their own JVMs write the files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.spark.servers import LOOPBACK, standalone_cluster

pytestmark = [pytest.mark.spark, pytest.mark.slow]

JOB = Path(__file__).with_name("cluster_job.py")


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
