"""The `lakehouse` command line: validate metadata, query the catalog and the lake, follow
ingestion and replay dead letters, simulate facility data."""

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
from lake_assets.catalog.query import run_query
from lake_assets.errors import LakehouseError, LakeQueryError, MetadataError
from lake_assets.plan_command import register as register_plan
from lake_assets.simulate.command import register as register_simulate
from lake_assets.storage.manifest import Manifest
from lake_assets.storage.spark import DEFAULT_CONNECT_PORT, connect_server_command, wait_for_port

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
        names, rows = run_query(load_catalog(path or metadata_root()), sql)
    except LakehouseError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps([dict(zip(names, row, strict=True)) for row in rows], indent=2))
        return
    print_rows(names, rows)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="Spark SQL over silver.<table>, gold.<projection> "
                                              "and bronze.<feed>__<table>")],
    version: Annotated[int | None, typer.Option(help="read the tables at this version")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="read the tables as of this "
                                              "ISO-8601 time")] = None,
    limit: Annotated[int, typer.Option(help="print at most this many rows")] = 100,
) -> None:
    """Run Spark SQL over the lake's Delta tables and print the result."""
    from pyspark.errors import AnalysisException  # Spark imports only for this command

    from lake_assets.api import query as run

    try:
        frame = run(query, version=version, as_of=as_of)
        rows = [tuple(r) for r in frame.limit(limit + 1).collect()]
    except LakehouseError as exc:
        raise fail(exc) from None
    except AnalysisException as exc:  # a column or function Spark cannot resolve
        raise fail(LakeQueryError(str(exc).split("\n", 1)[0])) from None
    print_rows(frame.columns, rows[:limit], more=len(rows) > limit)


@app.command("spark-server")
def spark_server(
    port: Annotated[int, typer.Option(help="loopback port to serve on")] = DEFAULT_CONNECT_PORT,
    master: Annotated[str | None, typer.Option(help="Spark master (default $SPARK_MASTER, "
                                                    "else all local cores)")] = None,
    wait_only: Annotated[bool, typer.Option(help="only wait until a server answers on port, "
                                                 "then exit")] = False,
    restart: Annotated[bool, typer.Option(help="start the server again when it dies (runs "
                                               "then reconnect)")] = True,
) -> None:
    """Run the Spark Connect server that runs share (set SPARK_REMOTE=sc://127.0.0.1:PORT)."""
    if wait_only:
        wait_for_port(port, timeout=300)
        console.print(f"Spark Connect is up on sc://127.0.0.1:{port}")
        return
    command = connect_server_command(port=port, master=master)
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


deadletter = typer.Typer(help="Archives whose processing failed every attempt.",
                         no_args_is_help=True)
app.add_typer(deadletter, name="deadletter")
_DEAD_COLUMNS = ["feed", "batch_id", "status", "attempts", "arrival_date", "path", "reason",
                 "message", "committed_at"]


@deadletter.command("list")
def deadletter_list(
    feed: Annotated[str | None, typer.Option(help="only this feed")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array of rows")] = False,
) -> None:
    """List dead-lettered archives (and those waiting for a replay) with their last error."""
    rows = _manifest().outstanding(feed).select(_DEAD_COLUMNS).to_pylist()
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    print_rows(_DEAD_COLUMNS, [list(r.values()) for r in rows])


@deadletter.command("replay")
def deadletter_replay(
    feed: Annotated[str | None, typer.Option(help="only this feed")] = None,
    batch: Annotated[str | None, typer.Option(help="only this batch id")] = None,
) -> None:
    """Load dead letters again, once their cause is fixed: the feed's sensor requests their
    batches (same batch ids, so nothing is loaded twice) within a minute."""
    try:
        count = _manifest().request_replay(feed, batch)
    except ValueError as exc:
        raise fail(LakehouseError(str(exc))) from None
    console.print(f"{count} archive(s) marked for replay; each feed's sensor requests their "
                  "batches within a minute (`lakehouse deadletter list` shows what is left)")


@app.command()
def ingestion(
    feed: Annotated[str | None, typer.Option(help="only this feed")] = None,
    date: Annotated[str | None, typer.Option(help="only this arrival date (YYYY-MM-DD); also "
                                                  "counts landed archives not loaded yet")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array of rows")] = False,
) -> None:
    """Archives per feed and status in the manifest: loaded, quarantined, dead_letter,
    replay; `retried` took more than one run; with --date, `pending` are landed ones not in
    the manifest yet."""
    rows = _manifest().status_counts(feed, date).to_pylist()
    if date:
        rows += _pending(feed, date)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    print_rows(["feed", "status", "archives", "retried"], [list(r.values()) for r in rows])


def _manifest() -> Manifest:
    from lake_assets.storage.lake import Lake  # it imports pyspark: only for these commands

    return Lake().manifest()


def _pending(feed: str | None, date: str) -> list[dict[str, object]]:
    from lake_assets.storage.landing import landing_root, open_landing

    zone, manifest = open_landing(landing_root()), _manifest()
    found = []
    for each in load_catalog(metadata_root()).feeds:
        if feed and each.name != feed:
            continue
        paths = [a.path for a in zone.archives(each, date)]
        known = manifest.known(each.name, [date], paths) if paths else set()
        if len(paths) > len(known):
            found.append({"feed": each.name, "status": "pending",
                          "archives": len(paths) - len(known), "retried": 0})
    return found


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


def main() -> None:
    """Entry point that turns deliberate errors into clean messages."""
    try:
        app()
    except LakehouseError as exc:
        raise SystemExit(fail(exc).exit_code) from None


if __name__ == "__main__":
    main()
