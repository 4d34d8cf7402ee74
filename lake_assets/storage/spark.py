"""Spark sessions for the lake: local, a cluster or Spark Connect, and the Connect server.

The master comes from an argument or `SPARK_MASTER` (default `local[*]`, or `spark://host:port`);
Spark Connect from an argument or `SPARK_REMOTE` (`sc://host:port`). Both are read when the
session is built, never at import. Sessions run in UTC and executors use this interpreter
(`PYSPARK_PYTHON`). Connect runs of the same code share one session for up to an hour
(`shared_remote`). No Dagster here: `resources.spark` wraps this for assets.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import socket
import sys
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from lake_assets.errors import SparkConfigError

MASTER_VARIABLE = "SPARK_MASTER"
REMOTE_VARIABLE = "SPARK_REMOTE"
DEFAULT_MASTER = "local[*]"
_MASTER_SCHEMES = ("local", "spark://", "yarn", "k8s://")

SESSION_DEFAULTS: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.python.filterPushdown.enabled": "true",
}


def build_session(
    *,
    master: str | None = None,
    remote: str | None = None,
    app_name: str = "lakehouse",
    conf: Mapping[str, Any] | None = None,
    ui_enabled: bool = True,
    environ: Mapping[str, str] | None = None,
) -> SparkSession:
    """A Spark session for `master` or Spark Connect `remote` (arguments, else environment).

    Raises SparkConfigError for a master URL Spark cannot use.
    """
    env = os.environ if environ is None else environ
    remote = remote or env.get(REMOTE_VARIABLE)
    master = master or env.get(MASTER_VARIABLE) or DEFAULT_MASTER
    if master.startswith("sc://"):
        remote = remote or master
    settings = {**SESSION_DEFAULTS, **{k: str(v) for k, v in (conf or {}).items()}}
    if remote:
        if not remote.startswith("sc://"):
            raise SparkConfigError(f"Spark Connect URL {remote!r} must start with sc://")
        session = _connect(remote, settings, app_name)
    else:
        if not master.startswith(_MASTER_SCHEMES):
            raise SparkConfigError(
                f"Spark master {master!r} is not local[*], spark://host:port, yarn or k8s://…"
            )
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        if master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        settings.setdefault("spark.ui.enabled", str(ui_enabled).lower())
        settings.setdefault("spark.sql.shuffle.partitions", str(local_shuffle_partitions(master)))
        builder = SparkSession.builder.master(master)
        for key, value in settings.items():
            builder = builder.config(key, value)
        session = builder.appName(app_name).getOrCreate()
    return session


def _connect(remote: str, settings: Mapping[str, str], app_name: str) -> SparkSession:
    """A Connect session in the session runs of this code share (`shared_remote`); a session
    of its own if the server already closed the shared one (its idle timeout, or a client
    that stopped it).

    Built through `pyspark.sql.SparkSession`, which marks the process as a Connect client, so
    `pyspark.sql.functions` build Connect columns.
    """

    def builder(url: str) -> SparkSession.Builder:
        found = SparkSession.builder.remote(url).appName(app_name)
        for key, value in settings.items():
            found = found.config(key, value)
        return found

    # A server still starting (`lakehouse run` starts Dagster beside it) is waited for.
    where = urllib.parse.urlsplit(remote.replace("sc://", "http://", 1))
    wait_for_port(where.port or DEFAULT_CONNECT_PORT, host=where.hostname or "127.0.0.1",
                  timeout=CONNECT_WAIT_S)
    try:
        return builder(shared_remote(remote)).getOrCreate()
    except Exception as exc:
        if "SESSION_CLOSED" not in str(exc):
            raise
        return builder(_with_session(remote, str(uuid.uuid4()))).create()


SHARED_SESSION_SECONDS = 3600
CONNECT_WAIT_S = 120.0
SESSION_PARAM = "session_id"
# The lake's code: its package and the resources folder installed inside it.
_CODE_PACKAGES = ("lake_assets", "lake_assets.resources")


def shared_remote(remote: str, *, now: float | None = None) -> str:
    """Connect URL `remote` naming the session that runs of this code share this hour.

    A Connect server keeps Python workers per session. A run in a session of its own starts
    fresh workers, which import the lake's code before its first task: 3.7-8 s of every run
    on 2 cores, against 0.2 s for a run that finds the workers of a shared session. The id
    changes with the code (`code_fingerprint`), so workers never hold modules older than the
    run's, and every SHARED_SESSION_SECONDS, which is no longer than the server's idle timeout
    (`connect_server_command`): an id is never used again after its session timed out. A URL
    that already names a session keeps it.
    """
    if f";{SESSION_PARAM}=" in remote:
        return remote
    bucket = int((time.time() if now is None else now) // SHARED_SESSION_SECONDS)
    key = f"{remote}|{code_fingerprint()}|{bucket}".encode()
    return _with_session(remote, str(uuid.UUID(bytes=hashlib.sha256(key).digest()[:16],
                                                version=4)))


def _with_session(remote: str, session_id: str) -> str:
    base = remote if "/;" in remote else remote.rstrip("/") + "/"
    return f"{base};{SESSION_PARAM}={session_id}"


@functools.cache
def code_fingerprint() -> str:
    """A hash of the lake's Python files (path, size, modification time): it changes with
    the code a run imports."""
    digest = hashlib.sha256()
    for package in _CODE_PACKAGES:
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for path in sorted(Path(folder).rglob("*.py")):
                stat = path.stat()
                digest.update(f"{package}/{path.relative_to(folder)}|{stat.st_size}|"
                              f"{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def local_shuffle_partitions(master: str) -> int:
    """Shuffle partitions for a master: 4 per core on one machine, Spark's 200 elsewhere.

    A day of silver changes is small; with 200 partitions most of a merge's time went to
    scheduling empty tasks (a 2-core merge of 20k rows: 67 s, mostly 200- and 400-task stages).
    """
    if not master.startswith("local"):
        return 200
    cores = master.removeprefix("local").strip("[]").split(",")[0]
    if cores == "*":
        return 4 * (os.cpu_count() or 2)
    return 4 * (int(cores) if cores.isdigit() else 1)


def is_connect(spark: SparkSession) -> bool:
    """Whether `spark` is a Spark Connect session (no SparkContext, no JVM in this process)."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession  # needs grpc: lazy

    return isinstance(spark, ConnectSession)


