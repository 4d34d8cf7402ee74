"""Ground truth agrees with the archives: rows per table and bad rows, counted by readers that
share no code with the simulator; and a feed added as YAML only simulates too."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.loader import load_catalog
from lake_assets.simulate import FAULT_KINDS
from tests.conftest import METADATA
from tests.unit.simulate_readers import (
    members,
    read_landed,
    run_simulation,
)

ROW_FAULTS = tuple(name for name, fault in FAULT_KINDS.items() if fault.level == "row")

NEW_FEEDS = {
    "pharmacy_orders.yaml": """
name: pharmacy_orders
owners: [clinical-data]
format: {kind: csv, delimiter: ";", header: true, member_pattern: "*.csv"}
archive: {kind: gzip}
landing: {prefix: pharmacy_orders/, facility: {path_segment: 2}}
freshness: {warn_after: 1h, fail_after: 2h}
tables:
  - name: medication_orders
    keys: [facility_code, order_id]
    cdc: scd1
    sequence_by: ordered_at
    columns:
      - {name: order_id, nullable: false, checks: {regex: '^RX-\\d{8}$'}}
      - {name: facility_code, nullable: false}
      - {name: mrn, nullable: false, phi: hash}
      - {name: drug_code, checks: {regex: '^[A-Z]{3}\\d{4}(-[A-Z])?$'}}
      - {name: dose_mg, type: double, checks: {range: {min: 0.5, max: 500}}}
      - {name: quantity, type: integer, nullable: false, checks: {range: {min: 1, max: 90}}}
      - {name: route, checks: {allowed: [PO, IV, IM, SC]}}
      - {name: ordered_at, type: timestamp, format: "%d/%m/%Y %H:%M", nullable: false}
      - {name: refill, type: boolean}
      - {name: start_date, type: date}
""",
    "transport_requests.yaml": """
name: transport_requests
owners: [bed-management]
format: {kind: delimited, delimiter: "\\t", header: true, member_pattern: "*.tsv"}
archive: {kind: none}
encoding: ascii
landing: {prefix: transport_requests/, facility: {path_segment: 2}}
freshness: {warn_after: 1h, fail_after: 2h}
tables:
  - name: transport_requests
    columns:
      - {name: request_id, nullable: false, checks: {length: {min: 8, max: 12}}}
      - {name: facility_code, nullable: false}
      - {name: visit_number, nullable: false}
      - {name: priority, type: integer, checks: {range: {min: 1, max: 5}}}
      - {name: requested_at, type: timestamp, nullable: false}
""",
    "device_readings.yaml": """
name: device_readings
owners: [clinical-data]
format: {kind: xml, member_pattern: "*.xml"}
archive: {kind: zip}
landing: {prefix: device_readings/, facility: {path_segment: 2}}
freshness: {warn_after: 1h, fail_after: 2h}
tables:
  - name: devices
    selector: /Device
    columns:
      - {name: serial, source: Serial, nullable: false}
      - {name: facility_code, source: Site/Code, nullable: false}
  - name: readings
    selector: /Device/Readings/Reading
    columns:
      - {name: serial, source: ../../Serial, nullable: false}
      - {name: taken_at, source: Time, type: timestamp, nullable: false}
      - {name: value, source: Value, type: double, nullable: false}
