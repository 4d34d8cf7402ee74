"""`lakehouse ingestion` and `lakehouse deadletter`: the manifest per feed and status, and the
archives whose processing failed every attempt, listed and replayed.

    lakehouse ingestion [--feed F] [--date YYYY-MM-DD] [--json]
    lakehouse deadletter list [--feed F] [--json]
    lakehouse deadletter replay [--feed F] [--batch B]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from lake_assets.catalog.loader import load_catalog, metadata_root
from lake_assets.errors import LakehouseError
from lake_assets.storage.manifest import Manifest

console = Console(width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True)
DEAD_COLUMNS = ["feed", "batch_id", "status", "attempts", "arrival_date", "path", "reason",
                "message", "committed_at"]
deadletter = typer.Typer(help="Archives whose processing failed every attempt.",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the `ingestion` and `deadletter` commands to the `lakehouse` app."""
    app.command(name="ingestion")(ingestion)
    app.add_typer(deadletter, name="deadletter")


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
    _print(["feed", "status", "archives", "retried"], [list(r.values()) for r in rows])


@deadletter.command("list")
def deadletter_list(
    feed: Annotated[str | None, typer.Option(help="only this feed")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array of rows")] = False,
) -> None:
    """List dead-lettered archives (and those waiting for a replay) with their last error."""
    rows = _manifest().outstanding(feed).select(DEAD_COLUMNS).to_pylist()
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    _print(DEAD_COLUMNS, [list(r.values()) for r in rows])


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
        errors.print(Text.assemble(("error: ", "bold red"), str(LakehouseError(str(exc)))))
        raise typer.Exit(1) from None
    console.print(f"{count} archive(s) marked for replay; each feed's sensor requests their "
                  "batches within a minute (`lakehouse deadletter list` shows what is left)")


def _manifest() -> Manifest:
    from lake_assets.storage.lake import Lake  # it imports pyspark: only for these commands

    return Lake().manifest()


def _pending(feed: str | None, date: str) -> list[dict[str, object]]:
    """Per feed, archives landed on `date` that the manifest does not hold yet."""
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


def _print(names: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = RichTable(*names, show_lines=False, header_style="bold")
    for row in rows:
        table.add_row(*(Text("" if v is None else str(v)) for v in row))
    console.print(table)
    console.print(f"{len(rows)} row(s)", style="dim")
