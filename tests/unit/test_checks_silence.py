"""Facility silence from a real manifest Delta table: last delivery against window and cadence."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from lake_assets.checks import facility_cadences, silent_facilities
from lake_assets.storage.manifest import Manifest, ManifestRow

NOW = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def delivery(facility: str, at: dt.datetime, *, feed: str = "lab_results") -> ManifestRow:
    path = f"{feed}/{at:%Y-%m-%d/%H}/{facility}/{facility}-{at:%H%M%S}.zip"
    return ManifestRow(
        path=path, size=1, sha256="0" * 64, feed=feed, facility=facility,
        arrival_date=at.date().isoformat(), batch_id=f"b{at:%d%H%M}", status="loaded", rows=1,
        bad_rows=0, rows_by_table="{}", reason=None, message=None, ingested_at=at,
        committed_at=at,
    )


def manifest(tmp_path: Path, rows: list[ManifestRow]) -> Manifest:
    ledger = Manifest(str(tmp_path / "ingested_files"))
    for index, row in enumerate(rows):
        ledger.record(row.feed, f"batch-{index}", [row])
    return ledger


def silent(ledger: Manifest, *, silence_after: dt.timedelta | None) -> list[str]:
    deliveries = ledger.deliveries("lab_results", since=(NOW - 14 * 24 * HOUR).date())
    cadences = facility_cadences(deliveries, silence_after=silence_after)
    return [c.facility for c in silent_facilities(cadences, now=NOW)]


def test_hourly_facility_is_silent_after_three_missed_hours_long_before_the_feed_window(
    tmp_path: Path,
) -> None:
    hourly = [delivery("FAC00001", NOW - h * HOUR) for h in range(4, 12)]  # quiet for 4h
    steady = [delivery("FAC00002", NOW - h * HOUR) for h in range(0, 8)]
    ledger = manifest(tmp_path, [*hourly, *steady])

    assert silent(ledger, silence_after=dt.timedelta(hours=12)) == ["FAC00001"]
    assert silent(ledger, silence_after=dt.timedelta(hours=2)) == ["FAC00001"]


def test_window_alone_without_a_cadence_and_other_feeds_ignored(tmp_path: Path) -> None:
    once = delivery("FAC00003", NOW - 5 * HOUR)  # one delivery: no cadence yet
    other_feed = delivery("FAC00004", NOW - 50 * HOUR, feed="bed_census")
    ledger = manifest(tmp_path, [once, other_feed])

    assert silent(ledger, silence_after=dt.timedelta(hours=6)) == []
    assert silent(ledger, silence_after=dt.timedelta(hours=4)) == ["FAC00003"]
    assert silent(ledger, silence_after=None) == []  # nothing sets its window


def test_a_batch_of_archives_at_once_is_one_delivery_and_the_floor_holds(tmp_path: Path) -> None:
    burst = [delivery("FAC00005", NOW - 50 * dt.timedelta(minutes=1)) for _ in range(3)]
    rows = [delivery("FAC00005", NOW - m * dt.timedelta(minutes=1)) for m in (70, 90, 110)]
    ledger = manifest(tmp_path, [*burst, *rows])
    deliveries = ledger.deliveries("lab_results", since=NOW.date())

    [cadence] = facility_cadences(deliveries, silence_after=dt.timedelta(hours=12))

    assert cadence.deliveries == 4 and cadence.median_gap == dt.timedelta(minutes=20)
    assert cadence.window == dt.timedelta(hours=1)  # 3 x 20 min, raised to the 1h floor
    assert not cadence.silent(NOW)


def test_no_manifest_yet_means_no_facilities(tmp_path: Path) -> None:
    assert silent(Manifest(str(tmp_path / "missing")), silence_after=HOUR) == []