""",
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(METADATA)


def _dense(counts: Counter[str], tables: dict[str, int]) -> dict[str, int]:
    return {name: counts.get(name, 0) for name in tables}


def test_truth_rows_equal_what_independent_readers_count(catalog: Catalog, tmp_path: Path) -> None:
    _, summary, truth = run_simulation(tmp_path, catalog, rate=80, size_scale=0.05)
    assert {r.feed for r in truth} == {f.name for f in catalog.feeds}
    originals = {r.archive: r for r in truth if not r.resent_of}
    for record in truth:
        # A re-send is expected to load nothing; its bytes hold what its original holds.
        expected = originals[record.resent_of] if record.resent_of else record
        good, bad = read_landed(tmp_path / "landing", catalog.feed(record.feed), record)
        assert _dense(good, expected.rows) == expected.rows, record.archive
        assert not bad and not any(record.bad_rows.values()), record.archive
        assert (record.status, record.reason) == (
            ("resent", "resent") if record.resent_of else ("good", None))
    assert summary.total_rows() == sum(sum(r.rows.values()) for r in truth)


def test_row_level_faults_are_counted_like_an_independent_reader(
    catalog: Catalog, tmp_path: Path
) -> None:
    _, _, truth = run_simulation(
        tmp_path, catalog, rate=200, faults=1.0, fault_kinds=ROW_FAULTS, resend_rate=0.0
    )
    seen = Counter()
    for record in truth:
        feed = catalog.feed(record.feed)
        good, bad = read_landed(tmp_path / "landing", feed, record)
        assert (_dense(good, record.rows), _dense(bad, record.bad_rows)) == (
            record.rows,
            record.bad_rows,
        ), f"{record.archive} ({record.fault})"
        assert record.status == "good"
        assert record.reason == FAULT_KINDS[record.fault].reason
        assert any(record.bad_rows.values()) == (record.fault != "extra_column")
        seen[record.fault] += 1
    assert set(seen) == set(ROW_FAULTS)


def test_a_garbled_msh_makes_one_malformed_message(catalog: Catalog, tmp_path: Path) -> None:
    _, _, truth = run_simulation(
        tmp_path, catalog, feeds=("adt_events",), rate=20, faults=1.0,
        fault_kinds=("bad_hl7_segment",),
    )  # fmt: skip
    feed = catalog.feed("adt_events")
    for record in truth:
        files = members(feed, (tmp_path / "landing" / record.archive).read_bytes())
        garbled = [
            message
            for _, data in files
            for message in data.decode().split("\r\n")
            if message and not message.startswith("MSH|")
        ]
        assert len(garbled) == record.bad_rows["adt_messages"] >= 1
        assert record.bad_rows["patients"] == record.bad_rows["visits"] == 0


def test_an_extra_column_is_an_undeclared_field_and_the_rows_load(
    catalog: Catalog, tmp_path: Path
) -> None:
    _, _, truth = run_simulation(
        tmp_path, catalog, feeds=("lab_results", "patient_encounters"), rate=20, faults=1.0,
        fault_kinds=("extra_column",),
    )  # fmt: skip
    for record in truth:
        feed = catalog.feed(record.feed)
        files = members(feed, (tmp_path / "landing" / record.archive).read_bytes())
        declared = {c.source_or_name for t in feed.tables for c in t.columns}
        texts = [data.decode(feed.encoding) for _, data in files]
        if feed.format.kind == "csv":
            headers = [set(text.split("\r\n", 1)[0].split(",")) for text in texts]
            assert any(header - declared for header in headers)
        else:
            assert any("<SourceSystemNote>" in text for text in texts)
        assert not any(record.bad_rows.values()) and all(record.rows.values())


def _new_feeds(metadata_copy: Path) -> Catalog:
    for name, text in NEW_FEEDS.items():
        (metadata_copy / "feeds" / name).write_text(text)
    return load_catalog(metadata_copy)


def test_a_feed_added_as_yaml_only_simulates_within_its_checks(
    metadata_copy: Path, tmp_path: Path
) -> None:
    catalog = _new_feeds(metadata_copy)
    names = tuple(name.removesuffix(".yaml") for name in NEW_FEEDS)
    _, _, truth = run_simulation(tmp_path, catalog, feeds=names, rate=30, size_scale=0.05,
                                 resend_rate=0.0)
    assert {record.feed for record in truth} == set(names)
    pharmacy = catalog.feed("pharmacy_orders")
    for record in truth:
        feed = catalog.feed(record.feed)
        good, bad = read_landed(tmp_path / "landing", feed, record)
        assert _dense(good, record.rows) == record.rows and all(record.rows.values())
        assert not bad
        assert record.archive.endswith(
            {"gzip": ".csv.gz", "none": ".tsv", "zip": ".zip"}[feed.archive.kind]
        )
        if feed is pharmacy:
            _assert_within_checks(feed, tmp_path / "landing" / record.archive)


def _assert_within_checks(feed, path: Path) -> None:
    [(_, data)] = members(feed, path.read_bytes())
    lines = data.decode().splitlines()
    header = lines[0].split(";")
    columns = {c.name: c for c in feed.tables[0].columns}
    for line in lines[1:]:
        row = dict(zip(header, line.split(";"), strict=True))
        assert re.fullmatch(r"RX-\d{8}", row["order_id"])
        assert row["route"] in ("PO", "IV", "IM", "SC", "")
        assert 1 <= int(row["quantity"]) <= 90
        assert row["dose_mg"] == "" or 0.5 <= float(row["dose_mg"]) <= 500
        drug_code = columns["drug_code"].checks.regex or ""
        assert row["drug_code"] == "" or re.fullmatch(drug_code, row["drug_code"])
        assert row["refill"] in ("true", "false", "")
        assert re.fullmatch(r"FAC\d{5}", row["facility_code"])


def test_a_yaml_only_feed_takes_every_fault_that_fits_it(
    metadata_copy: Path, tmp_path: Path
) -> None:
    catalog = _new_feeds(metadata_copy)
    names = tuple(name.removesuffix(".yaml") for name in NEW_FEEDS)
    _, _, truth = run_simulation(tmp_path, catalog, feeds=names, rate=150, faults=1.0)
    kinds = {(record.feed, record.fault) for record in truth}
    assert ("transport_requests", "bad_encoding_record") in kinds  # ascii rejects byte 0xE9
    bare_file_faults = {fault for feed, fault in kinds if feed == "transport_requests"}
    assert not bare_file_faults & {"corrupt", "truncated", "wrong_password", "too_large"}
    assert ("device_readings", "wrong_password") not in kinds  # that zip has no password
    for record in truth:
        if record.status == "good":
            good, bad = read_landed(tmp_path / "landing", catalog.feed(record.feed), record)
            assert (_dense(good, record.rows), _dense(bad, record.bad_rows)) == (
                record.rows, record.bad_rows,
            ), f"{record.archive} ({record.fault})"  # fmt: skip
