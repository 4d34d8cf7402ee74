"""A write and a merge through a standalone cluster, run as its own driver process.

    python tests/spark/cluster_job.py spark://127.0.0.1:7077 <lake root> <report.json>

Only one SparkContext may live in a process, so the cluster test runs this script rather than
reusing the shared local session. The report says which processes wrote each Parquet file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from deltalake import DeltaTable
from pyspark.sql import functions as F

from lake_assets.storage.delta import WRITER_KEY
from lake_assets.storage.lake import Lake
from lake_assets.storage.spark import build_session

CONF = {"spark.executor.memory": "512m", "spark.executor.cores": "1", "spark.cores.max": "2",
        "spark.sql.shuffle.partitions": "2", "spark.driver.memory": "512m"}


def process_tree(pid: int) -> list[tuple[int, str]]:
    """`pid` and its ancestors, each with its command line."""
    chain = []
    while pid > 1:
        proc = Path(f"/proc/{pid}")
        if not proc.exists():
            break
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        chain.append((pid, cmdline))
        status = (proc / "status").read_text()
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid")))
    return chain


def writers(table: Path) -> list[dict]:
    """For each data file: the writing process and the Spark JVM it ran under."""
    found = []
    for path in sorted(table.rglob("*.parquet")):
        host, pid = pq.read_schema(path).metadata[WRITER_KEY.encode()].decode().split(":")
        jvm = next(((p, c) for p, c in process_tree(int(pid)) if "java" in c.split(" ")[0]),
                   (None, ""))
        found.append({"file": path.name, "host": host, "pid": int(pid), "jvm_pid": jvm[0],
                      "executor": "CoarseGrainedExecutorBackend" in jvm[1]})
    return found


def main(master: str, root: str, report: str) -> None:
    started = time.monotonic()
    spark = build_session(master=master, app_name="cluster-test", conf=CONF, ui_enabled=False)
    lake = Lake(root=root)
    rows = spark.range(0, 4000, numPartitions=4).select(
        F.col("id"), (F.col("id") % 50).cast("string").alias("facility"),
        F.lit(1).cast("long").alias("seq"), F.lit("v1").alias("value"))
    written = lake.write(rows, table="silver/cluster")
    files_after_write = writers(Path(lake.ref("silver/cluster").uri))
    changes = spark.range(0, 4000, 10, numPartitions=2).select(
        F.col("id"), (F.col("id") % 50).cast("string").alias("facility"),
        F.lit(2).cast("long").alias("seq"), F.lit("v2").alias("value"))
    merged = lake.merge(changes, table="silver/cluster", keys=["id"], sequence_by="seq")
    values = DeltaTable(lake.ref("silver/cluster").uri).to_pyarrow_table().column("value")
    out = {
        "write_version": written.version, "merge_version": merged.version,
        "counts": dict(Counter(values.to_pylist())),
        "driver_pid": os.getpid(),
        "driver_jvm_pid": spark._jvm.java.lang.ProcessHandle.current().pid(),
        "write_files": files_after_write,
        "merge_files": writers(Path(lake.ref("silver/cluster").uri)),
        "executors": spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1,
    }
    out["seconds"] = round(time.monotonic() - started, 1)
    Path(report).write_text(json.dumps(out))
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:4])
