"""Landing listing, cursor and batch planning behind the feed sensors (no Dagster instance)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from lake_assets.catalog.loader import load_catalog
from lake_assets.catalog.models import Feed
from lake_assets.factory.batching import FeedCursor, plan_batches
from lake_assets.factory.bronze import build_bronze_assets
from lake_assets.factory.partitions import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    daily_partitions,
    facility_partitions_name,
)
from lake_assets.factory.sensors import build_feed_sensor, new_archives
from lake_assets.storage.landing import LandingPathError, locate, open_landing
from lake_assets.storage.manifest import Manifest
from tests.conftest import DAILY, METADATA, project_instance

CATALOG = load_catalog(METADATA)
LAB = CATALOG.feed("lab_results")
CENSUS = CATALOG.feed("bed_census")


def land(root: Path, feed: str, date: str, hour: str, facility: str, name: str, size: int) -> None:
    folder = root / feed / date / hour / facility
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"x" * size)


def two_archives_sensor(feed: Feed, root: Path, monkeypatch: pytest.MonkeyPatch
                        ) -> dg.SensorDefinition:
    """The feed's sensor over a landing zone at `root` with two archives from two facilities,
    none of them loaded yet."""
    for facility, name in (("FAC00001", "a.zip"), ("FAC00002", "b.zip")):
        land(root, feed.name, "2026-11-20", "08", facility, name, 10)
    monkeypatch.setenv("LANDING_ROOT", str(root))
    bronze = build_bronze_assets(feed, source_file=f"{feed.name}.yaml", daily=DAILY)
    return build_feed_sensor(feed, bronze, lambda: Manifest(str(root / "_no_manifest")))


def test_locate_reads_date_hour_and_facility() -> None:
    assert locate(LAB, "lab_results/2026-11-20/09/FAC00001/a.zip") == (
        "2026-11-20", "09", "FAC00001")
    expected = r"lab_results/oops\.zip: feed lab_results: expected"
    with pytest.raises(LandingPathError, match=expected):
        locate(LAB, "lab_results/oops.zip")


def test_sensor_lists_only_new_archives_and_seals_old_hours(tmp_path: Path) -> None:
    land(tmp_path, "lab_results", "2026-11-20", "09", "FAC00001", "a.zip", 10)
    land(tmp_path, "lab_results", "2026-11-20", "10", "FAC00002", "b.zip", 10)
    land(tmp_path, "lab_results", "2026-11-20", "10", "FAC00002", ".b2.zip.part", 10)
    zone = open_landing(str(tmp_path))
    cursor = FeedCursor()
    found, hours = new_archives(zone, LAB, cursor)
    assert [a.path for a in found] == [
        "lab_results/2026-11-20/09/FAC00001/a.zip",
        "lab_results/2026-11-20/10/FAC00002/b.zip",
    ]
    assert hours == ["2026-11-20/09", "2026-11-20/10"]
    cursor.mark(found)
    cursor.seal(datetime(2026, 11, 20, 12, 30, tzinfo=UTC), incomplete=set())
    assert cursor.sealed_before == "2026-11-20/10"  # 09 ended > 2 h ago; 10 is still open
    land(tmp_path, "lab_results", "2026-11-20", "10", "FAC00003", "c.zip", 10)
    land(tmp_path, "lab_results", "2026-11-20", "09", "FAC00003", "late.zip", 10)
    cursor = FeedCursor.parse(cursor.serialize())
    found, hours = new_archives(zone, LAB, cursor)
    assert [a.path for a in found] == ["lab_results/2026-11-20/10/FAC00003/c.zip"]
    assert hours == ["2026-11-20/10"]


def test_batches_respect_limits_and_never_mix_dates(tmp_path: Path) -> None:
    for index in range(5):
        land(tmp_path, "lab_results", "2026-11-20", "23", "FAC00001", f"a{index}.zip", 100)
    land(tmp_path, "lab_results", "2026-11-21", "00", "FAC00001", "b.zip", 100)
    zone = open_landing(str(tmp_path))
    archives = zone.archives(LAB, "2026-11-20") + zone.archives(LAB, "2026-11-21")
    limited = LAB.model_copy(update={"batch": LAB.batch.model_copy(update={"max_archives": 2})})
    batches = plan_batches(limited, archives, first_number=7)
    assert [(b.batch_id, len(b.archives)) for b in batches] == [
        ("20261120-0000007", 2), ("20261120-0000008", 2), ("20261120-0000009", 1),
        ("20261121-0000010", 1),
    ]
    by_bytes = LAB.model_copy(update={"batch": LAB.batch.model_copy(update={"max_bytes": 250})})
    sizes = [len(b.archives) for b in plan_batches(by_bytes, archives, first_number=0)]
    assert sizes == [2, 2, 1, 1]


def test_facility_partitioned_feed_batches_across_facilities(tmp_path: Path) -> None:
    land(tmp_path, "bed_census", "2026-11-20", "08", "FAC00001", "a.zip", 10)
    land(tmp_path, "bed_census", "2026-11-20", "08", "FAC00002", "b.zip", 10)
    land(tmp_path, "bed_census", "2026-11-21", "08", "FAC00002", "c.zip", 10)
    zone = open_landing(str(tmp_path))
    archives = zone.archives(CENSUS, "2026-11-20") + zone.archives(CENSUS, "2026-11-21")
    batches = plan_batches(CENSUS, archives, first_number=0)
    assert [(b.arrival_date, b.facilities) for b in batches] == [
        ("2026-11-20", ("FAC00001", "FAC00002")), ("2026-11-21", ("FAC00002",)),
    ]


def test_cursor_keeps_archives_left_for_a_later_tick(tmp_path: Path) -> None:
    land(tmp_path, "lab_results", "2026-11-01", "03", "FAC00001", "a.zip", 10)
    zone = open_landing(str(tmp_path))
    cursor = FeedCursor()
    found, _ = new_archives(zone, LAB, cursor)
    cursor.seal(datetime(2026, 11, 21, tzinfo=UTC), incomplete={"2026-11-01/03"})
    assert cursor.sealed_before == "2026-11-01/03"
    assert new_archives(zone, LAB, cursor)[0] == found


def test_census_sensor_registers_facilities_and_runs_one_range_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sensor = two_archives_sensor(CENSUS, tmp_path, monkeypatch)
    with project_instance() as instance:
        instance.add_dynamic_partitions(facility_partitions_name(CENSUS), ["FAC00009"])
        result = sensor(dg.build_sensor_context(instance=instance))
    [request] = result.run_requests
    assert request.partition_key is None
    assert request.tags[RANGE_START_TAG] == "2026-11-20|FAC00001"
    assert request.tags[RANGE_END_TAG] == "2026-11-20|FAC00002"
    [register] = result.dynamic_partitions_requests
    assert list(register.partition_keys) == ["FAC00001", "FAC00002"]


def test_sensor_waits_while_a_run_of_its_feed_waits_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What lands while a feed's run is queued or starting goes into one batch after it, not
    into a queue of small runs. A run that executes already lets the next batch queue behind it."""
    sensor = two_archives_sensor(LAB, tmp_path, monkeypatch)
    with project_instance() as instance:
        create_run_for_test(instance, status=dg.DagsterRunStatus.STARTED,
                            tags={"lake/feed": "lab_results"})
        starting = create_run_for_test(instance, status=dg.DagsterRunStatus.STARTING,
                                     tags={"lake/feed": "lab_results"})
        create_run_for_test(instance, status=dg.DagsterRunStatus.STARTING,
                            tags={"lake/feed": "bed_census"})
        waiting = sensor(dg.build_sensor_context(instance=instance, cursor="earlier"))
        instance.report_run_canceled(starting)
        after = sensor(dg.build_sensor_context(instance=instance))
    assert waiting.skip_reason is not None and not waiting.run_requests
    assert "waiting to start" in (waiting.skip_reason.skip_message or "")
    assert waiting.cursor == "earlier"
    [request] = after.run_requests
    assert len(request.run_config["ops"]["bronze__lab_results"]["config"]["archives"]) == 2


