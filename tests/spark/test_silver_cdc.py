"""Silver CDC against a pure-Python oracle: duplicates, out-of-order days, deletes, late records.

Each example lands a few days of bronze rows, merges the days into silver in a random order,
and compares silver with what the events mean, whatever order they arrived in. Keys are hashed
before the merge, as PHI keys are. A day merged again must leave silver unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from lake_assets.catalog.models import CdcMode, Column, DeleteSignal, Feed, Table
from lake_assets.factory.silver import SilverSource, update_silver
from lake_assets.storage.lake import Lake
from lake_assets.storage.secrets import get_secret

pytestmark = pytest.mark.spark

BASE = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = [date(2026, 3, d) for d in (1, 2)]
BRONZE = "key string, seq timestamp, val string, op string, _facility_id string, " \
         "_arrival_date date, _source_archive string, _source_member string, " \
         "_archive_sha256 string, _ingested_at timestamp, _batch_id string, " \
         "_rescued_data string"

# An event is (key, minute, is_delete); its value follows from key and minute, so a duplicate
# is the same record sent again.
Event = tuple[str, int, bool]
events = st.lists(
    st.tuples(st.sampled_from("abc"), st.integers(0, 7), st.booleans()),
    min_size=1, max_size=9, unique_by=lambda e: (e[0], e[1]),
)
placements = st.lists(st.lists(st.integers(0, 1), min_size=1, max_size=2), min_size=9,
                      max_size=9)
orders = st.permutations([0, 1])
# A record older than a delete arrives a day after it; a key's history starts with a delete.
LATE_AFTER_DELETE = {
    "evts": [("a", 1, False), ("a", 3, True), ("a", 2, False), ("b", 4, False)],
    "where": [[0], [0], [1], [0, 1]], "order": [0, 1],
}
DELETE_FIRST = {
    "evts": [("a", 5, True), ("a", 3, False), ("a", 7, False), ("b", 1, False)],
    "where": [[0], [1], [1], [1, 0]], "order": [0, 1],
}


def source(cdc: CdcMode) -> SilverSource:
    table = Table(
        name="things", keys=("key",), sequence_by="seq", cdc=cdc,
        deletes=DeleteSignal(column="op", values=("D",)),
        columns=(Column(name="key", nullable=False, phi="hash"),
                 Column(name="seq", type="timestamp", nullable=False),
                 Column(name="val"), Column(name="op")),
    )
    feed = Feed.model_validate({
        "name": "things_feed", "owners": ["t"], "format": {"kind": "csv"},
        "landing": {"prefix": "things/"}, "freshness": {"warn_after": "1h", "fail_after": "2h"},
        "tables": [table.model_dump()],
    })
    return SilverSource(table, (feed,), ("feeds/things.yaml",))


def bronze_rows(evts: list[Event], where: list[list[int]]) -> list[tuple]:
    rows = []
    for number, ((key, minute, delete), days) in enumerate(zip(evts, where, strict=False)):
        for day in days:
            ingested = datetime(2026, 3, day + 1, 12, tzinfo=UTC)
            rows.append((
                key, BASE + timedelta(minutes=minute), f"{key}{minute}", "D" if delete else "U",
                "FAC00001", DAYS[day], f"things/{day}.zip", f"m{number}.csv", "sha", ingested,
                f"b{day}", None,
            ))
    return rows


def hashed(key: str) -> str:
    secret = get_secret("PHI_HMAC_KEY").encode()
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def expected_current(evts: list[Event], landed: set[int]) -> set[tuple]:
    latest: dict[str, tuple[int, bool]] = {}
    for number, (key, minute, delete) in enumerate(evts):
        if number in landed and (key not in latest or minute > latest[key][0]):
            latest[key] = (minute, delete)
    return {(hashed(k), _ts(m), f"{k}{m}") for k, (m, delete) in latest.items() if not delete}


def expected_history(evts: list[Event], landed: set[int]) -> set[tuple]:
    rows = set()
    for key in {e[0] for e in evts}:
        mine = sorted((m, d) for n, (k, m, d) in enumerate(evts) if k == key and n in landed)
        for (minute, delete), after in zip(mine, [*mine[1:], None], strict=True):
            if not delete:
                end = _ts(after[0]) if after else None
                rows.add((hashed(key), _ts(minute), f"{key}{minute}", _ts(minute), end,
                          after is None))
    return rows


def _ts(minute: int) -> datetime:
    return BASE + timedelta(minutes=minute)


def silver_rows(lake: Lake, columns: list[str]) -> set[tuple]:
    uri = lake.ref("silver/things").uri
    if not DeltaTable.is_deltatable(uri):
        return set()
    data = DeltaTable(uri).to_pyarrow_table(columns=columns).to_pylist()
    return {tuple(_utc(row[c]) for c in columns) for row in data}


def _utc(value: Any) -> Any:
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) and not value.tzinfo else value


def land_and_merge(spark: SparkSession, lake: Lake, cdc: CdcMode,
                   evts: list[Event], where: list[list[int]],
                   order: list[int]) -> SilverSource:
    src = source(cdc)
    rows = bronze_rows(evts, where)
    lake.write(spark.createDataFrame(rows, BRONZE), table="bronze/things_feed/things",
               mode="overwrite", partition_by=["_arrival_date"])
    for day in order:
        update_silver(lake, src, date=DAYS[day].isoformat())
    return src


@pytest.fixture
def fresh_lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Any:
    def make() -> Lake:
        return Lake(root=str(tmp_path_factory.mktemp("lake")))
    return make


PROPERTY = settings(max_examples=2, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(evts=events, where=placements, order=orders)
@example(**LATE_AFTER_DELETE)
def test_scd1_matches_the_latest_event_per_key(
    spark: SparkSession, fresh_lake: Any, evts: list[Event], where: list[list[int]],
    order: list[int],
) -> None:
    lake = fresh_lake()
    land_and_merge(spark, lake, "scd1", evts, where, order)
    columns = ["key", "seq", "val"]
    assert silver_rows(lake, columns) == expected_current(evts, set(range(len(evts))))
    before = silver_rows(lake, [*columns, "_source_archive", "_ingested_at"])
    update_silver(lake, source("scd1"), date=DAYS[order[0]].isoformat())
    assert silver_rows(lake, [*columns, "_source_archive", "_ingested_at"]) == before


@PROPERTY
@given(evts=events, where=placements, order=orders)
@example(**DELETE_FIRST)
def test_scd2_history_matches_the_event_timeline(
    spark: SparkSession, fresh_lake: Any, evts: list[Event], where: list[list[int]],
    order: list[int],
) -> None:
    lake = fresh_lake()
    land_and_merge(spark, lake, "scd2", evts, where, order)
    columns = ["key", "seq", "val", "valid_from", "valid_to", "is_current"]
    assert silver_rows(lake, columns) == expected_history(evts, set(range(len(evts))))
    update_silver(lake, source("scd2"), date=DAYS[order[-1]].isoformat())
    assert silver_rows(lake, columns) == expected_history(evts, set(range(len(evts))))
