"""The `lakehouse simulate` command: options in, archives and truth out, a summary table."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

from lake_assets.catalog.loader import load_catalog, metadata_root
from lake_assets.errors import LakehouseError, SimulationOptionError
from lake_assets.simulate.faults import FAULT_KINDS
from lake_assets.simulate.options import (
    ENCRYPTIONS,
    Encryption,
    SimulationOptions,
    SimulationSummary,
    today_utc,
)
from lake_assets.simulate.run import simulate
from lake_assets.storage.landing import landing_root

TRUTH_NAME = "_truth.jsonl"  # at the landing root, outside every feed prefix


def register(app: typer.Typer) -> None:
    """Add the `simulate` command to the `lakehouse` app."""
    app.command(name="simulate")(simulate_command)


def simulate_command(
    out: Annotated[
        str | None, typer.Option(help="landing root, folder or s3:// (default $LANDING_ROOT)")
    ] = None,
    truth: Annotated[
        str | None, typer.Option(help=f"truth JSON-lines file (default <out>/{TRUTH_NAME})")
    ] = None,
    facilities: Annotated[int, typer.Option(help="facilities sending data (1-99999)")] = 8_000,
    hours: Annotated[float, typer.Option(help="simulated hours (> 0)")] = 1.0,
    rate: Annotated[float, typer.Option(help="archives per hour over all feeds (> 0)")] = 3_500,
    faults: Annotated[float, typer.Option(help="share of archives with one fault (0-1)")] = 0.01,
    fault_kinds: Annotated[
        str | None, typer.Option(help=f"comma list of faults (default all of {len(FAULT_KINDS)})")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="seed for a reproducible run (default random)")
    ] = None,
    feeds: Annotated[str | None, typer.Option(help="comma list of feeds (default all)")] = None,
    size_scale: Annotated[float, typer.Option(help="multiply archive sizes (> 0)")] = 1.0,
    encryption: Annotated[
        str, typer.Option(help=f"zip encryption: {'|'.join(ENCRYPTIONS)}")
    ] = "mix",
    start: Annotated[
        str | None, typer.Option(help="first simulated hour, ISO 8601 (default today 00:00 UTC)")
    ] = None,
    live: Annotated[bool, typer.Option(help="drip archives in real time; Ctrl-C stops")] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bar, a one-line summary")] = False,
    metadata: Annotated[Path | None, typer.Option(help="metadata folder")] = None,
) -> None:
    """Write Faker facility archives for every feed, with a ground-truth file."""
    root = (out or landing_root()).rstrip("/")
    options = SimulationOptions(
        out=root,
        truth=truth or f"{root}/{TRUTH_NAME}",
        facilities=facilities,
        hours=hours,
        rate=rate,
        faults=faults,
        fault_kinds=_names(fault_kinds),
        seed=seed if seed is not None else random.SystemRandom().randrange(2**31),
        feeds=_names(feeds),
        size_scale=size_scale,
        encryption=_encryption(encryption),
        start=_start(start),
        live=live,
    )
    summary = _run(options, metadata=metadata, progress=not quiet)
    console = Console()
    if quiet:
        console.print(_one_line(summary), highlight=False, soft_wrap=True)
    else:
        console.print(_table(summary))


def _run(options: SimulationOptions, *, metadata: Path | None, progress: bool) -> SimulationSummary:
    """Simulate; an option out of range exits 2 naming it, any other refusal exits 1."""
    try:
        catalog = load_catalog(metadata or metadata_root())
        return simulate(catalog, options, progress=progress and Console().is_terminal)
    except SimulationOptionError as exc:
        message = str(exc).removeprefix(f"--{exc.option}: ")
        raise typer.BadParameter(message, param_hint=f"'--{exc.option}'") from None
    except LakehouseError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _names(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(name.strip() for name in value.split(",") if name.strip())


def _encryption(value: str) -> Encryption:
    if value not in ENCRYPTIONS:
        raise typer.BadParameter(
            f"{value!r} is not one of {', '.join(ENCRYPTIONS)}", param_hint="'--encryption'"
        )
    return value  # type: ignore[return-value]


def _start(value: str | None) -> datetime:
    if value is None:
        return today_utc()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 date or time, e.g. 2025-01-15T08:00",
            param_hint="'--start'",
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _one_line(summary: SimulationSummary) -> str:
    stopped = " (stopped)" if summary.interrupted else ""
    return (
        f"simulated {summary.archives:,} archives{stopped}, {summary.data_files:,} data files, "
        f"{summary.total_rows():,} rows, {sum(summary.faults.values()):,} faults, "
        f"{summary.bytes / 1e6:,.1f} MB in {summary.seconds:,.1f} s (seed {summary.seed}); "
        f"truth: {summary.truth}"
    )


def _table(summary: SimulationSummary) -> RichTable:
    table = RichTable("what", "count", title="simulation", show_header=False)
    stopped = " (stopped by Ctrl-C)" if summary.interrupted else ""
    table.add_row("archives", f"{summary.archives:,}{stopped}")
    table.add_row("  quarantine expected", f"{summary.quarantined:,}")
    table.add_row("  re-sent copies", f"{summary.resent:,}")
    table.add_row("data files", f"{summary.data_files:,}")
    for feed, tables in sorted(summary.rows.items()):
        bad = summary.bad_rows.get(feed, {})
        for name, rows in tables.items():
            table.add_row(f"rows {feed}.{name}", f"{rows:,} good, {bad.get(name, 0):,} bad")
    for fault, count in sorted(summary.faults.items()):
        reason = FAULT_KINDS[fault].reason or "loads (rescued)"
        table.add_row(f"fault {fault}", f"{count:,} → {reason}")
    table.add_row("bytes", f"{summary.bytes:,}")
    rate = summary.archives / summary.seconds if summary.seconds else 0.0
    table.add_row("seconds", f"{summary.seconds:,.1f} ({rate:,.1f} archives/s)")
    table.add_row("seed", str(summary.seed))
    table.add_row("truth", summary.truth)
    return table
