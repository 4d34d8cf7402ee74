"""`lakehouse plan`: the metadata change in the working copy, planned against a git ref.

    lakehouse plan                       # working metadata/ against HEAD
    lakehouse plan --base origin/main    # what a pull request changes
    lakehouse plan --base-dir /srv/deployed/metadata --json

Exits 1 while a breaking change is not acknowledged in the changed file.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.loader import load_catalog, metadata_root
from lake_assets.catalog.models import Owners
from lake_assets.catalog.plan import Plan, build_plan
from lake_assets.errors import LakehouseError, PlanBaseError

console = Console(width=None if sys.stdout.isatty() else 200)


def base_catalog(metadata: Path, ref: str, scratch: Path) -> Catalog:
    """The catalog of `metadata` as committed at git `ref`; empty if the folder is not there.

    Raises PlanBaseError when `metadata` is not in a git checkout or `ref` is unknown, and
    MetadataError when the base itself does not validate.
    """
    folder = metadata.resolve()
    top = _git(folder, "rev-parse", "--show-toplevel").decode().strip()
    relative = folder.relative_to(top).as_posix()
    listed = _git(Path(top), "ls-tree", "-d", "--name-only", ref, "--", relative).decode().strip()
    if not listed:
        return Catalog(scratch, (), (), Owners.model_construct(teams={}), {})
    archive = _git(Path(top), "archive", "--format=tar", ref, "--", relative)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(scratch, filter="data")
    return load_catalog(scratch / relative)


def _git(where: Path, *args: str) -> bytes:
    done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, check=False)
    if done.returncode != 0:
        raise PlanBaseError(f"git {' '.join(args[:2])}: {done.stderr.decode().strip()}")
    return done.stdout


def print_plan(plan: Plan, *, base: str) -> None:
    """The plan as a few readable tables."""
    console.print(Text(f"metadata plan against {base}: {len(plan.changes)} asset(s) change",
                       style="bold"))
    if plan.changes:
        table = RichTable("", "asset", "why", show_header=False, box=None)
        marks = {"added": "+", "removed": "-", "changed": "~"}
        for change in plan.changes:
            table.add_row(marks[change.change], change.asset, "; ".join(change.reasons))
        console.print(table)
    if plan.breaking:
        table = RichTable("", "breaking change", "what", "acknowledged", title="breaking")
        for found in plan.breaking:
            mark = Text("✓", "green") if found.acknowledged else Text("✗", "red")
            what = f"[PHI] {found.message}" if found.phi else found.message
            table.add_row(mark, found.id, Text(what), Text(found.acknowledged or "no"))
        console.print(table)
    if plan.backfills:
        table = RichTable("asset", "partitions", "why", title="backfills")
        for backfill in plan.backfills:
            table.add_row(backfill.asset, backfill.partitions, backfill.why)
        console.print(table)
    if plan.teams:
        table = RichTable("team", "why", title="who to ask")
        for team, roles in plan.teams.items():
            table.add_row(team, "; ".join(f"{role} {', '.join(keys)}"
                                          for role, keys in roles.items()))
        console.print(table)
    if plan.blocking:
        console.print(Text(
            f"{len(plan.blocking)} breaking change(s) not acknowledged. Accept one in the changed"
            " file with:\n  acknowledge:\n    - {change: \"<id>\", reason: \"<why it is safe>\"}",
            style="red"))


def register(app: typer.Typer) -> None:
    """Add `plan` to the `lakehouse` command."""

    @app.command()
    def plan(
        base: Annotated[str, typer.Option(help="git ref of the base metadata")] = "HEAD",
        base_dir: Annotated[Path | None, typer.Option(
            help="a metadata folder to compare with instead of a git ref")] = None,
        metadata: Annotated[Path | None, typer.Option(help="working metadata folder")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    ) -> None:
        """Plan a metadata change: assets changed, breaking changes, backfills, teams."""
        head_root = metadata or metadata_root()
        try:
            head = load_catalog(head_root)
            with tempfile.TemporaryDirectory(prefix="lake-plan-") as scratch:
                before = load_catalog(base_dir) if base_dir else \
                    base_catalog(head_root, base, Path(scratch))
                result = build_plan(before, head)
        except LakehouseError as exc:
            raise typer.Exit(_print_error(exc)) from None
        if as_json:
            typer.echo(result.to_json())
        else:
            print_plan(result, base=str(base_dir or base))
        raise typer.Exit(1 if result.blocking else 0)


def _print_error(error: LakehouseError) -> int:
    Console(stderr=True).print(Text.assemble(("error: ", "bold red"), str(error)))
    return 2
