"""The `lakehouse` command line: validate metadata, query the catalog and the lake, simulate
facility data; `ingestion_command` adds following ingestion and replaying dead letters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from lake_assets.catalog.loader import load_catalog, metadata_root
from lake_assets.catalog.query import lake_tables_in, run_query
from lake_assets.errors import LakehouseError, LakeQueryError, MetadataError
from lake_assets.ingestion_command import register as register_ingestion
from lake_assets.plan_command import register as register_plan
from lake_assets.run_command import register as register_run
from lake_assets.sandbox_command import register as register_sandbox
from lake_assets.simulate.command import register as register_simulate
from lake_assets.stack.command import register as register_stack
from lake_assets.storage.spark import (
    DEFAULT_CONNECT_PORT,
    REMOTE_VARIABLE,
    connect_server_command,
    local_connect_server,
    wait_for_port,
)

app = typer.Typer(
    help="Healthcare lakehouse: metadata-driven Dagster assets on Spark and Delta Lake.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Wide output when piped, so CI logs and files keep whole cells.
console = Console(width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True)


def fail(error: LakehouseError, code: int = 1) -> typer.Exit:
    """Print `error` to stderr without a traceback; returns the Exit to raise."""
    # Messages hold key paths like tables[mrn]: never let rich read them as markup.
    errors.print(Text.assemble(("error: ", "bold red"), str(error)), soft_wrap=True)
    return typer.Exit(code)


@app.command()
def validate(
    path: Annotated[Path | None, typer.Argument(help="metadata folder (default metadata/)")] = None,
) -> None:
    """Lint the metadata; exit non-zero listing every problem with its file and key."""
    root = (path or metadata_root())
    try:
        catalog = load_catalog(root)
    except MetadataError as exc:
        for problem in exc.problems:
            errors.print(Text.assemble(("✗ ", "red"), str(problem)), soft_wrap=True)
        errors.print(Text(f"{len(exc.problems)} problem(s) in {root}"), soft_wrap=True)
        raise typer.Exit(1) from None
    tables = sum(len(f.tables) for f in catalog.feeds)
    summary = (
        f"{root}: {len(catalog.feeds)} feeds, {tables} tables, "
        f"{len(catalog.projections)} projections, {len(catalog.owners.teams)} teams"
    )
    console.print(Text.assemble(("✓ ", "green"), summary))


@app.command()
def catalog(
    sql: Annotated[str, typer.Argument(help="SQL over the catalog tables")],
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array of rows")] = False,
    path: Annotated[Path | None, typer.Option("--metadata", help="metadata folder")] = None,
) -> None:
    """Run SQL over the configuration, e.g. every PHI column and the file it is declared in."""
    try:
        names, rows = run_query(load_catalog(path or metadata_root()), sql,
                                {t: _lake_rows(t) for t in lake_tables_in(sql)})
    except LakehouseError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps([dict(zip(names, row, strict=True)) for row in rows], indent=2))
        return
    print_rows(names, rows)


def _lake_rows(table: str) -> list[tuple[object, ...]]:
    """Rows of a lake-backed catalog table (`schema_versions`)."""
    from lake_assets.storage.lake import Lake

    return [(v.table, v.schema_version, v.delta_version, v.code_version,
             v.effective_at.isoformat(), v.columns, ",".join(v.column_names()), v.fingerprint)
            for v in Lake().schema_history().versions()] if table == "schema_versions" else []


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="Spark SQL over silver.<table>, gold.<projection> "
                                              "and bronze.<feed>__<table>")],
    version: Annotated[int | None, typer.Option(help="read the tables at this version")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="read the tables as of this "
                                              "ISO-8601 time")] = None,
    limit: Annotated[int, typer.Option(help="print at most this many rows")] = 100,
    user: Annotated[str | None, typer.Option(help="read as this user of access.yaml "
                                                  "(default $LAKE_USER)")] = None,
) -> None:
    """Run Spark SQL over the lake's Delta tables as a user, and print the result."""
    from pyspark.errors import AnalysisException  # Spark imports only for this command

    from lake_assets.api import query as run

    remote = local_connect_server()
    if remote:  # `make run`'s shared server: no JVM to start for this one query
        os.environ[REMOTE_VARIABLE] = remote
    try:
        frame = run(query, user=user, version=version, as_of=as_of)
        rows = [tuple(r) for r in frame.limit(limit + 1).collect()]
    except LakehouseError as exc:
        raise fail(exc) from None
    except AnalysisException as exc:  # a column or function Spark cannot resolve
        raise fail(LakeQueryError(str(exc).split("\n", 1)[0])) from None
    print_rows(frame.columns, rows[:limit], more=len(rows) > limit)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 5433,
    tls_cert: Annotated[Path | None, typer.Option(envvar="LAKE_SERVE_TLS_CERT",
                                                  help="PEM certificate: offer TLS")] = None,
    tls_key: Annotated[Path | None, typer.Option(envvar="LAKE_SERVE_TLS_KEY",
                                                 help="PEM private key of the certificate")] = None,
    engine: Annotated[str, typer.Option(help="duckdb (PostgreSQL protocol) or trino "
                                             "(Trino's HTTP protocol, port 8080 by default)")]
    = "duckdb",
) -> None:
    """Serve silver, gold (and bronze to raw roles) to PostgreSQL clients: psql, BI tools,
    JDBC, psycopg; every read governed by access.yaml and audited. `--engine trino` serves
    the same tables and policy from Trino instead."""
    import logging

    from lake_assets.serve.server import build_endpoint, serve_forever
    from lake_assets.storage.lake import Lake

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if engine == "trino":
        serve_trino(port if port != 5433 else 8080)
        return
    try:
        endpoint = build_endpoint(Lake(), load_catalog(metadata_root()), host=host, port=port,
                                  tls_cert=tls_cert, tls_key=tls_key)
    except LakehouseError as exc:
        raise fail(exc) from None
    console.print(f"PostgreSQL endpoint on {host}:{port} (psql -h {host} -p {port} -U <user> "
                  "lake)")
    sys.stdout.flush()
    serve_forever(endpoint)


