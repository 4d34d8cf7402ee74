"""The services of the production shape on loopback: PostgreSQL (Debian's binaries), an S3 API
(moto in server mode), a Spark standalone cluster with a Connect server in front of it, and
Dagster's webserver, daemon and code server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyspark

from lake_assets.stack.processes import (
    LOOPBACK,
    Started,
    alive,
    free_port,
    start,
    unprivileged_user,
    wait_for_http,
    wait_for_port,
)

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
POSTGRES_USER = "lake"
# Any key works with moto; a real deployment gives each process its own (docs/deploy.md).
S3_KEY = "stack"
BUCKETS = {"landing": "LANDING_ROOT", "lake": "LAKE_ROOT", "bronze": "LAKE_BRONZE_ROOT"}


def postgres_binaries() -> Path | None:
    """The folder of Debian's PostgreSQL server binaries, or None when not installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


def start_postgres(directory: Path, *, settings: Mapping[str, str] | None = None,
                   databases: Sequence[str] = ("dagster",)) -> tuple[Started, str]:
    """PostgreSQL on a free loopback port with its data under `directory` (made once with
    initdb); returns the process and a URL template `postgresql+psycopg2://lake@127.0.0.1:PORT/{db}`.

    Root may not run PostgreSQL, so as root it runs as the `postgres` user, in a data folder
    that user can reach.
    """
    binaries = postgres_binaries()
    if binaries is None:
        raise FileNotFoundError("PostgreSQL server binaries missing: apt-get install postgresql")
    user = unprivileged_user()
    data = _data_folder(directory, user)
    if not (data / "PG_VERSION").exists():
        subprocess.run([str(binaries / "initdb"), "-D", str(data), "-U", POSTGRES_USER,
                        "--auth=trust", "-E", "UTF8", "--no-instructions"],
                       check=True, user=user, capture_output=True)
    port = free_port()
    options = [f"-c{key}={value}" for key, value in (settings or {}).items()]
    server = start("postgres", [str(binaries / "postgres"), "-D", str(data), "-p", str(port),
                                "-h", LOOPBACK, "-k", str(data), *options],
                   env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
                   log=directory / "postgres.log", port=port, user=user)
    wait_for_port(port, server, timeout=60)
    for database in databases:
        create_database(port, database)
    return server, f"postgresql+psycopg2://{POSTGRES_USER}@{LOOPBACK}:{port}/{{db}}"


def create_database(port: int, name: str) -> None:
    """Create database `name` on the server at `port` (as the `lake` superuser)."""
    binaries = postgres_binaries()
    assert binaries is not None
    deadline = time.monotonic() + 30
    while True:  # the server listens a moment before it accepts logins
        done = subprocess.run([str(binaries / "createdb"), "-h", LOOPBACK, "-p", str(port),
                               "-U", POSTGRES_USER, name], capture_output=True, text=True)
        if done.returncode == 0 or "already exists" in done.stderr:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"createdb {name} failed: {done.stderr.strip()}")
        time.sleep(0.3)


def _data_folder(directory: Path, user: str | None) -> Path:
    """`directory/postgres`, or when `user` cannot reach it, a folder in the temp dir that the
    stack records (a file `postgres.path` under `directory` names it)."""
    directory.mkdir(parents=True, exist_ok=True)
    pointer = directory / "postgres.path"
    if pointer.exists():
        return Path(pointer.read_text())
    if user is None:
        data = directory / "postgres"
    elif all(p.stat().st_mode & 0o001 for p in directory.resolve().parents) and \
            directory.stat().st_mode & 0o001:
        data = directory / "postgres"
    else:
        data = Path(tempfile.mkdtemp(prefix="lakehouse-pg-"))
        pointer.write_text(str(data))
    data.mkdir(parents=True, exist_ok=True)
    if user is not None:
        shutil.chown(data, user, user)
        data.chmod(0o700)
    return data


def remove_postgres_data(directory: Path) -> None:
    """Delete the data folder `start_postgres` made for `directory` (the server stopped)."""
    pointer = directory / "postgres.path"
    shutil.rmtree(Path(pointer.read_text()) if pointer.exists() else directory / "postgres",
                  ignore_errors=True)
    pointer.unlink(missing_ok=True)


