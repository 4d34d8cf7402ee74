"""Soak: 14 days of micro-batch arrivals, with and without table maintenance.

    python -m benchmarks.soak [--days 14] [--batches 60] [--rows 200] [--json FILE]

Each simulated day lands `--batches` micro-batches of lab results into bronze, one commit each,
through the lake's own writer (files written and committed as a bronze run does, without Spark
tasks), then merges the day into silver and refreshes the `lab_turnaround` projection, as the
automation would. The "maintained" lake then runs the upkeep the `lake_maintenance` job runs:
the day just sealed is compacted, and the logs checkpointed and vacuumed; time-based
retention is compressed like the days (`compress_retention`). Per day it reports:
files per table, the time to open bronze with delta-rs and to read a day of it with Spark, the
silver merge's time and the gold query's time (opens and reads as medians of a few tries).
Goal: with maintenance, every figure on the last day within 1.5x of the first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from pyspark.sql import functions as F
from rich.console import Console
from rich.table import Table

from benchmarks import PROJECT_ROOT
from lake_assets.catalog.loader import load_catalog, metadata_root
from lake_assets.factory.gold import gold_specs, refresh_projection
from lake_assets.factory.maintenance import upkeep_specs
from lake_assets.factory.silver import silver_sources, update_silver
from lake_assets.storage.batch import ARRIVAL, bronze_row_schema
from lake_assets.storage.delta import write_batches
from lake_assets.storage.lake import Lake
from lake_assets.storage.spark import build_session
from lake_assets.storage.upkeep import UpkeepSpec, upkeep

FEED, TABLE = "lab_results", "lab_results"
BRONZE = ("bronze", FEED, TABLE)
FIRST_DAY = dt.date(2026, 1, 5)
# A day's timings move with the shared machine's slow spells; the ratios compare the medians of
# the first and last few days, beside the single days.
EDGE_DAYS = 3
FIGURES = ("bronze_files_per_day", "silver_files", "open_s", "spark_read_s", "merge_s",
           "gold_s")
console = Console(width=None if sys.stdout.isatty() else 160)


def batch_rows(schema: pa.Schema, day: dt.date, batch: int, rows: int,
               rng: random.Random) -> pa.Table:
    """One micro-batch of bronze lab results for `day`, with the lineage columns filled."""
    base = dt.datetime.combine(day, dt.time(), dt.UTC)
    records = []
    for i in range(rows):
        facility = f"FAC{rng.randrange(40):05d}"
        collected = base + dt.timedelta(minutes=rng.randrange(1, 1400))
        records.append({
            "result_id": f"R{day:%m%d}{batch:04d}{i:05d}", "facility_code": facility,
            "order_id": f"O{i:07d}", "mrn": f"M{rng.randrange(5000):07d}",
            "test_code": "2345-7", "value": rng.uniform(50, 200), "status": "F",
            "collected_at": collected.replace(tzinfo=None),
            "resulted_at": (collected + dt.timedelta(minutes=rng.randrange(5, 600)))
            .replace(tzinfo=None),
            "_facility_id": facility, "_source_archive": f"{day}/{batch}.zip",
            "_source_member": "results.csv", "_archive_sha256": "0" * 64,
            "_ingested_at": base, "_batch_id": f"{day:%Y%m%d}-{batch:07d}", ARRIVAL: day,
        })
    return pa.Table.from_pylist(records, schema=schema)


def land_batch(lake: Lake, rows: pa.Table, batch_id: str) -> None:
    """One bronze commit of `rows`, as a bronze run makes it: files, then one transaction."""
    plan = lake.plan_files(BRONZE, rows.schema, partition_by=[ARRIVAL],
                           app_txn=(f"{'/'.join(BRONZE)}/{batch_id}", 1))
    lake.commit_files(plan, write_batches(rows.to_batches(), plan.spec))


def median_time(action: Callable[[], object], times: int) -> float:
    """The median wall time of `times` calls of `action`: one call is a few milliseconds, which
    one slow spell of a shared machine can double."""
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        spent.append(time.perf_counter() - started)
    return statistics.median(spent)


def measure_day(lake: Lake, day: dt.date) -> dict[str, float]:
    """The day's figures: files, and the median of 5 table opens and 3 Spark reads of the day."""
    bronze_uri = lake.ref(BRONZE).uri
    files = pa.table(DeltaTable(bronze_uri).get_add_actions(flatten=True))
    opened = median_time(lambda: DeltaTable(bronze_uri).get_add_actions(flatten=True), 5)
    days = len(set(files.column(f"partition.{ARRIVAL}").to_pylist()))
    spark_read = median_time(
        lambda: lake.read(BRONZE).where(F.col(ARRIVAL) == F.lit(day)).count(), 3)
    silver_files = len(DeltaTable(lake.ref(("silver", TABLE)).uri).file_uris())
    return {"bronze_files": files.num_rows, "bronze_files_per_day": files.num_rows / days,
            "silver_files": silver_files, "open_s": opened, "spark_read_s": spark_read}


