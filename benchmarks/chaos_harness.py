"""The processes of a chaos run and the kills: a Spark Connect server (`lakehouse spark-server`,
which starts its JVM again when it dies), the Dagster daemon (`dagster-daemon run`, whose code
server launches each run as a process of its own), and SIGKILLs aimed at a run worker, the Spark
JVM, a Spark Python worker or the whole daemon process group.

Every process started here is stopped by id at the end: its process group, then any descendant
seen while it ran.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import psutil

from benchmarks import PROJECT_ROOT
from lake_assets.factory.run_health import worker_process
from lake_assets.factory.run_tags import FEED_TAG
from lake_assets.storage.spark import wait_for_port

BIN = Path(sys.executable).parent
KINDS = ("run_worker", "spark_jvm", "python_worker", "daemon")
TARGET_WAIT_S = 120.0  # how long a kill waits for something to hit (a bronze run in progress)
READY_TIMEOUT_S = 240.0


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: what it aimed at, when (seconds after the start) and which pid; `pid` is
    None when nothing of the kind showed up in time."""

    kind: str
    at: float
    pid: int | None
    note: str = ""


@dataclass
class Lakehouse:
    """The running lakehouse of one chaos run."""

    env: dict[str, str]
    logs: Path
    instance: dg.DagsterInstance
    started: list[subprocess.Popen] = field(default_factory=list)
    seen: dict[int, float] = field(default_factory=dict)  # pid -> its creation time
    daemon: subprocess.Popen | None = None
    spark: subprocess.Popen | None = None
    began: float = field(default_factory=time.monotonic)

    def start(self, spark_port: int) -> None:
        """Start the Connect server (waiting until it answers) and the daemon."""
        self.spark = self._spawn("spark", [str(BIN / "lakehouse"), "spark-server", "--port",
                                           str(spark_port), "--master", self.env["SPARK_MASTER"]])
        wait_for_port(spark_port, timeout=READY_TIMEOUT_S)
        self.env["SPARK_REMOTE"] = f"sc://127.0.0.1:{spark_port}"  # as `make run` sets it
        self.start_daemon()

    def start_daemon(self) -> None:
        """Start `dagster-daemon run` (again) on the same DAGSTER_HOME."""
        self.daemon = self._spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-w",
                                             "workspace.yaml"])

    def kill(self, kind: str, rng: random.Random) -> Kill:
        """SIGKILL one process of `kind`, waiting up to TARGET_WAIT_S for a bronze run to be in
        progress so the kill lands mid-run; a killed daemon is started again 2-5 s later."""
        at = time.monotonic() - self.began
        deadline = time.monotonic() + TARGET_WAIT_S
        while time.monotonic() < deadline:
            self.remember()
            pids = self._targets(kind) if self._busy() else []
            if pids:
                pid = rng.choice(pids)
                if kind == "daemon":
                    assert self.daemon is not None
                    os.killpg(self.daemon.pid, signal.SIGKILL)
                    self.daemon.wait()
                    time.sleep(rng.uniform(2, 5))
                    self.start_daemon()
                else:
                    _sigkill(pid)
                return Kill(kind, round(at, 1), pid)
            time.sleep(1)
        return Kill(kind, round(at, 1), None, "no target in time")

    def _busy(self) -> bool:
        """Whether a bronze run's worker is alive (a run a kill left STARTED does not count)."""
        return bool(self._run_workers())

    def _targets(self, kind: str) -> list[int]:
        with _quiet():
            return self._find(kind)
        return []

    def _find(self, kind: str) -> list[int]:
        if kind == "daemon":
            return [self.daemon.pid] if self.daemon and self.daemon.poll() is None else []
        if kind == "run_worker":
            return self._run_workers()
        jvms = [p for p in _descendants(self.spark) if p.name() == "java"]
        if kind == "spark_jvm":
            return [p.pid for p in jvms]
        workers = [p for jvm in jvms for p in _descendants(jvm) if "pyspark" in _cmd(p)]
        busy = [p for p in workers if p.parent() is not None and "pyspark" in _cmd(p.parent())]
        return [p.pid for p in (busy or workers)]

    def _run_workers(self) -> list[int]:
        pids = []
        for record in self.instance.get_run_records(
                dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            if FEED_TAG not in record.dagster_run.tags:
                continue
            worker = worker_process(self.instance, record.dagster_run.run_id)
            if worker is not None and psutil.pid_exists(worker[0]):
                pids.append(worker[0])
        return pids

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as out:
            process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=self.env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append(process)
        return process

    def remember(self) -> None:
        """Note the descendants of the processes started here, so none outlives the run."""
        for process in self.started:
            for child in _descendants(process):
                with _quiet():
                    self.seen[child.pid] = child.create_time()

    def stop(self) -> None:
        """SIGTERM each started process group, then SIGKILL what is left of it."""
        self.remember()
        for process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for pid, created in self.seen.items():
            with _quiet():
                process = psutil.Process(pid)
                if process.create_time() == created:  # not a later process reusing the pid
                    process.kill()


def _descendants(process: subprocess.Popen | psutil.Process | None) -> list[psutil.Process]:
    if process is None:
        return []
    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _cmd(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _sigkill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it ended on its own in between


@contextmanager
def _quiet() -> Iterator[None]:
    """Processes come and go while they are looked at: one that went is skipped."""
    try:
        yield
    except psutil.Error:
        pass
