"""Standard Delta both ways: the JVM Delta connector (delta-spark) reads what our delta-rs writer
wrote, after merges, schema evolution, optimize, vacuum and a checkpoint; our readers read
what delta-spark wrote and merged (and refuse a deletion vector rather than return deleted rows).

delta-spark runs in its own Spark (see `benchmarks.jvm_delta`): one process for all its steps.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from benchmarks.jvm_delta import run_steps
from lake_assets.errors import DeltaStorageError
from lake_assets.storage import delta
from lake_assets.storage.lake import Lake

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SCHEMA = "id long, seq long, name string, amount decimal(10,2), born date, seen timestamp, " \
         "facility string"
TS = dt.datetime(2024, 3, 1, 12, 30, 45, 123456)
FIRST = [
    (1, 1, "Zoë", Decimal("10.25"), dt.date(1990, 1, 2), TS, "F/1 a"),
    (2, 1, None, None, None, None, "F/1 a"),
    (3, 1, "ünïcode ✓", Decimal("0.01"), dt.date(2000, 2, 29), TS, "F2"),
    (4, 1, "x", Decimal("99.99"), dt.date(1970, 1, 1), TS, "F2"),
]
MERGE = [(2, 2, "two", Decimal("2.00"), None, TS, "F/1 a"), (5, 1, "five", None, None, None, "F3")]
LATE = [(3, 0, "stale", None, None, None, "F2"), (6, 1, "six", None, None, None, "F2")]
EVOLVED = f"{SCHEMA}, ward int"


def as_json(rows: list[tuple]) -> list[list[Any]]:
    """Rows as the JVM step returns them: dates, times and decimals as text."""
    def plain(v: Any) -> Any:
        return v.isoformat() if isinstance(v, dt.date) else str(v) if isinstance(
            v, Decimal) else v
    return [[plain(v) for v in r] for r in rows]


def our_rows(lake: Lake, table: str, columns: list[str]) -> list[list[Any]]:
    """`table` read by our Spark reader, as JSON values ordered by id."""
    frame = lake.read(table).select(*columns).orderBy("id")
    return as_json([tuple(v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v
                          for v in r) for r in frame.collect()])


def arrow_rows(uri: str, columns: list[str]) -> list[list[Any]]:
    """`uri` read by delta-rs into Arrow, as JSON values ordered by id."""
    table = DeltaTable(uri).to_pyarrow_table(columns=columns).sort_by("id")
    return as_json([tuple(v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v
                          for v in r.values()) for r in table.to_pylist()])


def build_ours(lake: Lake, spark: SparkSession, table: str) -> None:
    """`table` through every kind of commit of our writer: a partitioned write, a merge that
    rewrites the table, one that rewrites touched files only, an append and a merge that
    evolve the schema, optimize, vacuum of everything unreferenced, and a checkpoint."""
    frame = lambda rows, schema=SCHEMA: spark.createDataFrame(rows, schema)  # noqa: E731
    lake.write(frame(FIRST), table=table, partition_by=["facility"])
    lake.merge(frame(MERGE), table=table, keys=["id"], sequence_by="seq")
    lake.merge(frame(LATE), table=table, keys=["id"], sequence_by="seq",
               rewrite_below_bytes=0)  # the copy-on-write of touched files only
    lake.write(frame([(7, 1, "seven", None, None, None, "F3", 12)], EVOLVED), table=table,
               evolve_schema=True)
    lake.merge(frame([(1, 2, "one", None, None, None, "F/1 a", 3)], EVOLVED),
               table=table, keys=["id"], sequence_by="seq", evolve_schema=True)
    lake.optimize(table)
    delta.vacuum(lake.ref(table), retention_hours=0, allow_short_retention=True)
    lake.checkpoint(table)


def ours_expected() -> list[list[Any]]:
    """`build_ours`'s rows, all columns, by id: the late row 6 inserted, stale row 3 not."""
    late = [6, 1, "six", None, None, None, "F2", None]
    return sorted([*expected(ALL), late], key=lambda r: r[0])


