"""Chaos: archives land in waves while run workers, the Spark JVM, Spark Python workers and the
whole Dagster daemon are SIGKILLed at random moments; then the lakehouse must settle by itself.

    python -m benchmarks.chaos [--archives 300] [--kills 20] [--json chaos.json]

Prints kills by type; archives committed, dead-lettered, stuck and duplicated; and the time
from the last kill until every landed archive is in the manifest with no bronze run left.
Runs share one Spark Connect server, as under `make run`. The suite's chaos test runs a small
slice of the same thing (tests/e2e/test_chaos.py).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import dagster as dg
import pyarrow.compute as pc
import typer
from deltalake import DeltaTable
from rich.console import Console
from rich.table import Table

from benchmarks import PROJECT_ROOT
from benchmarks.chaos_harness import KINDS, Kill, Lakehouse
from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.loader import load_catalog, metadata_root
from lake_assets.factory.run_tags import FEED_TAG
from lake_assets.simulate import SimulationOptions, read_truth, simulate
from lake_assets.storage.lake import Lake

SETTLED = {"loaded", "quarantined", "dead_letter"}
UNFINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
              dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
              dg.DagsterRunStatus.CANCELING]
SETTLE_GOAL_S = 300.0
console = Console(width=None if sys.stdout.isatty() else 160)


@dataclass(frozen=True)
class ChaosPlan:
    """What to land and what to kill. `kinds` are drawn at random unless `in_order`."""

    archives: int = 300
    kills: int = 20
    kinds: tuple[str, ...] = KINDS
    in_order: bool = False
    waves: int = 10
    wave_seconds: float = 30.0
    feeds: tuple[str, ...] | None = None
    faults: float = 0.05
    seed: int = 1
    settle_timeout_s: float = 900.0


@dataclass
class ChaosResult:
    """What the run did and how it ended."""

    plan: ChaosPlan
    kills: list[Kill] = field(default_factory=list)
    landed: int = 0
    committed: int = 0
    quarantined: int = 0
    dead_lettered: int = 0
    stuck: int = 0
    duplicated_rows: int = 0
    lost_rows: int = 0
    duplicate_manifest_rows: int = 0
    unhealthy_tables: list[str] = field(default_factory=list)
    settle_seconds: float | None = None
    runs: dict[str, int] = field(default_factory=dict)
    retried_archives: int = 0
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def kills_by_kind(self) -> dict[str, int]:
        """Kills that hit something, by kind."""
        return dict(Counter(k.kind for k in self.kills if k.pid is not None))


def run_chaos(workdir: Path, plan: ChaosPlan, *, metadata: Path | None = None) -> ChaosResult:
    """Land `plan.archives` in waves under a daemon and a Connect server, kill as planned, wait
    until the lakehouse settles (or `settle_timeout_s`), and measure. `workdir` is emptied."""
    shutil.rmtree(workdir, ignore_errors=True)
    home, lake, logs = workdir / "dagster_home", workdir / "lake", workdir / "logs"
    for folder in (home, lake / "landing", logs):
        folder.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    catalog = load_catalog(metadata or metadata_root())
    truth = _stage(catalog, workdir / "staging", workdir / "truth.jsonl", plan)
    env = _environment(home, lake, metadata)
    rng = random.Random(plan.seed)
    result = ChaosResult(plan=plan)
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)  # the instance's dagster.yaml reads it
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            house = Lakehouse(env=env, logs=logs, instance=instance)
            try:
                house.start(_free_port())
                last_kill = _land_and_kill(house, workdir / "staging", lake / "landing", plan,
                                           rng, result)
                result.settle_seconds = _settle(house, lake, truth, plan, since=last_kill)
            finally:
                house.stop()
            _measure(result, catalog, instance, lake, truth)
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous
    result.load_average = os.getloadavg()
    return result


def _stage(catalog: Catalog, staging: Path, truth: Path, plan: ChaosPlan) -> Path:
    """Simulate the archives into `staging`, in arrival hours that are open now."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    simulate(catalog, SimulationOptions(
        out=str(staging), truth=str(truth), facilities=max(4, plan.archives // 10), hours=1,
        rate=plan.archives, faults=plan.faults, seed=plan.seed, size_scale=0.02,
        feeds=plan.feeds, start=start, resend_rate=0.0, late_rate=0.0))
    return truth


