"""`lakehouse sandbox`: isolated pipelines a developer makes, runs and removes.

    lakehouse sandbox create NAME [--metadata DIR] [--read-prod [--at VERSION|TIME]]
    lakehouse sandbox list | env NAME | run NAME | rm NAME
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from lake_assets.catalog.lineage import lake_tables
from lake_assets.catalog.loader import load_catalog
from lake_assets.errors import LakehouseError
from lake_assets.storage import delta
from lake_assets.storage.sandbox import (
    Sandbox,
    create_sandbox,
    list_sandboxes,
    load_sandbox,
    pin_tables,
    remove_sandbox,
)

_PROJECT = Path(__file__).resolve().parents[1]
FOLDER_VARIABLE = "LAKE_SANDBOXES"
console = Console(width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True)
sandbox = typer.Typer(help="Isolated pipelines for trying changes safely.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the `sandbox` commands to the `lakehouse` app."""
    app.add_typer(sandbox, name="sandbox")


def sandboxes_folder() -> Path:
    """Where sandboxes live: $LAKE_SANDBOXES, else the checkout's `.sandboxes/`."""
    return Path(os.environ.get(FOLDER_VARIABLE, _PROJECT / ".sandboxes"))


def _fail(error: LakehouseError) -> typer.Exit:
    errors.print(Text.assemble(("error: ", "bold red"), str(error)), soft_wrap=True)
    return typer.Exit(1)


@sandbox.command()
def create(
    name: Annotated[str, typer.Argument(help="a-z, 0-9, '-', '_'")],
    metadata: Annotated[Path, typer.Option(help="metadata working copy")] = _PROJECT / "metadata",
    lake_root: Annotated[str | None, typer.Option(help="default .sandboxes/NAME/lake")] = None,
    landing_root: Annotated[str | None, typer.Option(help="default <lake root>/landing")] = None,
    read_prod: Annotated[bool, typer.Option(
        "--read-prod", help="read production silver and gold read-only, pinned")] = False,
    at: Annotated[str | None, typer.Option(help="pin at this VERSION or ISO TIME")] = None,
    prod_root: Annotated[str | None, typer.Option(help="production lake (default $LAKE_ROOT)")
                         ] = None,
) -> None:
    """Make a sandbox: own Dagster home, lake and landing prefixes, ports and metadata."""
    try:
        upstream = None
        if read_prod:
            tables = [path for sql, path in lake_tables(load_catalog(metadata)).items()
                      if sql.startswith(("silver.", "gold."))]
            upstream = pin_tables(tables, root=prod_root or delta.lake_root(), at=at)
        box = create_sandbox(name, folder=sandboxes_folder(), metadata=metadata,
                             dagster_yaml=_PROJECT / "dagster.yaml", lake_root=lake_root,
                             landing_root=landing_root, upstream=upstream)
    except LakehouseError as exc:
        raise _fail(exc) from None
    console.print(Text(f"sandbox {box.name}: lake {box.lake_root}, landing {box.landing_root}, "
                       f"metadata {box.metadata}, Dagster home {box.dagster_home}"))
    if upstream is not None:
        pins = ", ".join(f"{t}@{v}" for t, v in sorted(upstream.versions.items()))
        console.print(Text(f"reads production {upstream.root} read-only: {pins or 'no tables'}"))
    _print_start(box)


def _print_start(box: Sandbox) -> None:
    console.print(Text(f"start it: lakehouse sandbox run {box.name}   "
                       f"(UI http://127.0.0.1:{box.ports['ui']}, Spark Connect "
                       f"{box.ports['spark_connect']})\nor by hand:\n  "
                       f"eval \"$(lakehouse sandbox env {box.name})\" && dagster dev -w "
                       f"{_PROJECT / 'workspace.yaml'} -h 127.0.0.1 -p {box.ports['ui']}"))


@sandbox.command(name="list")
def list_command() -> None:
    """Every sandbox with its ports, roots and pins."""
    table = RichTable("name", "ui", "spark connect", "lake", "metadata", "reads production")
    for box in list_sandboxes(sandboxes_folder()):
        table.add_row(box.name, str(box.ports["ui"]), str(box.ports["spark_connect"]),
                      box.lake_root, box.metadata, "pinned" if box.upstream else "no")
    console.print(table)


@sandbox.command()
def env(name: str) -> None:
    """Print `export` lines for the sandbox's settings (eval them in a shell)."""
    try:
        box = load_sandbox(name, folder=sandboxes_folder())
    except LakehouseError as exc:
        raise _fail(exc) from None
    for key in ("DAGSTER_PG_URL", "SPARK_REMOTE", "LAKE_UPSTREAM"):
        print(f"unset {key}")
    for key, value in box.environment().items():
        print(f"export {key}={shlex.quote(value)}")


@sandbox.command()
def run(name: str) -> None:
    """Start the sandbox's Spark Connect server and its Dagster UI and daemon (`dagster dev`)
    on its own ports; Ctrl-C stops both."""
    try:
        box = load_sandbox(name, folder=sandboxes_folder())
    except LakehouseError as exc:
        raise _fail(exc) from None
    # Stop on SIGTERM and SIGINT alike, even when started in the background (where the shell
    # leaves SIGINT ignored): the `finally` below then stops what this command started.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _exit)
    bin_dir = Path(sys.executable).parent
    env = box.environment(os.environ)
    port = box.ports["spark_connect"]
    log = Path(box.dagster_home) / "spark-connect.log"
    started = [subprocess.Popen([str(bin_dir / "lakehouse"), "spark-server", "--port",
                                 str(port)], env=env, stdout=log.open("ab"),
                                stderr=subprocess.STDOUT, start_new_session=True)]
    try:
        subprocess.run([str(bin_dir / "lakehouse"), "spark-server", "--port", str(port),
                        "--wait-only"], env=env, check=True)
        env["SPARK_REMOTE"] = f"sc://127.0.0.1:{port}"
        console.print(Text(f"sandbox {box.name}: UI on http://127.0.0.1:{box.ports['ui']}"))
        started.append(subprocess.Popen(
            [str(bin_dir / "dagster"), "dev", "-w", str(_PROJECT / "workspace.yaml"), "-h",
             "127.0.0.1", "-p", str(box.ports["ui"])], env=env, start_new_session=True))
        started[-1].wait()
    finally:
        for process in reversed(started):  # each in its own process group, ours alone
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


def _exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@sandbox.command()
def rm(name: str) -> None:
    """Remove a sandbox: its lake and landing prefixes and its folder."""
    try:
        box = remove_sandbox(name, folder=sandboxes_folder())
    except LakehouseError as exc:
        raise _fail(exc) from None
    console.print(Text(f"removed sandbox {box.name} ({box.folder}, {box.lake_root})"))
