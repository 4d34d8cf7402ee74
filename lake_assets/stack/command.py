"""`lakehouse stack up|down|status|env`, registered on the main command line."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

from lake_assets.stack.processes import StackState
from lake_assets.stack.stack import DEFAULT_DIRECTORY, down, status, up

stack_app = typer.Typer(help="The production shape on loopback: PostgreSQL, S3 API, Spark "
                             "cluster + Connect, Dagster webserver, daemon and code server.",
                        no_args_is_help=True)
console = Console()

StateDir = Annotated[Path, typer.Option("--dir", help="state folder: pids, ports, logs, env")]


@stack_app.command("up")
def stack_up(directory: StateDir = DEFAULT_DIRECTORY,
             workers: Annotated[int, typer.Option(help="Spark workers (1 core each)")] = 2,
             dagster: Annotated[bool, typer.Option(help="start Dagster's processes")] = True,
             ) -> None:
    """Start every process; prints what runs where. `eval $(lakehouse stack env)` then points
    `lakehouse simulate` and friends at it."""
    up(directory, project=Path.cwd(), workers=workers, dagster=dagster)
    stack_status(directory)


@stack_app.command("down")
def stack_down(directory: StateDir = DEFAULT_DIRECTORY,
               wipe: Annotated[bool, typer.Option(help="also delete PostgreSQL's data")] = False,
               ) -> None:
    """Stop exactly the processes `stack up` started (their recorded process groups)."""
    stopped = down(directory, keep_data=not wipe)
    console.print(f"stopped {len(stopped)} process group(s): "
                  f"{', '.join(p.name for p in stopped) or 'none recorded'}")


@stack_app.command("status")
def stack_status(directory: StateDir = DEFAULT_DIRECTORY) -> None:
    """Each process the stack started: running or not, its pid, port and log."""
    rows = status(directory)
    if not rows:
        console.print(f"no stack recorded in {directory}")
        raise typer.Exit(1)
    table = RichTable("process", "state", "pid", "address", "log", header_style="bold")
    for process, running in rows:
        table.add_row(process.name, "running" if running else "stopped", str(process.pid),
                      process.url or (f"127.0.0.1:{process.port}" if process.port else ""),
                      process.log)
    console.print(table)
    if not all(running for _, running in rows):
        raise typer.Exit(1)


@stack_app.command("env")
def stack_env(directory: StateDir = DEFAULT_DIRECTORY) -> None:
    """Print the stack's settings as shell exports."""
    state = StackState.load(directory)
    if state is None:
        raise typer.Exit(1)
    for name, value in sorted(state.env.items()):
        typer.echo(f"export {name}={shlex.quote(value)}")


def register(app: typer.Typer) -> None:
    """Add `lakehouse stack` to `app`."""
    app.add_typer(stack_app, name="stack")