def _environment(home: Path, lake: Path, metadata: Path | None) -> dict[str, str]:
    env = dict(os.environ, DAGSTER_HOME=str(home), LAKE_ROOT=str(lake),
               LANDING_ROOT=str(lake / "landing"), PYSPARK_PYTHON=sys.executable,
               SPARK_LOCAL_IP="127.0.0.1", SPARK_MASTER="local[2]")
    env.setdefault("LAKE_SECRETS_FILE", str(PROJECT_ROOT / "dev.secrets"))
    if metadata is not None:
        env["LAKE_METADATA"] = str(metadata)
    return env


def _land_and_kill(house: Lakehouse, staging: Path, landing: Path, plan: ChaosPlan,
                   rng: random.Random, result: ChaosResult) -> float:
    """Move the staged archives into the landing zone in waves while kills go off at random
    moments over the landing period; returns when the last kill went off (monotonic s)."""
    files = sorted(p for p in staging.rglob("*") if p.is_file() and not p.name.startswith("_"))
    waves = [files[i::plan.waves] for i in range(plan.waves)]
    span = plan.waves * plan.wave_seconds
    moments = sorted(rng.uniform(0.1 * span, span) for _ in range(plan.kills))
    kinds = [plan.kinds[i % len(plan.kinds)] if plan.in_order else rng.choice(plan.kinds)
             for i in range(plan.kills)]
    began, last_kill, landed = time.monotonic(), time.monotonic(), 0
    while landed < len(waves) or moments:
        elapsed = time.monotonic() - began
        if landed < len(waves) and elapsed >= landed * plan.wave_seconds:
            for path in waves[landed]:
                target = landing / path.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)  # an archive appears whole
            landed += 1
        elif moments and elapsed >= moments[0]:
            moments.pop(0)
            kill = house.kill(kinds[len(result.kills)], rng)
            result.kills.append(kill)
            last_kill = time.monotonic()
            console.print(f"{kill.at:7.1f} s  kill {kill.kind:<13} pid {kill.pid} {kill.note}")
        else:
            house.remember()
            time.sleep(0.5)
    return last_kill


def _settle(house: Lakehouse, lake: Path, truth: Path, plan: ChaosPlan, *,
            since: float) -> float | None:
    """Seconds from `since` until every landed archive is settled in the manifest and no
    bronze run is left; None if that did not happen within the plan's timeout."""
    expected = {r.archive for r in read_truth(str(truth))}
    manifest = Lake(root=str(lake)).manifest()
    deadline = since + plan.settle_timeout_s
    while time.monotonic() < deadline:
        house.remember()
        rows = manifest.rows().to_pylist()
        settled = {r["path"] for r in rows if r["status"] in SETTLED}
        live = house.instance.get_run_records(dg.RunsFilter(statuses=UNFINISHED))
        if expected <= settled and not any(FEED_TAG in r.dagster_run.tags for r in live):
            return round(time.monotonic() - since, 1)
        time.sleep(3)
    return None


def _measure(result: ChaosResult, catalog: Catalog, instance: dg.DagsterInstance, lake: Path,
             truth_file: Path) -> None:
    truth = {r.archive: r for r in read_truth(str(truth_file))}
    rows = Lake(root=str(lake)).manifest().rows().to_pylist()
    status = {r["path"]: r["status"] for r in rows}
    result.landed = len(truth)
    result.duplicate_manifest_rows = len(rows) - len(status)
    result.committed = sum(s in ("loaded", "quarantined") for s in status.values())
    result.quarantined = sum(s == "quarantined" for s in status.values())
    result.dead_lettered = sum(s == "dead_letter" for s in status.values())
    result.stuck = sum(status.get(path) not in SETTLED for path in truth)
    result.retried_archives = sum((r["attempts"] or 1) > 1 for r in rows)
    for feed in catalog.feeds:
        for table in feed.tables:
            actual = _rows_by_archive(lake / "bronze" / feed.name / table.name, result)
            for path, record in truth.items():
                want = record.rows.get(table.name, 0) if status.get(path) == "loaded" else 0
                got = actual.get(path, 0)
                result.duplicated_rows += max(0, got - want)
                result.lost_rows += max(0, want - got)
    runs = instance.get_run_records()
    result.runs = dict(Counter(r.dagster_run.status.value for r in runs
                               if FEED_TAG in r.dagster_run.tags))


