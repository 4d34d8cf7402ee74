"""read_archive end to end for every shipped feed: good rows, bad rows, quarantine, schemas."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, date, datetime

import pyarrow as pa

from lake_assets.ingest import arrow_schema, quarantine_schema, read_archive, record_schema
from lake_assets.ingest.read import read_archives
from tests.unit.ingest_builders import (
    PASSWORD,
    aes_zip,
    census_txt,
    encounter_xml,
    feed,
    gzipped,
    hl7_message,
    lab_csv,
    with_archive,
    with_table,
    zipcrypto_zip,
)

PATH = "x/2024-01-15/10/FAC00042/archive.zip"
LINEAGE = ["_facility_id", "_source_archive", "_archive_sha256", "_ingested_at", "_batch_id"]


def test_lab_results_zip_loads_typed_rows_and_quarantines_bad_ones() -> None:
    lab = feed("lab_results")
    rows = [{}, {"result_id": "R2", "value": "high"}, {"result_id": "R3", "mrn": ""}]
    data = aes_zip([("a.csv", lab_csv(rows, extra={"Comment": "ok"})), ("b.csv", lab_csv([{}]))])
    result = read_archive(lab, data=data, path=PATH, password=PASSWORD)
    assert (result.status, result.reason, result.members) == ("loaded", None, 2)
    table = result.tables["lab_results"]
    assert table.good.schema == record_schema(lab.tables[0])
    assert table.good.column("mrn").to_pylist() == ["01234", "01234"]
    assert table.good.column("birth_date").to_pylist() == [date(1980, 2, 29)] * 2
    assert table.good.column("_source_member").to_pylist() == ["a.csv", "b.csv"]
    assert table.good.column("_rescued_data").to_pylist() == ['{"Comment":"ok"}', None]
    assert table.bad.column_names == ["_source_member", "_reason", "_error", "_raw"]
    assert table.bad.column("_reason").to_pylist() == ["bad_value", "bad_value"]
    assert table.bad.column("_error").to_pylist() == [
        "column value is not a double",
        "column mrn is empty but not nullable",
    ]
    assert json.loads(table.bad.column("_raw")[0].as_py())["value"] == "high"
    assert (result.good_rows, result.bad_rows) == (2, 2)


def test_adt_zipcrypto_fills_three_tables_and_counts_malformed_in_the_first() -> None:
    adt = feed("adt_events")
    text = "EVN|A01\r" + hl7_message("M1") + "\r\n" + hl7_message("M2", pid=False)
    result = read_archive(
        adt, data=zipcrypto_zip([("f.txt", text.encode())]), path=PATH, password=PASSWORD
    )
    counts = {name: (t.good.num_rows, t.bad.num_rows) for name, t in result.tables.items()}
    assert counts == {"adt_messages": (1, 2), "patients": (1, 0), "visits": (1, 1)}
    messages = result.tables["adt_messages"]
    assert messages.bad.column("_reason").to_pylist() == ["malformed", "missing_column"]
    assert messages.good.column("event_time").to_pylist() == [
        datetime(2024, 1, 15, 10, 30, tzinfo=UTC)]
    assert messages.good.column("event_time_precision").to_pylist() == ["second"]


def test_encounter_xml_zip_with_many_files() -> None:
    xml = feed("patient_encounters")
    files = [(f"e{n}.xml", encounter_xml(f"E{n}", diagnoses=n % 3)) for n in range(30)]
    files.append(("broken.xml", b"<Encounter>"))
    result = read_archive(xml, data=aes_zip(files), path=PATH, password=PASSWORD)
    assert result.members == 31
    assert result.tables["encounters"].good.num_rows == 30
    assert result.tables["encounters"].bad.column("_source_member").to_pylist() == ["broken.xml"]
    assert result.tables["diagnoses"].good.num_rows == sum(n % 3 for n in range(30))
    assert result.tables["diagnoses"].good.column("rank").type == pa.int32()


def test_bed_census_latin1_delimited() -> None:
    census = feed("bed_census")
    lines = [
        "FAC00042|2024-01-15 10:00:00|Médecine|B1|MEDSURG|occupied|M1|Y",
        "FAC00042|2024-01-15 10:00:00|ICU1|B2|ICU|available||N",
    ]
    result = read_archive(
        census, data=aes_zip([("c.txt", census_txt(lines))]), path=PATH, password=PASSWORD
    )
    good = result.tables["bed_census"].good
    assert good.column("unit").to_pylist() == ["Médecine", "ICU1"]
    assert good.column("licensed").to_pylist() == [True, False]
    assert good.column("mrn").to_pylist() == ["M1", None]


def test_gzip_and_plain_archives() -> None:
    lab = feed("lab_results")
    gz = with_archive(lab, kind="gzip", password_secret=None)
    result = read_archive(gz, data=gzipped(lab_csv([{}])), path="d/a.csv.gz", password=None)
    assert result.tables["lab_results"].good.column("_source_member").to_pylist() == ["a.csv"]
    plain = with_archive(lab, kind="none", password_secret=None)
    result = read_archive(plain, data=lab_csv([{}, {}]), path="d/a.csv", password=None)
    assert result.good_rows == 2


def test_undecodable_member_quarantines_the_whole_archive() -> None:
    lab = feed("lab_results")
    data = aes_zip(
        [("a.csv", lab_csv([{}])), ("b.csv", lab_csv([{"test_name": "x"}]) + b"\xff\xfe")]
    )
    result = read_archive(lab, data=data, path=PATH, password=PASSWORD)
    assert (result.status, result.reason) == ("quarantined", "bad_encoding")
    assert "member #2 is not valid utf-8" in (result.message or "")
    assert result.good_rows == result.bad_rows == 0
    assert result.tables["lab_results"].good.schema == record_schema(lab.tables[0])


def test_quarantined_archive_has_reason_message_and_empty_tables() -> None:
    xml = feed("patient_encounters")
    result = read_archive(xml, data=b"", path=PATH, password=PASSWORD)
    assert (result.status, result.reason) == ("quarantined", "empty")
    assert result.message == (
        f"feed patient_encounters: archive {PATH} quarantined (empty): the archive has zero bytes"
    )
    assert set(result.tables) == {"encounters", "diagnoses"}


def test_utf8_byte_order_mark_is_ignored() -> None:
    lab = feed("lab_results")
    data = aes_zip([("a.csv", b"\xef\xbb\xbf" + lab_csv([{}]))])
    assert read_archive(lab, data=data, path=PATH, password=PASSWORD).good_rows == 1


def test_fail_mode_quarantines_rows_of_a_file_with_an_undeclared_header() -> None:
    lab = with_table(feed("lab_results"), schema_evolution="fail")
    data = aes_zip([("a.csv", lab_csv([{}, {}], extra={"Comment": ""})), ("b.csv", lab_csv([{}]))])
    result = read_archive(lab, data=data, path=PATH, password=PASSWORD)
    table = result.tables["lab_results"]
    assert table.good.column("_source_member").to_pylist() == ["b.csv"]
    assert table.bad.column("_reason").to_pylist() == ["schema_mismatch"] * 2


def test_arrow_schema_is_declared_types_rescued_member_and_lineage() -> None:
    adt = feed("adt_events")
    schema = arrow_schema(adt.table("visits"))
    declared = []
    for column in adt.table("visits").columns:
        declared += [column.name] + ([f"{column.name}_precision"] if column.format == "hl7" else [])
    assert schema.names == [*declared, "_rescued_data", "_source_member", *LINEAGE]
    assert "admit_time_precision" in schema.names
    assert schema.field("admit_time").type == pa.timestamp("us", tz="UTC")
    assert schema.field("_ingested_at").type == pa.timestamp("us", tz="UTC")
    assert quarantine_schema().names == ["_source_member", "_reason", "_error", "_raw", *LINEAGE]


def test_result_pickles_for_the_trip_back_from_an_executor() -> None:
    lab = feed("lab_results")
    result = read_archive(
        lab, data=aes_zip([("a.csv", lab_csv([{}]))]), path=PATH, password=PASSWORD
    )
    copy = pickle.loads(pickle.dumps(result))
    assert copy.tables["lab_results"].good.equals(result.tables["lab_results"].good)
    assert pickle.loads(pickle.dumps(lab)) == lab


def test_archives_read_together_get_what_each_gets_alone() -> None:
    """read_archives parses several archives in one pass; each gets its own rows back, and a
    bad archive among them is quarantined on its own."""
    adt = feed("adt_events")
    first = zipcrypto_zip([("f.txt", (hl7_message("M1") + hl7_message("M2")).encode()),
                           ("g.txt", hl7_message("M3", pid=False).encode())])
    second = zipcrypto_zip([("f.txt", ("EVN|A01\r" + hl7_message("M4")).encode())])
    wrong = zipcrypto_zip([("f.txt", hl7_message("M5").encode())], password="not it")
    empty_names = zipcrypto_zip([("0/1.txt", hl7_message("M6", event="A08").encode())])
    archives = [("a/1.zip", first), ("a/2.zip", wrong), ("a/3.zip", second),
                ("a/4.zip", empty_names)]

    together = read_archives(adt, archives, password=PASSWORD)
    alone = [read_archive(adt, data=data, path=path, password=PASSWORD)
             for path, data in archives]

    assert [r.status for r in together] == ["loaded", "quarantined", "loaded", "loaded"]
    for mine, theirs in zip(together, alone, strict=True):
        assert (mine.status, mine.reason, mine.members) == (theirs.status, theirs.reason,
                                                            theirs.members)
        for name, rows in mine.tables.items():
            assert rows.good.equals(theirs.tables[name].good), name
            assert rows.bad.equals(theirs.tables[name].bad), name
    assert together[3].tables["adt_messages"].good.column("_source_member").to_pylist() == [
        "0/1.txt"]