def serve_trino(port: int) -> None:
    """Run Trino over the lake with the compiled policy until interrupted."""
    import tempfile
    import threading

    from lake_assets.serve.trino import running_trino
    from lake_assets.storage.lake import Lake

    folder = Path(tempfile.mkdtemp(prefix="lake-trino-"))
    try:
        with running_trino(Lake(), load_catalog(metadata_root()), folder, port=port) as server:
            console.print(f"Trino on {server.url}, catalog lake (trino --server {server.url} "
                          "--user <user> --catalog lake)")
            threading.Event().wait()
    except LakehouseError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        pass


@app.command()
def audit(
    table: Annotated[str | None, typer.Option(help="only reads of this table, e.g. "
                                                   "silver.patients")] = None,
    user: Annotated[str | None, typer.Option(help="only this principal")] = None,
    days: Annotated[float, typer.Option(help="how far back, in days")] = 7.0,
    denied: Annotated[bool, typer.Option(help="only denied attempts")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array of rows")] = False,
) -> None:
    """Who read what: the audit log of every query and denied attempt, newest last."""
    import datetime as dt

    from lake_assets.serve.server import audit_log
    from lake_assets.storage.lake import Lake

    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    rows = audit_log(Lake()).read(since=since, table=table, principal=user).to_pylist()
    rows = [r for r in rows if not (denied and r["allowed"])]
    names = ["at", "principal", "role", "client", "path", "allowed", "rows", "tables", "sql",
             "reason"]
    if as_json:
        typer.echo(json.dumps([{n: r[n] for n in names} for r in rows], default=str, indent=2))
        return
    print_rows(names, [[", ".join(r[n]) if n == "tables" else r[n] for n in names]
                       for r in rows])


@app.command()
def inbox(
    mailbox: Annotated[Path, typer.Option(help="JSON-lines file the messages go to")] = Path(
        ".dagster_home/inbox.jsonl"),
    smtp_port: Annotated[int, typer.Option(help="loopback SMTP port")] = 8025,
    http_port: Annotated[int, typer.Option(help="loopback HTTP port (webhooks and the page)")
                         ] = 8765,
) -> None:
    """A local alert inbox for development: receives e-mail, Slack, PagerDuty and webhook
    alerts on loopback and lists them on a page (`make run` starts it)."""
    import time

    from lake_assets.alerts.inbox import Mailbox, running_inbox

    with running_inbox(Mailbox(mailbox), smtp_port=smtp_port, http_port=http_port) as ports:
        console.print(f"Alert inbox: http://127.0.0.1:{ports[1]} (SMTP on 127.0.0.1:{ports[0]}; "
                      f"messages in {mailbox})")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


@app.command("spark-server")
def spark_server(
    port: Annotated[int, typer.Option(help="loopback port to serve on")] = DEFAULT_CONNECT_PORT,
    master: Annotated[str | None, typer.Option(help="Spark master (default $SPARK_MASTER, "
                                                    "else all local cores)")] = None,
    wait_only: Annotated[bool, typer.Option(help="only wait until a server answers on port, "
                                                 "then exit")] = False,
    restart: Annotated[bool, typer.Option(help="start the server again when it dies (runs "
                                               "then reconnect)")] = True,
    shuffle_partitions: Annotated[int | None, typer.Option(
        help="default 4 per local core; about 4 per core of a cluster")] = None,
) -> None:
    """Run the Spark Connect server that runs share (set SPARK_REMOTE=sc://127.0.0.1:PORT)."""
    if wait_only:
        wait_for_port(port, timeout=300)
        console.print(f"Spark Connect is up on sc://127.0.0.1:{port}")
        return
    command = connect_server_command(port=port, master=master,
                                     shuffle_partitions=shuffle_partitions)
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    console.print(f"starting Spark Connect on sc://127.0.0.1:{port}", style="dim")
    sys.stdout.flush()
    if not restart:
        os.execvpe(command[0], command, env)  # the server keeps this pid: stopping it stops Spark
    raise typer.Exit(_supervise(command, env))


def _supervise(command: list[str], env: dict[str, str]) -> int:
    """Run `command`, starting it again whenever it dies, until this process is told to stop
    (SIGTERM, SIGINT); returns the exit code to leave with. The server stays in this process
    group, so stopping the group stops both."""
    stopping: list[int] = []
    running: list[subprocess.Popen] = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)
        if running and running[-1].poll() is None:
            running[-1].terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    pause = 1.0
    while not stopping:
        started = time.monotonic()
        running.append(subprocess.Popen(command, env=env))
        code = running[-1].wait()
        if stopping:
            break
        # A server that dies during start-up (a port taken, a bad master) is started less and
        # less often; one that was killed after it ran a while comes back at once.
        pause = 1.0 if time.monotonic() - started > 20 else min(pause * 2, 30.0)
        errors.print(f"Spark Connect exited with {code}; starting it again in {pause:.0f} s")
        time.sleep(pause)
    return 0


def print_rows(names: Sequence[str], rows: Sequence[Sequence[object]], *,
               more: bool = False) -> None:
    """Print rows as a table, followed by their count."""
    table = RichTable(*names, show_lines=False, header_style="bold")
    for row in rows:
        table.add_row(*(Text("" if v is None else str(v)) for v in row))
    console.print(table)
    console.print(f"{len(rows)} row(s){', more not shown' if more else ''}", style="dim")


register_simulate(app)
register_plan(app)
register_ingestion(app)
register_run(app)
register_stack(app)
register_sandbox(app)


def main() -> None:
    """Entry point that turns deliberate errors into clean messages."""
    try:
        app()
    except LakehouseError as exc:
        raise SystemExit(fail(exc).exit_code) from None


if __name__ == "__main__":
    main()