@pytest.fixture(scope="module")
def interop(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Our table through every kind of commit, then one delta-spark run reading it and
    writing its own tables."""
    root = tmp_path_factory.mktemp("interop")
    lake = Lake(root=str(root / "lake"), session_factory=lambda: spark)
    build_ours(lake, spark, "gold/ours")
    theirs, dv = str(root / "theirs"), str(root / "dv")
    row = lambda r: list(as_json([r])[0])  # noqa: E731
    steps = [
        {"op": "read", "path": lake.ref("gold/ours").uri, "order_by": ["id"]},
        {"op": "write", "path": theirs, "schema": SCHEMA, "rows": [row(r) for r in FIRST],
         "partition_by": ["facility"]},
        {"op": "merge", "path": theirs, "schema": SCHEMA, "rows": [row(r) for r in MERGE],
         "keys": ["id"]},
        {"op": "write", "path": theirs, "schema": EVOLVED, "merge_schema": True,
         "rows": [[7, 1, "seven", None, None, None, "F3", 12]]},
        {"op": "merge", "path": theirs, "schema": EVOLVED, "merge_schema": True,
         "rows": [[1, 2, "one", None, None, None, "F/1 a", 3]], "keys": ["id"]},
        {"op": "optimize", "path": theirs},
        {"op": "write", "path": dv, "schema": SCHEMA, "rows": [row(r) for r in FIRST],
         "properties": {"delta.enableDeletionVectors": "true"}},
        {"op": "delete", "path": dv, "where": "id = 2"},
    ]
    results = run_steps(steps)
    return {"lake": lake, "read": results[1], "theirs": theirs, "dv": dv}


def expected(columns: list[str]) -> list[list[Any]]:
    """Every writer's final rows: merges by newest seq, then the evolved column."""
    full = {r[0]: dict(zip(SCHEMA_COLUMNS, r, strict=True)) | {"ward": None} for r in FIRST}
    for r in MERGE:
        full[r[0]] = dict(zip(SCHEMA_COLUMNS, r, strict=True)) | {"ward": None}
    full[7] = {c: None for c in [*SCHEMA_COLUMNS, "ward"]} | {
        "id": 7, "seq": 1, "name": "seven", "facility": "F3", "ward": 12}
    full[1] = {c: None for c in [*SCHEMA_COLUMNS, "ward"]} | {
        "id": 1, "seq": 2, "name": "one", "facility": "F/1 a", "ward": 3}
    return as_json([tuple(full[k][c] for c in columns) for k in sorted(full)])


SCHEMA_COLUMNS = [part.split()[0] for part in SCHEMA.split(", ")]
ALL = [*SCHEMA_COLUMNS, "ward"]


def test_delta_spark_reads_our_table_after_every_kind_of_commit(interop: dict) -> None:
    read = interop["read"]
    got = [dict(zip(read["columns"], r, strict=True)) for r in read["rows"]]
    assert [[g[c] for c in ALL] for g in got] == ours_expected()
    assert [[g[c] for c in ALL] for g in got] == our_rows(interop["lake"], "gold/ours", ALL)


def test_our_readers_read_what_delta_spark_wrote_and_merged(interop: dict,
                                                             spark: SparkSession) -> None:
    uri = interop["theirs"]
    frame = delta.read(spark, delta.TableRef(name="theirs", uri=uri, options={}))
    ours = as_json([tuple(v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v
                          for v in r) for r in frame.select(*ALL).orderBy("id").collect()])
    assert ours == expected(ALL)
    assert arrow_rows(uri, ALL) == expected(ALL)


def test_a_deletion_vector_is_refused_not_read_past(interop: dict, spark: SparkSession) -> None:
    ref = delta.TableRef(name="dv", uri=interop["dv"], options={})
    with pytest.raises(DeltaStorageError, match="deletionVectors"):
        delta.read(spark, ref).select("id").collect()
