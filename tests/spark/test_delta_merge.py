"""MERGE against pure-Python models: latest record wins per key (SCD1), and SCD2 history.

Records arrive out of order, repeat keys within a batch, are replayed in later batches, and
include deletes. Sequences are unique per record, so the expected outcome is unambiguous.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from lake_assets.storage.delta import Scd2, merge_into
from lake_assets.storage.lake import Lake

pytestmark = pytest.mark.spark

SOURCE = "id long, v string, seq long, op string"
MERGE_SETTINGS = settings(max_examples=15, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass(frozen=True)
class Record:
    id: int
    v: str
    seq: int
    delete: bool

    def row(self) -> tuple:
        return (self.id, self.v, self.seq, "D" if self.delete else "U")


@st.composite
def batches(draw: st.DrawFn) -> list[list[Record]]:
    """Two batches of records with unique, shuffled sequences; the second may replay the first."""
    shapes = draw(st.lists(st.tuples(st.integers(0, 4), st.sampled_from("abc"), st.booleans()),
                           min_size=2, max_size=10))
    seqs = draw(st.permutations(range(len(shapes))))
    records = [Record(i, v, s, d) for (i, v, d), s in zip(shapes, seqs, strict=True)]
    cut = draw(st.integers(1, len(records)))
    replays = draw(st.lists(st.sampled_from(records[:cut]), max_size=2))
    return [records[:cut], records[cut:] + replays]


def model_latest(state: dict[int, tuple], batch: list[Record]) -> dict[int, tuple]:
    """SCD1: the newest record per key wins; a strictly newer sequence is needed to change."""
    state = dict(state)
    newest: dict[int, Record] = {}
    for r in batch:
        if r.id not in newest or r.seq > newest[r.id].seq:
            newest[r.id] = r
    for key, r in newest.items():
        if key in state and r.seq <= state[key][2]:
            continue
        if r.delete:
            state.pop(key, None)
        else:
            state[key] = (r.id, r.v, r.seq)
    return state


def model_history(state: dict[int, list[tuple]], batch: list[Record]) -> dict[int, list[tuple]]:
    """SCD2: versions are events; a delete ends the version before it; existing events win."""
    state = {k: list(v) for k, v in state.items()}
    for key in {r.id for r in batch}:
        versions = state.get(key, [])
        starts = {vf for (_, _, vf, _) in versions}
        events: dict[int, tuple[int, str | None]] = {}
        for v, _, vf, vt in versions:
            events[vf] = (0, v)
            if vt is not None and vt not in starts:
                events.setdefault(vt, (1, None))
        for r in sorted(batch, key=lambda r: (r.seq, not r.delete)):
            if r.id == key and r.seq not in events:
                events[r.seq] = (2, None) if r.delete else (3, r.v)
        times = sorted(events)
        state[key] = [(events[t][1], t, t, nxt)
                      for t, nxt in zip(times, [*times[1:], None], strict=True)
                      if events[t][1] is not None]
    return state


def _merge(lake: Lake, spark: SparkSession, batch: list[Record], *, table: str = "silver/t",
           **kwargs: object) -> None:
    source = spark.createDataFrame([r.row() for r in batch], SOURCE)
    lake.merge(source, table=table, keys=["id"], sequence_by="seq",
               delete_when="op = 'D'", drop_columns=["op"], **kwargs)


@pytest.mark.slow
@MERGE_SETTINGS
@given(data=batches())
def test_merge_matches_latest_wins_model(spark: SparkSession, lake: Lake,
                                         data: list[list[Record]]) -> None:
    table = f"silver/latest_{uuid.uuid4().hex}"
    expected: dict[int, tuple] = {}
    for batch in data:
        _merge(lake, spark, batch, table=table)
        expected = model_latest(expected, batch)
    got = sorted(tuple(r) for r in lake.read(table).collect())
    assert got == sorted(expected.values())


@pytest.mark.slow
@MERGE_SETTINGS
@given(data=batches())
def test_merge_matches_scd2_history_model(spark: SparkSession, lake: Lake,
                                          data: list[list[Record]]) -> None:
    table = f"silver/history_{uuid.uuid4().hex}"
    expected: dict[int, list[tuple]] = {}
    for batch in data:
        _merge(lake, spark, batch, table=table, scd2=Scd2())
        expected = model_history(expected, batch)
    got = sorted(tuple(r) for r in lake.read(table).collect())
    want = sorted((k, v, vf, vf, vt, vt is None) for k, rows in expected.items()
                  for (v, _, vf, vt) in rows)
    assert got == want


def test_newer_target_row_is_not_overwritten_by_a_late_record(
    spark: SparkSession, lake: Lake
) -> None:
    _merge(lake, spark, [Record(1, "new", 10, False)])
    _merge(lake, spark, [Record(1, "late", 5, False), Record(2, "b", 1, False)])
    assert sorted(tuple(r) for r in lake.read("silver/t").collect()) == [
        (1, "new", 10), (2, "b", 1)]


def test_late_record_lands_in_its_place_in_history(spark: SparkSession, lake: Lake) -> None:
    _merge(lake, spark, [Record(1, "a", 10, False), Record(1, "c", 30, False)], scd2=Scd2())
    _merge(lake, spark, [Record(1, "b", 20, False)], scd2=Scd2())
    rows = lake.read("silver/t").orderBy("valid_from").collect()
    assert [(r.v, r.valid_from, r.valid_to, r.is_current) for r in rows] == [
        ("a", 10, 20, False), ("b", 20, 30, False), ("c", 30, None, True)]


def test_merge_rewrites_only_files_holding_source_keys(
    spark: SparkSession, lake: Lake
) -> None:
    ref = lake.ref("silver/t")
    rows = [(i, "v", 1, "U") for i in range(40)]
    initial = spark.createDataFrame(rows, SOURCE).drop("op").repartitionByRange(4, "id")
    lake.write(initial, table="silver/t")
    update = spark.createDataFrame([(3, "changed", 2, "U"), (100, "new", 1, "U")], SOURCE)
    result = merge_into(update, ref, keys=["id"], sequence_by="seq", drop_columns=["op"],
                        rewrite_below_bytes=0)
    assert result.files_removed == 1  # the three files without key 3 stay as they are
    assert result.files_added == 2  # the rewritten file, and the new key
    got = {r.id: r.v for r in lake.read("silver/t").collect()}
    assert (len(got), got[3], got[100], got[4]) == (41, "changed", "new", "v")