def start_s3(directory: Path, buckets: Sequence[str] = tuple(BUCKETS)) -> Started:
    """moto's S3 API in server mode on a free loopback port, with `buckets` created."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    server = start("s3", [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
                   env=_inherited(), log=directory / "s3.log", port=port, url=url)
    wait_for_http(url, server, timeout=60)
    for bucket in buckets:
        request = urllib.request.Request(f"{url}/{bucket}", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()
    return server


def start_spark_cluster(directory: Path, env: Mapping[str, str], *,
                        workers: int = 2) -> list[Started]:
    """A Spark standalone master and `workers` workers of 1 core and 1 GB on loopback.

    Executors inherit the workers' environment (`env`): S3 settings and secrets.
    """
    home = Path(pyspark.__file__).parent
    spark_env = {**env, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": LOOPBACK,
                 "SPARK_DAEMON_MEMORY": "256m", "SPARK_WORKER_DIR": str(directory / "work"),
                 "SPARK_LOG_DIR": str(directory / "logs"), "PYSPARK_PYTHON": sys.executable}
    port, web = free_port(), free_port()
    master_url, web_url = f"spark://{LOOPBACK}:{port}", f"http://{LOOPBACK}:{web}"
    spark_class = str(home / "bin" / "spark-class")
    started = [start("spark-master", [spark_class, "org.apache.spark.deploy.master.Master",
                                      "--host", LOOPBACK, "--port", str(port),
                                      "--webui-port", str(web)],
                     env=spark_env, log=directory / "spark-master.log", port=port,
                     url=master_url)]
    for i in range(workers):
        started.append(start(f"spark-worker-{i + 1}", [
            spark_class, "org.apache.spark.deploy.worker.Worker", "--host", LOOPBACK,
            "--cores", "1", "--memory", "1g", "--webui-port", str(free_port()), master_url,
        ], env=spark_env, log=directory / f"spark-worker-{i + 1}.log"))
    _wait_for_workers(web_url, workers, started)
    return started


def _wait_for_workers(web_url: str, count: int, started: list[Started]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        dead = [s.name for s in started if not alive(s)]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited during start-up; see its log")
        try:
            with urllib.request.urlopen(f"{web_url}/json/", timeout=2) as response:
                if json.load(response).get("aliveworkers", 0) >= count:
                    return
        except OSError:
            pass  # the master's web UI is not up yet
        time.sleep(0.5)
    raise TimeoutError(f"{count} Spark workers did not register with {web_url} in 120 s")


def start_spark_connect(directory: Path, env: Mapping[str, str], master: str, *,
                        cores: int) -> Started:
    """`lakehouse spark-server` on a free loopback port, running on `master` whose workers
    have `cores` cores in all (4 shuffle partitions each)."""
    port = free_port()
    server = start("spark-connect", [_script("lakehouse"), "spark-server", "--port", str(port),
                                     "--master", master,
                                     "--shuffle-partitions", str(4 * cores)],
                   env=env, log=directory / "spark-connect.log", port=port,
                   url=f"sc://{LOOPBACK}:{port}")
    wait_for_port(port, server, timeout=180)
    return server


def start_dagster(directory: Path, env: Mapping[str, str], project: Path) -> list[Started]:
    """Dagster's code server (gRPC), webserver and daemon as separate processes; the webserver
    and daemon load the code server's definitions through `directory/workspace.yaml`."""
    from lake_assets.instance_storage import DAGSTER_PROCESS_ENV  # imports Dagster (1-3 s)

    env = DAGSTER_PROCESS_ENV | dict(env)
    grpc_port, web_port = free_port(), free_port()
    code = start("dagster-code-server", [
        _script("dagster"), "api", "grpc", "--module-name", "lake_assets.definitions",
        "--host", LOOPBACK, "--port", str(grpc_port), "--working-directory", str(project),
    ], env=env, log=directory / "dagster-code-server.log", port=grpc_port, cwd=project)
    workspace = directory / "workspace.yaml"
    workspace.write_text(json.dumps({"load_from": [{"grpc_server": {
        "host": LOOPBACK, "port": grpc_port, "location_name": "lake_assets"}}]}))
    wait_for_port(grpc_port, code, timeout=180)
    web_url = f"http://{LOOPBACK}:{web_port}"
    web = start("dagster-webserver", [
        _script("dagster-webserver"), "-w", str(workspace), "-h", LOOPBACK, "-p", str(web_port),
    ], env=env, log=directory / "dagster-webserver.log", port=web_port, url=web_url, cwd=project)
    daemon = start("dagster-daemon", [_script("dagster-daemon"), "run", "-w", str(workspace)],
                   env=env, log=directory / "dagster-daemon.log", cwd=project)
    wait_for_http(f"{web_url}/server_info", web, timeout=180)
    if not alive(daemon):
        raise RuntimeError(f"dagster-daemon exited during start-up; see {daemon.log}")
    return [code, web, daemon]


def _script(name: str) -> str:
    """A console script installed beside this interpreter."""
    return str(Path(sys.executable).with_name(name))


def _inherited() -> dict[str, str]:
    return dict(os.environ)
