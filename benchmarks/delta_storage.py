"""Delta storage benchmark: our Spark + delta-rs layer against the plain alternatives.

    python -m benchmarks.delta_storage [--rows 2000000] [--merge-rows 100000]

Measured in one run on the same data (15 columns): our distributed write against
`deltalake.write_deltalake` of the same Arrow table on the driver; our read against
`spark.read.parquet` of the same files; a merge of upserts (half updates, half inserts) by our
Spark copy-on-write against delta-rs's own merge on the driver; and the JVM Delta connector
(delta-spark 4.3.1 on its own Spark 4.1.1, see `benchmarks.jvm_delta`) writing, merging and
reading the same files. Peak RSS is the high-water mark of the Python driver and of the driver
JVM (which also runs the tasks in local mode), reset before each step.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from benchmarks.jvm_delta import DELTA_VERSION, PYSPARK_VERSION, run_steps
from benchmarks.memory import is_jvm
from lake_assets.storage.lake import Lake
from lake_assets.storage.spark import build_session


@dataclass(frozen=True)
class Step:
    """One timed step: seconds, the driver's peak RSS, and how far the step raised the peak
    RSS of the Python driver and of the driver JVM above where they stood before it (MiB)."""

    name: str
    seconds: float
    driver_peak: float
    driver_growth: float
    jvm_growth: float


class Memory:
    """Resident memory of this process and of the driver JVM, from /proc (Linux)."""

    def __init__(self, jvm_pid: int) -> None:
        self.pids = ("self", str(jvm_pid))

    def reset(self) -> list[float]:
        """Reset the peak (VmHWM) to the current RSS; returns the current RSS of each."""
        for pid in self.pids:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        return [_status(pid, "VmRSS") for pid in self.pids]

    def peaks(self) -> list[float]:
        """The peak RSS of each since the last reset."""
        return [_status(pid, "VmHWM") for pid in self.pids]


def driver_jvm_pid() -> int:
    """The pid of the Spark driver JVM that this process started (a child java process)."""
    jvms = [p for p in psutil.Process().children(recursive=True) if is_jvm(p)]
    if not jvms:
        raise RuntimeError("no Spark driver JVM among this process's children")
    return jvms[0].pid


def _status(pid: str, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(memory: Memory, name: str, work: Callable[[], object]) -> Step:
    """Run `work` once and time it, with the memory it took on the driver side."""
    before = memory.reset()
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    driver, jvm = memory.peaks()
    return Step(name, seconds, driver, driver - before[0], jvm - before[1])


def source_rows(spark: SparkSession, *, start: int, count: int, seq: int) -> DataFrame:
    """`count` rows of 15 columns with ids from `start`: facility, dates, numbers, text."""
    ids = spark.range(start, start + count, numPartitions=4)
    return ids.select(
        F.col("id"),
        F.lit(seq).cast("long").alias("seq"),
        F.format_string("F%04d", F.col("id") % 8000).alias("facility"),
        F.date_add(F.lit("2024-01-01").cast("date"), (F.col("id") % 365).cast("int")).alias(
            "day"),
        F.timestamp_seconds(1_700_000_000 + F.col("id")).alias("seen_at"),
        (F.col("id") % 97).cast("int").alias("ward"),
        *[(F.rand(i) * 1000).alias(f"measure_{i}") for i in range(5)],
        F.sha2(F.col("id").cast("string"), 256).substr(1, 16).alias("patient_key"),
        F.concat(F.lit("code-"), (F.col("id") % 1000).cast("string")).alias("code"),
        F.when(F.col("id") % 7 == 0, None).otherwise(F.lit("note")).alias("note"),
        F.md5(F.col("id").cast("string")).alias("checksum"),
    )


def upserts(spark: SparkSession, *, rows: int, count: int) -> DataFrame:
    """`count` upserts: half update existing ids (newer seq), half insert new ids."""
    step = max(1, rows // (count // 2))
    updates = source_rows(spark, start=0, count=rows, seq=2).filter(F.col("id") % step == 0)
    inserts = source_rows(spark, start=rows, count=count - count // 2, seq=1)
    return updates.limit(count // 2).unionByName(inserts)


def run(spark: SparkSession, work: Path, *, rows: int, merge_rows: int) -> list[Step]:
    """Every step of the benchmark, in order."""
    memory = Memory(driver_jvm_pid())
    source_rows(spark, start=0, count=rows, seq=1).write.parquet(str(work / "staged"))
    upserts(spark, rows=rows, count=merge_rows).write.parquet(str(work / "upserts"))
    lake = Lake(root=str(work / "lake"))
    _warm_up(spark, lake)
    ours, theirs = lake.ref("bench/ours"), str(work / "lake" / "bench" / "delta_rs")
    staged = spark.read.parquet(str(work / "staged"))
    steps = [measure(memory, "write: ours (Spark executors + delta-rs commit)",
                     lambda: lake.write(staged, table="bench/ours"))]
    arrow: list = []
    steps.append(measure(memory, "write: load Arrow table onto the driver",
                         lambda: arrow.append(pq.read_table(work / "staged"))))
    steps.append(measure(memory, "write: deltalake.write_deltalake on the driver",
                         lambda: write_deltalake(theirs, arrow[0])))
    arrow.clear()
    steps.append(measure(memory, "write: reference, Spark plain Parquet",
                         lambda: staged.write.parquet(str(work / "plain"))))
    files = DeltaTable(ours.uri).file_uris()
    steps.append(measure(memory, "read: ours (delta_rs data source, all columns)",
                         lambda: _consume(lake.read("bench/ours"))))
    steps.append(measure(memory, "read: spark.read.parquet of the same files",
                         lambda: _consume(spark.read.parquet(*files))))
    changes = spark.read.parquet(str(work / "upserts"))
    steps.append(measure(memory, f"merge {merge_rows:,} upserts: ours (Spark copy-on-write)",
                         lambda: lake.merge(changes, table="bench/ours", keys=["id"],
                                            sequence_by="seq")))
    steps.append(measure(memory, f"merge {merge_rows:,} upserts: delta-rs merge on the driver",
                         lambda: _delta_rs_merge(theirs, work / "upserts")))
    _check_same(lake, theirs)
    return steps


def delta_spark_steps(work: Path, *, rows: int, merge_rows: int, master: str,
                      driver_memory: str) -> list[Step]:
    """The same write, read and merge by delta-spark, in its own Spark process."""
    table = str(work / "lake" / "bench" / "delta_spark")
    warm = str(work / "lake" / "bench" / "delta_spark_warm_up")
    label = f"delta-spark {DELTA_VERSION} (Spark {PYSPARK_VERSION})"
    # As for ours (`_warm_up`): load classes and start Python workers before timing.
    warm_up = [{"op": "write", "path": warm, "generate": [0, 1000, 1]},
               {"op": "count", "path": warm},
               {"op": "merge", "path": warm, "generate": [500, 1000, 2], "keys": ["id"]}]
    results = run_steps([
        *warm_up,
        {"op": "write", "path": table, "parquet": str(work / "staged")},
        {"op": "count", "path": table},
        {"op": "merge", "path": table, "parquet": str(work / "upserts"), "keys": ["id"]},
        {"op": "count", "path": table},
        {"op": "scan", "path": str(work / "staged")},
    ], master=master, driver_memory=driver_memory)
    results = results[len(warm_up):]
    inserted = merge_rows - merge_rows // 2
    if (results[2]["count"], results[4]["count"]) != (rows, rows + inserted):
        raise AssertionError(f"delta-spark's table holds {results[4]['count']} rows after the "
                             f"merge, not {rows + inserted}")
    names = [f"write: {label}", f"read: {label}, all columns",
             f"merge {merge_rows:,} upserts: {label}", f"read after merge: {label}",
             f"read: reference, Spark {PYSPARK_VERSION} plain Parquet, same process"]
    return [Step(name, r["seconds"], r["python_peak_mib"],
                 r["python_peak_mib"] - r["python_before_mib"],
                 r["jvm_peak_mib"] - r["jvm_before_mib"])
            for name, r in zip(names, results[1:], strict=True)]


def _warm_up(spark: SparkSession, lake: Lake) -> None:
    """Start Python workers and load modules once, so steps measure steady-state work."""
    tiny = source_rows(spark, start=0, count=1000, seq=1)
    lake.write(tiny, table="bench/warm_up")
    _consume(lake.read("bench/warm_up"))
    lake.merge(tiny, table="bench/warm_up", keys=["id"], sequence_by="seq",
               rewrite_below_bytes=0)


def _consume(df: DataFrame) -> None:
    df.write.format("noop").mode("overwrite").save()


def _delta_rs_merge(uri: str, source: Path) -> None:
    table = DeltaTable(uri)
    (table.merge(pq.read_table(source), predicate="t.id = s.id", source_alias="s",
                 target_alias="t")
     .when_matched_update_all(predicate="s.seq > t.seq")
     .when_not_matched_insert_all()
     .execute())


def _check_same(lake: Lake, theirs: str) -> None:
    ours = lake.read("bench/ours").agg(F.count("*"), F.sum("seq")).first()
    other = DeltaTable(theirs).to_pyarrow_dataset().to_table(columns=["seq"])
    if (ours[0], ours[1]) != (other.num_rows, sum(other.column("seq").to_pylist())):
        raise AssertionError("the two merged tables differ")


def render(steps: list[Step], *, rows: int) -> str:
    """The steps as a fixed-width table."""
    width = max(len(s.name) for s in steps)
    load = Path("/proc/loadavg").read_text().split()[0]
    lines = [f"{rows:,} rows x 15 columns, {os.cpu_count()} cores, load average {load}",
             f"{'step':<{width}}  {'seconds':>7}  {'driver peak MiB':>15}  {'driver +MiB':>11}"
             f"  {'JVM +MiB':>8}"]
    lines += [f"{s.name:<{width}}  {s.seconds:>7.2f}  {s.driver_peak:>15.0f}"
              f"  {s.driver_growth:>11.0f}  {s.jvm_growth:>8.0f}" for s in steps]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--merge-rows", type=int, default=100_000)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--no-delta-spark", action="store_true",
                        help="skip the JVM Delta connector's steps")
    parser.add_argument("--json", type=Path, help="also write the steps here as JSON")
    args = parser.parse_args(argv)
    conf = {"spark.driver.memory": args.driver_memory, "spark.sql.shuffle.partitions": "4",
            "spark.ui.showConsoleProgress": "false"}
    spark = build_session(master=args.master, app_name="delta-storage-benchmark",
                          ui_enabled=False, conf=conf)
    work = Path(tempfile.mkdtemp(prefix="delta-bench-"))
    try:
        steps = run(spark, work, rows=args.rows, merge_rows=args.merge_rows)
        spark.stop()
        if not args.no_delta_spark:
            steps += delta_spark_steps(work, rows=args.rows, merge_rows=args.merge_rows,
                                       master=args.master, driver_memory=args.driver_memory)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        spark.stop()
    print(render(steps, rows=args.rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in steps], indent=2))


if __name__ == "__main__":
    main()
