"""Real-world shapes (tests/corpus, written for these tests): every record of every sample
either loads with the right values or is quarantined with the right reason; none goes missing.

HL7: v2.3 with LF, v2.4 with CRLF, v2.5 in an FHS/BHS batch with MLLP framing; repetitions,
escapes, subcomponents, a Z-segment, UTF-8 names, custom delimiters, three-character MSH-2,
timestamps of every precision with and without offsets. CSV: a two-table export (patients and
encounters in one zip, routed by member pattern) with a byte-order mark, CRLF, ISO-8601
timestamps with `Z` and offsets, and odd member names.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from lake_assets.catalog.models import Feed
from lake_assets.ingest import read_archive
from lake_assets.ingest.archives import Skipped
from lake_assets.ingest.read import ArchiveResult
from tests.unit.ingest_builders import feed, plain_zip

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
PATH = "x/2024-01-16/10/FAC00042/archive.zip"


def t(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.fixture(scope="module")
def adt() -> ArchiveResult:
    shipped = feed("adt_events")
    hl7_files = shipped.model_copy(
        update={"format": shipped.format.model_copy(update={"member_pattern": "*.hl7"})})
    files = [(p.name, p.read_bytes()) for p in sorted((CORPUS / "hl7").glob("*.hl7"))]
    return read_archive(hl7_files, data=plain_zip(files), path=PATH, password=None)


def good(result: ArchiveResult, table: str, key: str) -> dict[str, dict]:
    return {row[key]: row for row in result.tables[table].good.to_pylist()}


def bad(result: ArchiveResult, table: str) -> list[tuple[str, str, str]]:
    """(member, reason, error) of each quarantined row of `table`."""
    rows = result.tables[table].bad.to_pylist()
    return sorted((r["_source_member"], r["_reason"], r["_error"]) for r in rows)


# 10 messages in 4 files, plus one stray segment before the first MSH.
MESSAGES = ["V23-1", "V23-2", "V24-1", "V24-2", "V25-1", "V25-2", "V25-3", "CUSTOM-1",
            "THREE-1", "THREE-2"]


def test_every_hl7_message_is_a_record_of_every_table_or_a_reason(adt: ArchiveResult) -> None:
    assert (adt.status, adt.members, adt.skipped, adt.corrupt_members) == ("loaded", 4, (), 0)
    messages = good(adt, "adt_messages", "message_id")
    assert sorted(messages) == sorted(set(MESSAGES) - {"V25-3"})
    assert bad(adt, "adt_messages") == [
        ("adt_delimiters.hl7", "malformed", "message 1: no valid MSH header"),
        ("adt_v25_batch.hl7", "bad_value", "column event_time is before 1850-01-01 (not_before)"),
    ]
    # Every message has a PID and a PV1: one record each, loaded or quarantined.
    for table, failures in (("patients", 1), ("visits", 3)):
        rows = adt.tables[table]
        assert rows.good.num_rows + rows.bad.num_rows == len(MESSAGES)
        assert rows.bad.num_rows == failures
    assert bad(adt, "visits") == [
        ("adt_v23_lf.hl7", "bad_value", "column visit_number is empty but not nullable"),
        ("adt_v24_crlf.hl7", "bad_value", "column admit_time does not match format hl7"),
        ("adt_v25_batch.hl7", "bad_value", "column event_time is before 1850-01-01 (not_before)"),
    ]


def test_hl7_timestamps_keep_their_instant_and_precision(adt: ArchiveResult) -> None:
    messages = good(adt, "adt_messages", "message_id")
    expected = {
        "V23-1": (t(2008, 3, 5, 15, 9), "minute"),  # EVN-2 empty: MSH-7 stands in
        "V24-1": (t(2008, 3, 5, 20, 9, 12), "second"),  # -0500
        "V24-2": (t(2008, 3, 5, 18, 0), "minute"),  # +0000
        "V25-1": (datetime(2024, 1, 15, 9, 30, 0, 123400, tzinfo=UTC), "second.4"),  # +0100
    }
    for message, (moment, precision) in expected.items():
        row = messages[message]
        assert (row["event_time"], row["event_time_precision"]) == (moment, precision), message
    visits = {(r["visit_number"], r["event_type"]): r for r in
              adt.tables["visits"].good.to_pylist()}
    discharged = visits[("ACCT003", "A03")]
    assert (discharged["discharge_time"], discharged["discharge_time_precision"]) == (
        t(2024, 1, 16), "day")
    patients = good(adt, "patients", "event_time")
    born = patients[datetime(2024, 1, 15, 9, 30, 0, 123400, tzinfo=UTC)]
    assert (born["birth_date"], born["birth_date_precision"]) == (date(1980, 1, 1), "minute")


def test_hl7_fields_survive_escapes_repetitions_delimiters_and_fallbacks(
    adt: ArchiveResult,
) -> None:
    messages = good(adt, "adt_messages", "message_id")
    assert messages["V23-2"]["event_type"] == "A08"  # MSH-9.2 empty: EVN-1 stands in
    assert messages["V24-1"]["visit_number"] == "ACCT002"  # PV1-19 empty: PID-18
    assert messages["V23-2"]["visit_number"] is None  # optional in adt_messages
    patients = {(r["mrn"], r["event_time"]): r for r in adt.tables["patients"].good.to_pylist()}
    obrien = patients[("MRN002", t(2008, 3, 5, 20, 9, 12))]
    assert (obrien["family_name"], obrien["given_name"]) == ("O^BRIEN", "MARY")  # \S\ escape
    assert obrien["postal_code"] == "62701"  # PID-3 repeats, subcomponents in PID-3.4
    muller = patients[("MRN003", datetime(2024, 1, 15, 9, 30, 0, 123400, tzinfo=UTC))]
    assert (muller["family_name"], muller["given_name"], muller["sex"]) == ("MÜLLER", "JOSÉ", "U")
    assert muller["postal_code"] == "141 34"  # kept raw in bronze; silver's zip3 makes it null
    doe = patients[("MRN004", t(2024, 1, 15, 12))]  # # $ % @ * delimiters
    assert (doe["family_name"], doe["given_name"], doe["birth_date"]) == (
        "DOE", "JANE", date(1990, 1, 1))
    roe = patients[("MRN005", t(2024, 1, 15, 13))]  # MSH-2 ^~\ : & is data
    assert roe["given_name"] == "RICHARD&JR"
    assert patients[("MRN006", t(2024, 1, 15, 14))]["family_name"] == "ROE"  # MSH-2 ^~}


def test_z_segments_are_rescued_and_counted_as_drift(adt: ArchiveResult) -> None:
    rescued = {r["message_id"]: r["_rescued_data"] for r in
               adt.tables["adt_messages"].good.to_pylist()}
    assert json.loads(rescued["V25-1"]) == {"ZPV": ["ZPV|LOCAL|VIP"]}
    assert adt.drift["adt_messages"] == {"missing": [], "undeclared": ["ZPV"]}


EXPORT = """
name: ehr_export
owners: [clinical-data]
format: {kind: csv, member_pattern: "*.csv"}
archive: {kind: zip}
landing: {prefix: ehr_export/}
freshness: {warn_after: 1d, fail_after: 2d}
tables:
  - name: patients
    member_pattern: "*patients*.csv"
    keys: [id]
    columns:
      - {name: id, source: Id, nullable: false}
      - {name: birth_date, source: BIRTHDATE, type: date, format: iso8601, nullable: false}
      - {name: death_date, source: DEATHDATE, type: date, format: iso8601}
      - {name: first_name, source: FIRST, phi: redact}
      - {name: middle_name, source: MIDDLE, phi: redact}
      - {name: last_name, source: LAST, phi: redact}
      - {name: zip, source: ZIP, phi: zip3}
  - name: encounters
    member_pattern: "*encounters*.csv"
    keys: [id]
    columns:
      - {name: id, source: Id, nullable: false}
      - {name: start, source: START, type: timestamp, format: iso8601, nullable: false}
      - {name: stop, source: STOP, type: timestamp, format: iso8601}
      - {name: patient, source: PATIENT, nullable: false}
      - {name: encounter_class, source: ENCOUNTERCLASS}
