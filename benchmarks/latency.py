"""Landing-to-bronze latency under `dagster dev`: the daemon ticks the feed sensors every 15 s
while `lakehouse simulate --live` lands archives at a steady rate. Runs share one Spark
Connect server (`lakehouse spark-server`), as under `make run`.

Latency of an archive is its manifest `committed_at` minus its landing file's mtime. Every
process started here is stopped by id (its process group, then any descendant left).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import psutil

from benchmarks import PROJECT_ROOT
from lake_assets.storage.lake import Lake
from lake_assets.storage.manifest import Manifest
from lake_assets.storage.spark import wait_for_port

BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 240
DRAIN_TIMEOUT_S = 600
SETTLE_TIMEOUT_S = 180
UNFINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
              dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


@dataclass
class LatencyResult:
    """Per-archive latencies and what the daemon ran."""

    minutes: float
    rate: float
    landed: int = 0
    committed: int = 0
    latencies: list[float] = field(default_factory=list)
    runs: int = 0
    failed_runs: int = 0
    run_seconds: list[float] = field(default_factory=list)
    downstream_runs: int = 0
    downstream_failed: int = 0
    cut_at_stop: int = 0
    stopped_at: float = 0.0

    def percentile(self, share: float) -> float | None:
        """The latency below which `share` of the committed archives fall (nearest rank)."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        rank = max(1, round(share * len(ordered) + 0.5 - 1e-9))
        return ordered[min(rank, len(ordered)) - 1]


def run_latency(workdir: Path, *, minutes: float, rate: float, seed: int) -> LatencyResult:
    """Land archives live for `minutes` at `rate` per hour and wait until bronze has them all.

    Starts from an empty `workdir`: archives, runs and cursors of an earlier run would be
    counted again.
    """
    shutil.rmtree(workdir, ignore_errors=True)
    home, lake = workdir / "dagster_home", workdir / "lake"
    landing, logs = lake / "landing", workdir / "logs"
    for folder in (home, landing, logs):
        folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = _environment(home, lake, landing)
    port, spark_port = _free_port(), _free_port()
    started: list[subprocess.Popen] = []
    seen: set[int] = set()
    result = LatencyResult(minutes=minutes, rate=rate)
    try:
        # As `make run`: runs share one Spark Connect server instead of starting Spark each.
        _spawn([str(BIN / "lakehouse"), "spark-server", "--port", str(spark_port), "--master",
                env["SPARK_MASTER"]], env, logs / "spark-connect.log", started)
        wait_for_port(spark_port, timeout=READY_TIMEOUT_S)
        env["SPARK_REMOTE"] = f"sc://127.0.0.1:{spark_port}"
        dagster = _spawn([str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-p", str(port),
                          "-h", "127.0.0.1"], env, logs / "dagster-dev.log", started)
        _wait_ready(port, dagster, started, seen)
        simulator = _spawn([str(BIN / "lakehouse"), "simulate", "--out", str(landing), "--live",
                            "--rate", str(rate), "--hours", str(minutes / 60), "--faults", "0",
                            "--seed", str(seed), "--quiet"], env, logs / "simulate.log", started)
        _wait(simulator, minutes * 60 + 300, started, seen)
        expected = _landed(landing)
        result.landed = len(expected)
        _drain(Lake(root=str(lake)).manifest(), expected, started, seen)
        _settle(home, started, seen)
    finally:
        result.stopped_at = time.time()
        _stop(started, seen)
    _measure(result, lake, landing, home)
    return result


def _environment(home: Path, lake: Path, landing: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DAGSTER_HOME=str(home), LAKE_ROOT=str(lake), LANDING_ROOT=str(landing),
        PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1", SPARK_MASTER="local[2]",
    )
    env.setdefault("LAKE_SECRETS_FILE", str(PROJECT_ROOT / "dev.secrets"))
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _spawn(
    command: list[str], env: dict[str, str], log: Path, started: list[subprocess.Popen]
) -> subprocess.Popen:
    with open(log, "ab") as out:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    started.append(process)
    return process


def _wait_ready(
    port: int, dagster: subprocess.Popen, started: list[subprocess.Popen], seen: set[int]
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        _remember(started, seen)
        if dagster.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {dagster.returncode}; see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                return
        except OSError:
            time.sleep(2)
    raise RuntimeError(f"dagster dev did not answer on port {port} in {READY_TIMEOUT_S} s")


def _wait(
    process: subprocess.Popen, timeout: float, started: list[subprocess.Popen], seen: set[int]
) -> None:
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.args[0]} still running after {timeout:.0f} s")
        _remember(started, seen)
        time.sleep(2)


def _landed(landing: Path) -> set[str]:
    return {
        str(path.relative_to(landing))
        for path in landing.rglob("*.zip")
        if not any(part.startswith(".") for part in path.relative_to(landing).parts)
    }


def _drain(
    manifest: Manifest, expected: set[str], started: list[subprocess.Popen], seen: set[int]
) -> None:
    """Wait until every landed archive has a manifest row (or the drain timeout passes)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        _remember(started, seen)
        done = set(manifest.rows().column("path").to_pylist())
        if expected <= done:
            return
        time.sleep(5)


def _settle(home: Path, started: list[subprocess.Popen], seen: set[int]) -> None:
    """Let runs that already committed finish their Dagster bookkeeping before the stop."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    with _instance(home) as instance:
        while time.monotonic() < deadline:
            _remember(started, seen)
            if not instance.get_run_records(dg.RunsFilter(statuses=UNFINISHED)):
                return
            time.sleep(3)


@contextmanager
def _instance(home: Path) -> Iterator[dg.DagsterInstance]:
    """The dagster dev instance; its dagster.yaml reads DAGSTER_HOME from the environment."""
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous


def _remember(started: list[subprocess.Popen], seen: set[int]) -> None:
    """Note the descendants of the processes we started, so none outlives the benchmark."""
    for process in started:
        try:
            children = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        seen.update(child.pid for child in children)


def _stop(started: list[subprocess.Popen], seen: set[int]) -> None:
    """SIGTERM each started process group, wait, then end any descendant still left."""
    _remember(started, seen)
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    left = _alive(seen)
    for leftover in left:
        leftover.terminate()
    _, alive = psutil.wait_procs(left, timeout=30)
    for leftover in alive:
        leftover.kill()


def _alive(pids: set[int]) -> list[psutil.Process]:
    found = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        if process.is_running():
            found.append(process)
    return found


def _measure(result: LatencyResult, lake: Path, landing: Path, home: Path) -> None:
    rows = Lake(root=str(lake)).manifest().rows().to_pylist()
    result.committed = len(rows)
    for row in rows:
        mtime = (landing / row["path"]).stat().st_mtime
        result.latencies.append(row["committed_at"].timestamp() - mtime)
    with _instance(home) as instance:
        for record in instance.get_run_records():
            run = record.dagster_run
            failed = run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
            if "lake/feed" not in run.tags:  # silver and gold, requested by automation
                result.downstream_runs += 1
                if failed and (record.end_time or 0) >= result.stopped_at:
                    result.cut_at_stop += 1  # still running when the benchmark stopped
                else:
                    result.downstream_failed += failed
                continue
            result.runs += 1
            result.failed_runs += failed
            if record.start_time and record.end_time:
                result.run_seconds.append(record.end_time - record.start_time)