def default_parallelism(spark: SparkSession) -> int:
    """How many tasks the session's executors run at once.

    Spark Connect has no SparkContext to ask: it uses `spark.default.parallelism`, else the
    core count of a local master, else 2.
    """
    if not is_connect(spark):
        return int(spark.sparkContext.defaultParallelism)
    configured = spark.conf.get("spark.default.parallelism", None)
    if configured:
        return int(configured)
    master = spark.conf.get("spark.master", None) or ""
    cores = master.removeprefix("local[").removesuffix("]") if master.startswith("local[") else ""
    if cores == "*":
        return os.cpu_count() or 2
    return int(cores) if cores.isdigit() else 2


CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_CONNECT_PORT = 15002
FAIR_POOLS = Path(__file__).with_name("spark_pools.xml")


def connect_server_command(
    *, port: int = DEFAULT_CONNECT_PORT, master: str | None = None, driver_memory: str = "2g",
    ui_enabled: bool = True, shuffle_partitions: int | None = None,
) -> list[str]:
    """The command that runs a Spark Connect server on loopback `port` in the foreground.

    `shuffle_partitions` defaults to 4 per local core, or Spark's 200 for a cluster; give a
    cluster about 4 per worker core (200 single-row tasks per stage cost a 2-core cluster
    a minute per merge).

    Runs share it through `SPARK_REMOTE=sc://127.0.0.1:<port>`, so a run connects in a second
    instead of starting a JVM and Python workers of its own (10-20 s on a small machine).
    Its executors run this interpreter, which has the lake's code installed.
    """
    import pyspark  # the server ships inside the pyspark package

    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    chosen = master or os.environ.get(MASTER_VARIABLE) or DEFAULT_MASTER
    settings = {
        **SESSION_DEFAULTS,
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.driver.memory": driver_memory,
        "spark.scheduler.mode": "FAIR",  # concurrent runs share the cores
        "spark.scheduler.allocation.file": str(FAIR_POOLS),  # ...also within the default pool
        # Shared sessions (`shared_remote`) change id no less often than they can time out.
        "spark.connect.session.manager.defaultSessionTimeout": f"{SHARED_SESSION_SECONDS}s",
        "spark.sql.shuffle.partitions": str(shuffle_partitions or local_shuffle_partitions(chosen)),
        "spark.ui.enabled": str(ui_enabled).lower(),
        "spark.pyspark.python": sys.executable,
    }
    command = [str(submit), "--class", CONNECT_SERVER_CLASS, "--name", "lakehouse-connect",
               "--master", chosen]
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    return command


def local_connect_server(environ: Mapping[str, str] | None = None, *,
                         port: int = DEFAULT_CONNECT_PORT) -> str | None:
    """`sc://127.0.0.1:<port>` when no master or remote is configured and a Spark Connect
    server (the one `make run` starts) answers there; else None.

    A query then takes a second instead of a JVM's start (about a minute on 2 cores).
    """
    env = os.environ if environ is None else environ
    if env.get(REMOTE_VARIABLE) or env.get(MASTER_VARIABLE):
        return None
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return f"sc://127.0.0.1:{port}"
    except OSError:
        return None


def wait_for_port(port: int, *, timeout: float = 120.0, host: str = "127.0.0.1") -> None:
    """Return once something accepts connections on `host:port`.

    Raises SparkConfigError when nothing does within `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SparkConfigError(f"nothing answered on {host}:{port} within {timeout:.0f} s")
