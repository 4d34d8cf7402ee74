"""Concurrent writers: appends both land; overwrites of one slice re-plan or fail clearly."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

import lake_assets.storage.delta._commit as commit_module
from lake_assets.errors import DeltaConflictError
from lake_assets.storage.delta import CommitPlan, WriteSpec, write_batches
from lake_assets.storage.delta._commit import commit
from lake_assets.storage.delta._predicate import Term
from lake_assets.storage.delta._snapshot import FileEntry, arrow_schema, list_files, open_table
from lake_assets.storage.lake import Lake

pytestmark = pytest.mark.spark

SCHEMA = "id long, day string, writer string"


def run_together(*calls: Callable[[], object]) -> list[object]:
    """Run `calls` in threads released at the same moment; returns results or exceptions."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(i: int, call: Callable[[], object]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:  # the test inspects it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def assert_intact(uri: str) -> None:
    """Every live file exists and the table loads: nothing is corrupt."""
    delta = DeltaTable(uri)
    assert all(Path(f).is_file() for f in delta.file_uris())
    assert delta.to_pyarrow_table().num_rows >= 0


def test_two_concurrent_appends_both_land(spark: SparkSession, lake: Lake) -> None:
    lake.write(spark.createDataFrame([(0, "d0", "seed")], SCHEMA), table="bronze/f/t")
    frames = [spark.createDataFrame([(i, "d1", f"w{i}")], SCHEMA) for i in (1, 2)]
    results = run_together(*[lambda df=df: lake.write(df, table="bronze/f/t") for df in frames])
    assert sorted(r.version for r in results) == [1, 2]  # type: ignore[union-attr]
    assert sorted(r.id for r in lake.read("bronze/f/t").collect()) == [0, 1, 2]
    assert_intact(lake.ref("bronze/f/t").uri)


def test_a_batch_retried_concurrently_lands_once(spark: SparkSession, lake: Lake) -> None:
    lake.write(spark.createDataFrame([(0, "d0", "seed")], SCHEMA), table="bronze/f/t")
    batch = spark.createDataFrame([(1, "d1", "batch")], SCHEMA)
    results = run_together(*[
        lambda: lake.write(batch, table="bronze/f/t", app_txn=("f/t", 0)) for _ in range(2)])
    assert sorted(r.skipped for r in results) == [False, True], results  # type: ignore[union-attr]
    assert sorted(r.id for r in lake.read("bronze/f/t").collect()) == [0, 1]
    assert parquet_count(lake.ref("bronze/f/t").uri) == 2  # the loser's file was deleted


def parquet_count(uri: str) -> int:
    return len(list(Path(uri).rglob("*.parquet")))


def test_racing_overwrites_of_one_slice_leave_exactly_one(
    spark: SparkSession, lake: Lake
) -> None:
    base = [(0, "d0", "seed"), (1, "d1", "seed"), (2, "d1", "seed")]
    lake.write(spark.createDataFrame(base, SCHEMA), table="bronze/f/t", partition_by=["day"])
    frames = [spark.createDataFrame([(10 + i, "d1", f"w{i}"), (20 + i, "d1", f"w{i}")], SCHEMA)
              for i in (1, 2)]
    results = run_together(*[
        lambda df=df: lake.write(df, table="bronze/f/t", mode="overwrite",
                                 replace_where={"day": "d1"}) for df in frames])
    for r in results:
        assert not isinstance(r, Exception) or isinstance(r, DeltaConflictError), r
    rows = lake.read("bronze/f/t").collect()
    slice_writers = {r.writer for r in rows if r.day == "d1"}
    assert len(slice_writers) == 1 and slice_writers <= {"w1", "w2"}
    assert len([r for r in rows if r.day == "d1"]) == 2
    assert [r.id for r in rows if r.day == "d0"] == [0]
    assert_intact(lake.ref("bronze/f/t").uri)


def _pending(uri: str, *, terms: tuple[Term, ...], writer: str) -> tuple[CommitPlan, list]:
    """Files written as an executor would, and the plan to commit them."""
    spec = WriteSpec(uri=uri, table="bronze/f/t", schema=arrow_schema(DeltaTable(uri)),
                     partition_by=("day",), slice_terms=terms)
    batch = pa.record_batch({"id": [99], "day": ["d1"], "writer": [writer]})
    mode = "overwrite" if terms else "append"
    return CommitPlan(spec=spec, write_id=str(uuid.uuid4()), mode=mode), write_batches([batch],
                                                                                      spec)


def test_stale_slice_overwrite_replans_on_the_new_snapshot(
    spark: SparkSession, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = [(0, "d0", "seed"), (1, "d1", "seed")]
    lake.write(spark.createDataFrame(base, SCHEMA), table="bronze/f/t", partition_by=["day"])
    uri = lake.ref("bronze/f/t").uri
    plan, files = _pending(uri, terms=(Term("day", "=", "d1"),), writer="late")
    stale = open_table(uri, options={}, table="bronze/f/t")  # loaded before the other writer
    lake.write(spark.createDataFrame([(5, "d1", "first")], SCHEMA), table="bronze/f/t",
               mode="overwrite", replace_where={"day": "d1"})
    calls: list[int | None] = []

    def open_stale_once(*args: object, **kwargs: object) -> DeltaTable:
        calls.append(kwargs.get("version"))  # type: ignore[arg-type]
        return stale if len(calls) == 1 else open_table(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(commit_module, "open_table", open_stale_once)
    version = commit(plan, files)
    assert len(calls) == 2 and version == 2  # one conflict, then a clean commit
    rows = sorted((r.day, r.writer) for r in lake.read("bronze/f/t").collect())
    assert rows == [("d0", "seed"), ("d1", "late")]
    assert_intact(uri)


def test_stale_file_swap_fails_clearly_and_discards_its_files(
    spark: SparkSession, lake: Lake
) -> None:
    lake.write(spark.createDataFrame([(1, "d1", "seed")], SCHEMA), table="bronze/f/t",
               partition_by=["day"])
    uri = lake.ref("bronze/f/t").uri
    read_files = [f.path for f in _live(uri)]
    plan, files = _pending(uri, terms=(), writer="merge")
    plan = CommitPlan(spec=plan.spec, write_id=plan.write_id, remove_paths=tuple(read_files),
                      read_version=0, operation="MERGE")
    lake.write(spark.createDataFrame([(2, "d1", "other")], SCHEMA), table="bronze/f/t",
               mode="overwrite")
    with pytest.raises(DeltaConflictError, match=r"bronze/f/t.*MERGE.*version 0"):
        commit(plan, files)
    assert not any((Path(uri) / f.path).exists() for f in files)
    assert [r.writer for r in lake.read("bronze/f/t").collect()] == ["other"]
    assert_intact(uri)


def _live(uri: str) -> list[FileEntry]:
    return list_files(DeltaTable(uri))
