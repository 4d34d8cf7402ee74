"""The JVM Delta connector (`delta-spark`) as a reference reader and writer, in its own Spark.

delta-spark is built against one Spark minor version, and none is built for the Spark 4.3 that
the project runs: 4.4.x (the newest, for Spark <= 4.2) is not served by Maven Central here,
and 4.3.1 (for Spark 4.1) writes from Spark 4.3 but fails on every read with
`NoSuchMethodError: org.apache.spark.sql.execution.LogicalRDD.<init>(...)`, a constructor that
changed in Spark 4.2. So the connector runs as it is released: pyspark 4.1.1 with delta-spark
4.3.1 in a virtualenv of its own under `.cache/delta-spark`, its jars fetched by `mvn` into
`.cache/maven`; both are made on first use and reused. `run_steps` hands it a list of steps
(see `benchmarks/jvm_delta_job.py`) in one process and returns their results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PYSPARK_VERSION = "4.1.1"
DELTA_VERSION = "4.3.1"
SPARK_MINOR = "4.1"
_PROJECT = Path(__file__).resolve().parents[1]
_CACHE = _PROJECT / ".cache"
_JOB = Path(__file__).with_name("jvm_delta_job.py")
_ARTIFACTS = (f"io.delta:delta-spark_{SPARK_MINOR}_2.13:{DELTA_VERSION}",
              f"io.delta:delta-storage:{DELTA_VERSION}")


class JvmDeltaError(RuntimeError):
    """The JVM Delta environment could not be made, or a step failed."""


def python() -> Path:
    """The interpreter with pyspark and delta-spark, made on first use."""
    venv = _CACHE / "delta-spark" / f"venv-{PYSPARK_VERSION}-{DELTA_VERSION}"
    interpreter = venv / "bin" / "python"
    if not (venv / ".installed").is_file():
        _call([sys.executable, "-m", "venv", str(venv)])
        _call([str(interpreter), "-m", "pip", "install", "--quiet",
               f"pyspark=={PYSPARK_VERSION}", f"delta-spark=={DELTA_VERSION}", "pandas<3",
               "pyarrow"])
        (venv / ".installed").touch()
    return interpreter


def jars() -> list[Path]:
    """The delta-spark and delta-storage jars, fetched into `.cache/maven` on first use."""
    repo = _CACHE / "maven"
    found = []
    for artifact in _ARTIFACTS:
        group, name, version = artifact.split(":")
        jar = repo / group.replace(".", "/") / name / version / f"{name}-{version}.jar"
        if not jar.is_file():
            _call(["mvn", "-q", "-B", "dependency:get", f"-Dmaven.repo.local={repo}",
                   f"-Dartifact={artifact}", "-Dtransitive=false"])
        found.append(jar)
    return found


def run_steps(steps: list[dict[str, Any]], *, master: str = "local[2]",
              driver_memory: str = "1g", timeout: float = 900) -> list[dict[str, Any]]:
    """Run `steps` in one delta-spark process; returns one result per step, after a first
    `start` result timing the session start. Raises JvmDeltaError with the log's tail."""
    interpreter = python()
    plan = {"jars": ",".join(str(j) for j in jars()), "master": master,
            "driver_memory": driver_memory, "steps": steps}
    with tempfile.TemporaryDirectory(prefix="jvm-delta-") as work:
        plan_file, result_file = Path(work) / "steps.json", Path(work) / "result.json"
        plan_file.write_text(json.dumps(plan))
        env = dict(os.environ, PYSPARK_PYTHON=str(interpreter),
                   SPARK_LOCAL_IP=os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"))
        env.pop("SPARK_REMOTE", None)
        env.pop("PYTHONPATH", None)
        done = subprocess.run([str(interpreter), str(_JOB), str(plan_file), str(result_file)],
                              capture_output=True, text=True, env=env, timeout=timeout,
                              check=False)
        if done.returncode != 0 or not result_file.is_file():
            raise JvmDeltaError(f"delta-spark steps failed ({done.returncode}): "
                                f"{(done.stdout + done.stderr)[-3000:]}")
        return json.loads(result_file.read_text())


def _call(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise JvmDeltaError(f"{' '.join(command[:4])} ... failed: "
                            f"{(done.stdout + done.stderr)[-2000:]}")