"""


@pytest.fixture(scope="module")
def export() -> ArchiveResult:
    members = [
        ("patients.csv", (CORPUS / "csv" / "patients.csv").read_bytes()),
        ("docs/", b""),
        ("README.txt", b"exported by the EHR"),
        ("encounters.csv", (CORPUS / "csv" / "encounters.csv").read_bytes()),
        ("orders.csv", b"Id,CODE\r\no-1,1\r\n"),
        # A NUL byte in the stored name: libarchive reads `encounters_old.csv`.
        (b"encounters_old.csv\x00.bak", (CORPUS / "csv" / "encounters.csv").read_bytes()),
    ]
    multi = Feed.model_validate(yaml.safe_load(EXPORT))
    return read_archive(multi, data=plain_zip(members), path=PATH, password=None)


def test_a_two_table_zip_routes_each_file_and_accounts_for_every_member(
    export: ArchiveResult,
) -> None:
    assert (export.status, export.members, export.corrupt_members) == ("loaded", 3, 1)
    assert export.skipped == (Skipped("docs/", "directory"), Skipped("README.txt", "pattern"),
                              Skipped("orders.csv", "pattern"))
    patients, encounters = export.tables["patients"], export.tables["encounters"]
    assert patients.good.num_rows + patients.bad.num_rows == 4
    assert encounters.good.num_rows + encounters.bad.num_rows == 5 + 1  # + the corrupt member
    assert set(patients.good.column("_source_member").to_pylist()) == {"patients.csv"}
    assert set(encounters.good.column("_source_member").to_pylist()) == {"encounters.csv"}
    assert bad(export, "patients") == [
        ("patients.csv", "bad_value", "column birth_date does not match format iso8601"),
        ("patients.csv", "bad_value", "column birth_date does not match format iso8601"),
    ]
    assert bad(export, "encounters") == [
        ("encounters.csv", "bad_value", "column start does not match format iso8601"),
        ("encounters_old.csv", "corrupt",
         "member #6: its stored name holds a NUL byte and was read cut short"),
    ]


def test_csv_values_with_a_bom_crlf_and_iso_timestamps(export: ArchiveResult) -> None:
    patients = good(export, "patients", "id")  # the BOM is not part of the first header
    assert sorted(patients) == ["p-001", "p-002"]
    assert patients["p-002"]["death_date"] == date(2020, 1, 5)
    assert (patients["p-002"]["first_name"], patients["p-002"]["zip"]) == ("José", "141 34")
    encounters = good(export, "encounters", "id")
    assert sorted(encounters) == ["e-001", "e-002", "e-003", "e-005"]
    assert encounters["e-001"]["start"] == t(2019, 2, 17, 5, 7, 38)
    assert encounters["e-002"]["start"] == t(2019, 2, 17, 3, 7, 38)  # +02:00
    assert encounters["e-002"]["stop"] == datetime(2019, 2, 17, 4, 0, 0, 250000, tzinfo=UTC)
    assert (encounters["e-003"]["start"], encounters["e-003"]["stop"]) == (
        t(2019, 2, 17, 5, 7), None)
    assert encounters["e-005"]["start"] == t(2019, 2, 17, 5, 7, 38)  # no offset: as sent


def test_csv_drift_names_the_missing_and_the_undeclared(export: ArchiveResult) -> None:
    assert export.drift == {
        "patients": {"missing": ["middle_name"], "undeclared": ["PREFIX"]},
        "encounters": {"missing": [], "undeclared": ["CODE"]},
    }