def test_archives_dated_before_the_partitions_wait_in_open_hours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An archive whose arrival date no partition holds is not requested and not forgotten:
    its hour stays open, so it loads once the partitions reach back to it."""
    land(tmp_path, "lab_results", "2026-11-18", "08", "FAC00003", "old.zip", 10)
    monkeypatch.setenv("LANDING_ROOT", str(tmp_path))
    for facility, name in (("FAC00001", "a.zip"), ("FAC00002", "b.zip")):
        land(tmp_path, "lab_results", "2026-11-20", "08", facility, name, 10)
    manifest = Manifest(str(tmp_path / "_no_manifest"))
    late_start = build_bronze_assets(LAB, source_file="lab_results.yaml",
                                     daily=daily_partitions("2026-11-20"))
    with project_instance() as instance:
        result = build_feed_sensor(LAB, late_start, lambda: manifest)(
            dg.build_sensor_context(instance=instance))
    [request] = result.run_requests
    assert request.partition_key == "2026-11-20"
    cursor = FeedCursor.parse(result.cursor)
    assert cursor.wants_hour("2026-11-18/08")
    found, _ = new_archives(open_landing(str(tmp_path)), LAB, cursor)
    assert [a.path for a in found] == ["lab_results/2026-11-18/08/FAC00003/old.zip"]