def compress_retention(lake: Lake, kept: list[UpkeepSpec], *, day_s: float) -> None:
    """Scale each table's tombstone retention to the soak's compressed days.

    A checkpoint keeps the files a compaction removed for `delta.deletedFileRetentionDuration`
    of wall time (default a week), so time travel can still read them. In production a week is
    7 days of compactions and the checkpoint levels off there; a soak day lasting `day_s`
    seconds would otherwise keep every compaction's tombstones and measure a log no real table
    has. The retention becomes the same number of simulated days: the table's vacuum retention
    in days times `day_s`."""
    for spec in kept:
        seconds = max(1, round(spec.vacuum_hours / 24 * day_s))
        DeltaTable(lake.ref(spec.table).uri).alter.set_table_properties(
            {"delta.deletedFileRetentionDuration": f"interval {seconds} seconds"})


def run(work: Path, *, days: int, batches: int, rows: int, maintained: bool) -> list[dict]:
    """Every day of one soak, with or without maintenance; returns the figures per day."""
    spark = build_session(master="local[2]", conf={"spark.ui.enabled": "false"})
    lake = Lake(root=str(work / "lake"), session_factory=lambda: spark)
    catalog = load_catalog(metadata_root())
    source = next(s for s in silver_sources(catalog) if s.name == TABLE)
    gold = next(g for g in gold_specs(catalog) if g.projection.name == "lab_turnaround")
    kept = [spec for _, spec in upkeep_specs(catalog)
            if spec.table in (BRONZE, ("silver", TABLE), ("gold", "lab_turnaround"))]
    schema = bronze_row_schema(catalog.feed(FEED), TABLE)
    rng = random.Random(7)
    figures = []
    for number in range(-1, days):  # day 0 warms the JVM and workers up; it is not reported
        day = FIRST_DAY + dt.timedelta(days=number + 1)
        day_began = time.perf_counter()
        for batch in range(batches):
            rows_of_batch = batch_rows(schema, day, batch, rows, rng)
            land_batch(lake, rows_of_batch, f"{day:%Y%m%d}-{batch:07d}")
        started = time.perf_counter()
        update_silver(lake, source, date=day.isoformat())
        merged = time.perf_counter() - started
        started = time.perf_counter()
        refresh_projection(lake, catalog, gold, day=day.isoformat())
        gold_s = time.perf_counter() - started
        if maintained:
            for spec in kept:
                upkeep(lake, spec, sealed_before=day + dt.timedelta(days=1), tidy=True)
            if number == -1:
                compress_retention(lake, kept, day_s=time.perf_counter() - day_began)
        found = {"day": number + 1, **measure_day(lake, day), "merge_s": merged,
                 "gold_s": gold_s}
        console.print(f"{'maintained' if maintained else 'unmaintained'}: {found}", style="dim")
        if number >= 0:
            figures.append(found)
    return figures


def _ratio(last: list[float], first: list[float]) -> float:
    base = statistics.median(first)
    return statistics.median(last) / base if base else 0.0


def report(results: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Print the per-day table of each soak and the last-to-first ratios; returns the ratios."""
    ratios = {}
    for name, days in results.items():
        table = Table("day", *FIGURES, title=f"soak, {name}")
        for day in days:
            table.add_row(str(day["day"]), *(f"{day[k]:.3f}" if k.endswith("_s") else
                                             f"{day[k]:g}" for k in FIGURES))
        console.print(table)
        first, last = days[:EDGE_DAYS], days[-EDGE_DAYS:]
        ratios[name] = {k: _ratio([d[k] for d in last], [d[k] for d in first]) for k in FIGURES}
        ratios[f"{name}, single days"] = {k: _ratio([days[-1][k]], [days[0][k]]) for k in FIGURES}
    summary = Table("soak", *(f"{k} last/first" for k in FIGURES),
                    title=f"goal: <= 1.5x (medians of the first and last {EDGE_DAYS} days, and "
                          "the first and last day alone)")
    for name, values in ratios.items():
        summary.add_row(name, *(f"{values[k]:.2f}" for k in FIGURES))
    console.print(summary)
    return ratios


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--batches", type=int, default=60, help="micro-batches per day")
    parser.add_argument("--rows", type=int, default=200, help="rows per micro-batch")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("LAKE_SECRETS_FILE", str(PROJECT_ROOT / "dev.secrets"))
    results: dict[str, list[dict[str, Any]]] = {}
    for maintained in (True, False):
        work = Path(tempfile.mkdtemp(prefix="lake-soak-"))
        try:
            name = "maintained" if maintained else "unmaintained"
            results[name] = run(work, days=args.days, batches=args.batches, rows=args.rows,
                                maintained=maintained)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    ratios = report(results)
    out = args.json or PROJECT_ROOT / "benchmarks" / "results" / "soak.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"load": os.getloadavg(), "args": vars(args) | {"json": str(out)},
                               "days": results, "ratios": ratios}, indent=2, default=str))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