def _rows_by_archive(path: Path, result: ChaosResult) -> dict[str, int]:
    if not DeltaTable.is_deltatable(str(path)):
        return {}
    try:
        table = DeltaTable(str(path)).to_pyarrow_table(columns=["_source_archive"])
    except Exception as exc:  # a table that cannot be read is what this counts
        result.unhealthy_tables.append(f"{path.name}: {type(exc).__name__}")
        return {}
    counts = pc.value_counts(table.column("_source_archive")).to_pylist()
    return {c["values"]: c["counts"] for c in counts}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def print_report(result: ChaosResult) -> None:
    """The kills and outcome tables."""
    kills = Table("kill", "hit", "missed", title="kills by type")
    for kind in KINDS:
        hits = sum(k.kind == kind and k.pid is not None for k in result.kills)
        missed = sum(k.kind == kind and k.pid is None for k in result.kills)
        kills.add_row(kind, str(hits), str(missed))
    console.print(kills)
    settle = result.settle_seconds
    outcome = Table("measure", "value", "goal", title="outcome")
    for name, value, goal in (
        ("archives landed", result.landed, ""),
        ("committed (loaded + quarantined)", result.committed, ""),
        ("  of which quarantined (judged bad)", result.quarantined, ""),
        ("dead-lettered", result.dead_lettered, ""),
        ("retried (took more than one run)", result.retried_archives, ""),
        ("stuck (not settled)", result.stuck, "0"),
        ("rows duplicated", result.duplicated_rows, "0"),
        ("rows lost", result.lost_rows, "0"),
        ("archives recorded twice in the manifest", result.duplicate_manifest_rows, "0"),
        ("Delta tables unreadable", len(result.unhealthy_tables), "0"),
        ("last kill to settled (s)", "never" if settle is None else settle,
         f"<= {SETTLE_GOAL_S:.0f}"),
        ("bronze runs by status", json.dumps(result.runs), ""),
        ("load average (1, 5, 15 min)", " ".join(f"{x:.2f}" for x in result.load_average), ""),
    ):
        outcome.add_row(name, str(value), goal)
    console.print(outcome)


def main(
    archives: Annotated[int, typer.Option(help="archives to land")] = 300,
    kills: Annotated[int, typer.Option(help="SIGKILLs at random moments")] = 20,
    waves: Annotated[int, typer.Option(help="landing waves")] = 10,
    wave_seconds: Annotated[float, typer.Option(help="seconds between waves")] = 30.0,
    seed: Annotated[int, typer.Option(help="simulator and kill seed")] = 1,
    json_path: Annotated[Path | None, typer.Option("--json", help="write results here")] = None,
    workdir: Annotated[Path | None, typer.Option(help="[default: a temporary folder]")] = None,
) -> None:
    """Land archives under random kills of every kind and report how the lakehouse settled."""
    os.environ.setdefault("LAKE_SECRETS_FILE", str(PROJECT_ROOT / "dev.secrets"))  # simulator
    root = workdir or Path(tempfile.mkdtemp(prefix="chaos-benchmark-"))
    plan = ChaosPlan(archives=archives, kills=kills, waves=waves, wave_seconds=wave_seconds,
                     seed=seed)
    try:
        result = run_chaos(root, plan)
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    print_report(result)
    if json_path is not None:
        report: dict[str, Any] = asdict(result)
        report["kills_by_kind"] = result.kills_by_kind()
        json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        console.print(f"wrote {json_path}")


if __name__ == "__main__":
    typer.run(main)
