"""Real servers on loopback for tests: a moto S3 endpoint and a 2-worker Spark standalone cluster.

Both run as processes these helpers start, and are stopped by their own process group ids.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyspark

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@contextmanager
def moto_s3(bucket: str, log: Path) -> Iterator[str]:
    """A moto S3 server process on loopback with `bucket` created; yields its endpoint URL.

    A separate process, not moto's in-process thread: delta-rs holds the GIL while it waits for
    the server, so an in-process server would never answer.
    """
    import boto3

    port = free_port()
    endpoint = f"http://{LOOPBACK}:{port}"
    with log.open("wb") as handle:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
            stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_for_http(endpoint, server)
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
        client.create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        _stop(server)


def _wait_for_http(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server for {url} exited during start-up")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)  # not listening yet
    raise TimeoutError(f"{url} did not answer in 60 s")


@dataclass(frozen=True)
class Cluster:
    """A running standalone cluster: its master URL and the processes we started."""

    master_url: str
    web_url: str
    processes: tuple[subprocess.Popen, ...]


@contextmanager
def standalone_cluster(work_dir: Path, *, workers: int = 2) -> Iterator[Cluster]:
    """A Spark standalone master and `workers` workers (1 core, 1 GB each) on loopback."""
    home = Path(pyspark.__file__).parent
    env = dict(os.environ, SPARK_HOME=str(home), SPARK_LOCAL_IP=LOOPBACK,
               SPARK_DAEMON_MEMORY="256m", SPARK_WORKER_DIR=str(work_dir / "work"),
               SPARK_LOG_DIR=str(work_dir / "logs"), PYSPARK_PYTHON=sys.executable)
    port, web = free_port(), free_port()
    master_url, web_url = f"spark://{LOOPBACK}:{port}", f"http://{LOOPBACK}:{web}"
    started: list[subprocess.Popen] = []
    try:
        started.append(_daemon(home, env, work_dir / "master.log",
                               "org.apache.spark.deploy.master.Master", "--host", LOOPBACK,
                               "--port", str(port), "--webui-port", str(web)))
        for i in range(workers):
            started.append(_daemon(home, env, work_dir / f"worker{i}.log",
                                   "org.apache.spark.deploy.worker.Worker", "--host", LOOPBACK,
                                   "--cores", "1", "--memory", "1g",
                                   "--webui-port", str(free_port()), master_url))
        _wait_for_workers(web_url, workers, started)
        yield Cluster(master_url, web_url, tuple(started))
    finally:
        for process in reversed(started):
            _stop(process)


def _daemon(home: Path, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    handle = log.open("wb")
    return subprocess.Popen([str(home / "bin" / "spark-class"), *args], env=env, stdout=handle,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_workers(web_url: str, count: int, started: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in started):
            raise RuntimeError("a Spark daemon exited during start-up; see its log")
        try:
            with urllib.request.urlopen(f"{web_url}/json/", timeout=2) as response:
                state = json.load(response)
            if state.get("aliveworkers", 0) >= count:
                return
        except OSError:
            pass  # the master's web UI is not up yet
        time.sleep(0.5)
    raise TimeoutError(f"{count} Spark workers did not register with {web_url} in 90 s")


def _stop(process: subprocess.Popen) -> None:
    """Stop a daemon we started, and the executors it forked (same process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextmanager
def connect_server(work_dir: Path, *, master: str = "local[2]") -> Iterator[str]:
    """`lakehouse spark-server` on a free loopback port, as `make run` starts it; yields its
    sc:// URL. Its log goes to `work_dir/spark-connect.log`."""
    from lake_assets.storage.spark import wait_for_port

    port = free_port()
    env = dict(os.environ, SPARK_LOCAL_IP=LOOPBACK, PYSPARK_PYTHON=sys.executable)
    lakehouse = Path(sys.executable).with_name("lakehouse")
    with (work_dir / "spark-connect.log").open("wb") as handle:
        server = subprocess.Popen(
            [str(lakehouse), "spark-server", "--port", str(port), "--master", master],
            env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_for_port(port, timeout=120)
        yield f"sc://{LOOPBACK}:{port}"
    finally:
        _stop(server)
