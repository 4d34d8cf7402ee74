"""Steps for the JVM Delta connector, run by the interpreter of `benchmarks.jvm_delta`.

    python jvm_delta_job.py STEPS.json RESULT.json

Imports only pyspark and delta-spark (this runs in its own virtualenv, not the project's).
Each step is a dict with `op`: `write` (rows or a generated range to a path), `merge` (upsert by
keys, newest `seq` wins), `delete`, `read` (rows back as JSON values, at a version if given),
`count`, `optimize`, `vacuum`, `scan` (plain Parquet, a reference). Each result has the step's
seconds and the driver JVM's and this process's peak RSS in MiB.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def session(jars: str, master: str, memory: str) -> SparkSession:
    """A local session with the Delta extension and catalog, UTC."""
    return (SparkSession.builder.master(master).appName("jvm-delta")
            .config("spark.jars", jars)
            .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
            .config("spark.sql.catalog.spark_catalog",
                    "org.apache.spark.sql.delta.catalog.DeltaCatalog")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.memory", memory)
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.databricks.delta.retentionDurationCheck.enabled", "false")
            .getOrCreate())


def generated(spark: SparkSession, start: int, count: int, seq: int) -> DataFrame:
    """The benchmark's 15 columns (as `benchmarks.delta_storage.source_rows`)."""
    ids = spark.range(start, start + count, numPartitions=4)
    return ids.select(
        F.col("id"), F.lit(seq).cast("long").alias("seq"),
        F.format_string("F%04d", F.col("id") % 8000).alias("facility"),
        F.date_add(F.lit("2024-01-01").cast("date"), (F.col("id") % 365).cast("int"))
        .alias("day"),
        F.timestamp_seconds(1_700_000_000 + F.col("id")).alias("seen_at"),
        (F.col("id") % 97).cast("int").alias("ward"),
        *[(F.rand(i) * 1000).alias(f"measure_{i}") for i in range(5)],
        F.sha2(F.col("id").cast("string"), 256).substr(1, 16).alias("patient_key"),
        F.concat(F.lit("code-"), (F.col("id") % 1000).cast("string")).alias("code"),
        F.when(F.col("id") % 7 == 0, None).otherwise(F.lit("note")).alias("note"),
        F.md5(F.col("id").cast("string")).alias("checksum"),
    )


def frame(spark: SparkSession, step: dict[str, Any]) -> DataFrame:
    """The step's source: literal `rows` with a DDL `schema`, `parquet` files, or `generate`."""
    if "rows" in step:
        kinds = [f.dataType.typeName() for f in
                 spark.createDataFrame([], step["schema"]).schema.fields]
        return spark.createDataFrame([_typed(r, kinds) for r in step["rows"]], step["schema"])
    if "parquet" in step:
        return spark.read.parquet(step["parquet"])
    start, count, seq = step["generate"]
    return generated(spark, start, count, seq)


def _typed(row: list[Any], kinds: list[str]) -> tuple:
    out = []
    for value, kind in zip(row, kinds, strict=True):
        if value is None:
            out.append(None)
        elif kind == "date":
            out.append(dt.date.fromisoformat(value))
        elif kind == "timestamp":
            out.append(dt.datetime.fromisoformat(value))
        elif kind.startswith("decimal"):
            out.append(decimal.Decimal(value))
        else:
            out.append(value)
    return tuple(out)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat()
    if isinstance(value, dt.date | decimal.Decimal):
        return str(value)
    return value


def run(spark: SparkSession, step: dict[str, Any]) -> dict[str, Any]:
    """Do one step; returns what it read or wrote."""
    op, path = step["op"], step["path"]
    if op == "write":
        writer = frame(spark, step).write.format("delta").mode(step.get("mode", "append"))
        if step.get("partition_by"):
            writer = writer.partitionBy(*step["partition_by"])
        if step.get("merge_schema"):
            writer = writer.option("mergeSchema", "true")
        for key, value in step.get("properties", {}).items():
            writer = writer.option(key, value)
        writer.save(path)
        return {}
    if op == "merge":
        if step.get("merge_schema"):
            spark.conf.set("spark.databricks.delta.schema.autoMerge.enabled", "true")
        on = " AND ".join(f"t.{k} = s.{k}" for k in step["keys"])
        (DeltaTable.forPath(spark, path).alias("t").merge(frame(spark, step).alias("s"), on)
         .whenMatchedUpdateAll(condition="s.seq > t.seq").whenNotMatchedInsertAll().execute())
        return {}
    if op == "delete":
        DeltaTable.forPath(spark, path).delete(step["where"])
        return {}
    if op == "optimize":
        DeltaTable.forPath(spark, path).optimize().executeCompaction()
        return {}
    if op == "vacuum":
        DeltaTable.forPath(spark, path).vacuum(0)
        return {}
    if op == "scan":  # a reference: plain Parquet through this same Spark
        spark.read.parquet(path).write.format("noop").mode("overwrite").save()
        return {}
    reader = spark.read.format("delta")
    if step.get("version") is not None:
        reader = reader.option("versionAsOf", step["version"])
    df = reader.load(path)
    if op == "count":
        df.write.format("noop").mode("overwrite").save()
        return {"count": df.count()}
    return {"columns": df.columns,
            "rows": [[_plain(v) for v in r] for r in df.orderBy(*step["order_by"]).collect()]}


def _peak_mib(pid: int | str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset(pid: int | str) -> float:
    """Reset the peak RSS to the current one; returns the current RSS in MiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    started = time.perf_counter()
    spark = session(plan["jars"], plan.get("master", "local[2]"),
                    plan.get("driver_memory", "1g"))
    jvm = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()  # type: ignore[union-attr]
    results: list[dict[str, Any]] = [{"op": "start", "seconds": time.perf_counter() - started}]
    for step in plan["steps"]:
        before = [_reset(pid) for pid in ("self", jvm)]
        start = time.perf_counter()
        found = run(spark, step)
        results.append(found | {"op": step["op"], "seconds": time.perf_counter() - start,
                                "python_peak_mib": _peak_mib("self"),
                                "python_before_mib": before[0],
                                "jvm_peak_mib": _peak_mib(jvm), "jvm_before_mib": before[1]})
    Path(sys.argv[2]).write_text(json.dumps(results))
    spark.stop()
    os._exit(0)  # the JVM's shutdown hooks already ran in stop()


if __name__ == "__main__":
    main()
