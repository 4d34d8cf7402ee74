"""`lakehouse stack up|down|status`: the production shape started on loopback, its processes and
shared environment recorded in a state folder, and exactly those processes stopped again."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from lake_assets.catalog.loader import metadata_root
from lake_assets.stack.processes import LOOPBACK, StackState, Started, alive, stop
from lake_assets.stack.services import (
    BUCKETS,
    S3_KEY,
    remove_postgres_data,
    start_dagster,
    start_postgres,
    start_s3,
    start_spark_cluster,
    start_spark_connect,
)

DEFAULT_DIRECTORY = Path(".stack")


def up(directory: Path, *, project: Path, workers: int = 2, dagster: bool = True) -> StackState:
    """Start PostgreSQL, the S3 API, the Spark cluster and Connect server, then Dagster's code
    server, webserver and daemon on Postgres storage. Each start is recorded at once, so a
    failure part way leaves a state that `down` cleans up; raises what failed.

    Raises RuntimeError when a stack recorded in `directory` still runs.
    """
    current = StackState.load(directory)
    if current is not None and any(alive(p) for p in current.processes):
        raise RuntimeError(f"a stack from {directory} still runs: lakehouse stack down first")
    directory.mkdir(parents=True, exist_ok=True)
    state = StackState(directory.resolve(), {}, [])
    try:
        _start_all(state, project.resolve(), workers=workers, dagster=dagster)
    except BaseException:
        down(directory)
        raise
    return state


def _start_all(state: StackState, project: Path, *, workers: int, dagster: bool) -> None:
    logs = state.directory / "logs"
    postgres, url = start_postgres(state.directory)
    _record(state, postgres)
    s3 = start_s3(logs)
    _record(state, s3)
    home = state.directory / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(project / "dagster.yaml", home / "dagster.yaml")
    state.env.update(shared_environment(s3_url=s3.url or "", postgres_url=url.format(db="dagster"),
                                        home=home, project=project))
    state.save()
    env = {**os.environ, **state.env}
    cluster = start_spark_cluster(logs, env, workers=workers)
    for process in cluster:
        _record(state, process)
    connect = start_spark_connect(logs, env, cluster[0].url or "", cores=workers)
    _record(state, connect)
    state.env["SPARK_REMOTE"] = connect.url or ""
    state.save()
    if dagster:
        for process in start_dagster(logs, {**os.environ, **state.env}, project):
            _record(state, process)


def _record(state: StackState, process: Started) -> None:
    state.processes.append(process)
    state.save()


def shared_environment(*, s3_url: str, postgres_url: str, home: Path,
                       project: Path) -> dict[str, str]:
    """The settings every process of the stack runs with (docs/deploy.md splits them by role)."""
    env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": postgres_url,
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_KEY,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_url,  # s3fs (landing zone) and boto clients
        "LAKE_S3_ENDPOINT": s3_url,  # delta-rs
        "LAKE_METADATA": str(metadata_root().resolve()),
        "SPARK_LOCAL_IP": LOOPBACK,
        "PYSPARK_PYTHON": sys.executable,
        **{variable: f"s3://{bucket}" for bucket, variable in BUCKETS.items()},
    }
    secrets = os.environ.get("LAKE_SECRETS_FILE")
    if secrets:
        env["LAKE_SECRETS_FILE"] = str(Path(secrets).resolve())
    elif (project / "dev.secrets").exists():
        env["LAKE_SECRETS_FILE"] = str(project / "dev.secrets")
    return env


def down(directory: Path, *, keep_data: bool = True) -> list[Started]:
    """Stop every process recorded in `directory`; returns them.

    Only the recorded process groups are signalled, and only while their pid still belongs to
    the process we started. PostgreSQL's data is kept unless `keep_data` is false.
    """
    state = StackState.load(directory)
    if state is None:
        return []
    stop(*reversed(state.processes))
    if not keep_data:
        remove_postgres_data(state.directory)
    state.file.unlink()
    return state.processes


def status(directory: Path) -> list[tuple[Started, bool]]:
    """Each recorded process and whether it runs."""
    state = StackState.load(directory)
    return [] if state is None else [(p, alive(p)) for p in state.processes]
