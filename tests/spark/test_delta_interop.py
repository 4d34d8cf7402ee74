"""Tables written here are standard Delta: plain deltalake and DuckDB read the same rows.

DuckDB's own `delta` extension is downloaded at first use, which this machine cannot do, so
DuckDB reads the table twice without it: through delta-rs's Arrow dataset, and straight from
the Parquet files that a replay of the raw `_delta_log` JSON says are live.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from lake_assets.storage.lake import Lake

pytestmark = pytest.mark.spark

SCHEMA = ("id long, small int, name string, amount double, price decimal(10,2), born date,"
          " seen timestamp, active boolean, facility string")
TS = dt.datetime(2024, 3, 1, 12, 30, 45, 123456, tzinfo=dt.UTC)
ROWS = [
    (1, 7, "Zoë", 1.5, Decimal("10.25"), dt.date(1990, 1, 2), TS, True, "F/1 a"),
    (2, None, None, None, None, None, None, None, "F/1 a"),
    (3, -1, "ünïcode ✓", -0.0, Decimal("0.01"), dt.date(2000, 2, 29), TS, False, "F2"),
    (4, 2, "x", 3.25, Decimal("99.99"), dt.date(1970, 1, 1), TS, True, None),
]
UPDATE = (4, 3, "x2", 3.5, Decimal("99.98"), dt.date(1970, 1, 1), TS, False, None)


def live_files(table: Path) -> dict[str, dict]:
    """Replay the JSON log by hand: live file path -> its add action."""
    files: dict[str, dict] = {}
    for log in sorted((table / "_delta_log").glob("*.json")):
        for line in log.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                files[action["add"]["path"]] = action["add"]
            elif "remove" in action:
                files.pop(action["remove"]["path"], None)
    return files


def expected_rows() -> list[tuple]:
    rows = [*ROWS[:3], UPDATE]
    return [(*r[:6], r[6].replace(tzinfo=None) if r[6] else None, *r[7:]) for r in rows]


@pytest.fixture
def table(spark: SparkSession, lake: Lake) -> Path:
    df = spark.createDataFrame(ROWS, SCHEMA)
    lake.write(df, table="gold/interop", partition_by=["facility"])
    update = spark.createDataFrame([UPDATE], SCHEMA)
    lake.merge(update, table="gold/interop", keys=["id"], sequence_by="small")
    return Path(lake.ref("gold/interop").uri)


def test_deltalake_reads_the_same_rows(table: Path, lake: Lake) -> None:
    delta = DeltaTable(str(table))
    assert (delta.protocol().min_reader_version, delta.protocol().min_writer_version) == (1, 2)
    got = delta.to_pyarrow_table().to_pylist()
    ours = [r.asDict() for r in lake.read("gold/interop").collect()]
    key = lambda r: r["id"]  # noqa: E731
    normal = [dict(r, seen=r["seen"].replace(tzinfo=None) if r["seen"] else None) for r in got]
    assert sorted(normal, key=key) == sorted(ours, key=key)
    assert [tuple(r.values()) for r in sorted(ours, key=key)] == expected_rows()


def test_duckdb_reads_the_same_rows(table: Path) -> None:
    dataset = DeltaTable(str(table)).to_pyarrow_dataset()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("interop", dataset)
    via_dataset = con.sql("select * exclude (seen), seen::timestamp from interop order by id")
    assert [r[:8] for r in via_dataset.fetchall()] == [
        (r[0], r[1], r[2], r[3], r[4], r[5], r[7], r[8]) for r in expected_rows()]

    files = live_files(table)
    paths = [str(table / unquote(p)) for p in files]
    counted = con.execute(
        "select filename, count(*) from read_parquet(?, filename = true) group by filename",
        [paths],
    ).fetchall()
    by_file = {Path(name).name: n for name, n in counted}
    for add in files.values():
        stats = json.loads(add["stats"])
        assert by_file[Path(unquote(add["path"])).name] == stats["numRecords"]
        assert set(add["partitionValues"]) == {"facility"}
    ids = con.execute("select id from read_parquet(?) order by id", [paths]).fetchall()
    assert [i for (i,) in ids] == [1, 2, 3, 4]


def test_log_statistics_bound_the_data(table: Path) -> None:
    con = duckdb.connect()
    for path, add in live_files(table).items():
        stats = json.loads(add["stats"])
        low, high = con.execute("select min(id), max(id) from read_parquet(?)",
                                [str(table / unquote(path))]).fetchone()
        assert (stats["minValues"]["id"], stats["maxValues"]["id"]) == (low, high)
        assert set(stats["nullCount"]) >= {"id", "name", "seen"}
