"""Parsers: raw string records per table, undeclared fields, and malformed records."""

from __future__ import annotations

import json

import pytest

from lake_assets.catalog.models import Feed
from lake_assets.errors import ColumnSourceError
from lake_assets.ingest.parsers import build_parser, hl7
from lake_assets.ingest.records import ParsedFile, as_array
from tests.unit.ingest_builders import (
    CENSUS_HEADER,
    LAB_ROW,
    encounter_xml,
    feed,
    hl7_message,
    lab_csv,
    with_table,
)

LAB = feed("lab_results")
ADT = feed("adt_events")
XML = feed("patient_encounters")
CENSUS = feed("bed_census")


def parse(of: Feed, text: str | bytes) -> ParsedFile:
    decoded = text.decode(of.encoding) if isinstance(text, bytes) else text
    return build_parser(of)(member="m1", text=decoded)


def column(parsed: ParsedFile, table: str, name: str) -> list[str | None]:
    return parsed.tables[table].column(name).to_pylist()


def reasons(parsed: ParsedFile, table: str) -> list[tuple[str, str]]:
    return [(b.reason, b.error) for b in parsed.bad.get(table, [])]


# CSV ---------------------------------------------------------------------------------------


def test_csv_reads_every_value_as_a_string_keeping_leading_zeros() -> None:
    parsed = parse(LAB, lab_csv([{"mrn": "01234", "value": "007"}, {"mrn": "00000"}]))
    assert column(parsed, "lab_results", "mrn") == ["01234", "00000"]
    assert column(parsed, "lab_results", "value") == ["007", "5.4"]
    assert parsed.tables["lab_results"].unknown == [None, None]


def test_csv_quoted_fields_with_delimiters_and_newlines() -> None:
    parsed = parse(LAB, lab_csv([{"test_name": 'Gluc, "fasting"\nAM'}]))
    assert column(parsed, "lab_results", "test_name") == ['Gluc, "fasting"\nAM']


def test_csv_wrong_field_count_is_malformed_and_names_no_value() -> None:
    text = lab_csv([{}, {}]).decode() + "R9,FAC00042,only-three\r\n"
    parsed = parse(LAB, text)
    assert parsed.tables["lab_results"].num_rows == 2
    ((reason, error),) = reasons(parsed, "lab_results")
    assert reason == "malformed"
    assert error == "record 4: 3 fields, expected 13"
    assert json.loads(parsed.bad["lab_results"][0].raw) == "R9,FAC00042,only-three"


def test_csv_extra_headers_are_unknown_fields_and_missing_headers_are_absent() -> None:
    header = [name for name in LAB_ROW if name != "unit"] + ["Comment"]
    row = [LAB_ROW[name] for name in header[:-1]] + ["hemolysed"]
    parsed = parse(LAB, ",".join(header) + "\n" + ",".join(row) + "\n")
    assert parsed.tables["lab_results"].unknown == [{"Comment": "hemolysed"}]
    assert column(parsed, "lab_results", "unit") == [None]
    assert column(parsed, "lab_results", "test_name") == ["Glucose"]


def test_csv_header_only_and_empty_file_have_no_rows() -> None:
    assert parse(LAB, ",".join(LAB_ROW) + "\n").tables["lab_results"].num_rows == 0
    assert parse(LAB, "").tables == {}


# Delimited ----------------------------------------------------------------------------------


def test_delimited_has_no_quoting_and_reads_latin1() -> None:
    text = CENSUS_HEADER + '\nFAC00042|2024-01-15 10:00:00|Médecine "A"|B1|ICU|occupied||Y\n'
    parsed = parse(CENSUS, text.encode("latin-1"))
    assert column(parsed, "bed_census", "unit") == ['Médecine "A"']
    assert column(parsed, "bed_census", "mrn") == [""]


def test_delimited_wrong_field_count_is_malformed() -> None:
    text = CENSUS_HEADER + "\nFAC00042|x\n"
    assert reasons(parse(CENSUS, text), "bed_census") == [
        ("malformed", "record 2: 2 fields, expected 8")
    ]


# HL7 ---------------------------------------------------------------------------------------


def test_hl7_field_paths_components_and_selectors() -> None:
    parsed = parse(ADT, hl7_message("M1") + "\r\n" + hl7_message("M2", event="A08"))
    assert column(parsed, "adt_messages", "message_id") == ["M1", "M2"]
    assert column(parsed, "adt_messages", "event_type") == ["A01", "A08"]
    assert column(parsed, "adt_messages", "mrn") == ["MRN123", "MRN123"]
    assert column(parsed, "patients", "given_name") == ["Jane", "Jane"]
    assert column(parsed, "patients", "postal_code") == ["02134", "02134"]
    assert column(parsed, "visits", "bed") == ["A", "A"]
    assert column(parsed, "visits", "discharge_time") == ["", ""]


@pytest.mark.parametrize("end", ["\r", "\n", "\r\n"], ids=["cr", "lf", "crlf"])
def test_hl7_accepts_every_segment_terminator(end: str) -> None:
    text = (hl7_message("M1") + hl7_message("M2")).replace("\r", end)
    assert column(parse(ADT, text), "adt_messages", "message_id") == ["M1", "M2"]


def test_hl7_each_selector_occurrence_is_a_record_other_segments_use_the_first() -> None:
    message = hl7_message("M1").replace("PV1|1|I|ICU", "PV1|1|I|ICU") + "PV1|2|O|ED^1^B\r"
    parsed = parse(ADT, message)
    assert column(parsed, "visits", "unit") == ["ICU", "ED"]
    assert column(parsed, "visits", "mrn") == ["MRN123", "MRN123"]
    assert column(parsed, "adt_messages", "patient_class") == ["I"]


def test_hl7_missing_segment_is_absent_and_z_segments_are_unknown() -> None:
    parsed = parse(ADT, hl7_message("M1", pid=False, extra=("ZPV|custom|1", "ZPV|custom|2")))
    assert column(parsed, "adt_messages", "mrn") == [None]
    assert parsed.tables["patients"].num_rows == 0
    assert parsed.tables["adt_messages"].unknown == [{"ZPV": ["ZPV|custom|1", "ZPV|custom|2"]}]


def test_hl7_escape_sequences_are_decoded() -> None:
    message = hl7_message("M1").replace("Doe^Jane", "O\\S\\Brien^Ann \\T\\ Jo")
    parsed = parse(ADT, message)
    assert column(parsed, "patients", "family_name") == ["O^Brien"]
    assert column(parsed, "patients", "given_name") == ["Ann & Jo"]


@pytest.mark.parametrize(
    "bad",
    ["EVN|A01|20240115\rPID|1||X\r", "MSH|\rEVN|A01\r", "MSH|^~\\&^|EHR\r", "MSHX^~\\&|EHR\r"],
    ids=["no-msh", "no-encoding", "repeated-encoding-char", "alnum-separator"],
)
def test_hl7_message_without_a_valid_msh_is_one_malformed_record(bad: str) -> None:
    parsed = parse(ADT, bad + hl7_message("M2"))
    assert column(parsed, "adt_messages", "message_id") == ["M2"]
    assert [reason for reason, _ in reasons(parsed, "adt_messages")] == ["malformed"]
    assert "patients" not in parsed.bad


def test_hl7_files_of_an_archive_read_together_keep_their_members_and_values() -> None:
    custom = hl7_message("C1").replace("|", "#").replace("^", "$").replace("~", "%")
    custom = custom.replace("\\", "@").replace("&", "*")
    files = [("a.txt", hl7_message("A1") + hl7_message("A2", extra=("ZPV|z",))),
             ("custom.txt", custom),
             ("broken.txt", "EVN|A01\r" + hl7_message("B1")),
             ("empty.txt", "\r\n"),
             ("c.txt", hl7_message("C2", pid=False))]

    parsed = hl7.parse_files(hl7.build_layout(ADT), files)

    messages = parsed.tables["adt_messages"]
    by_id = dict(zip(messages.column("message_id").to_pylist(),
                     as_array([messages.members]).to_pylist(), strict=True))
    assert by_id == {"A1": "a.txt", "A2": "a.txt", "C2": "c.txt", "C1": "custom.txt",
                     "B1": "broken.txt"}
    unknown = dict(zip(messages.column("message_id").to_pylist(), messages.unknown, strict=True))
    assert unknown["A2"] == {"ZPV": ["ZPV|z"]} and unknown["A1"] is None
    patients = parsed.tables["patients"]
    assert sorted(patients.column("given_name").to_pylist()) == ["Jane"] * 4
    assert [(b.member, b.reason) for b in parsed.bad["adt_messages"]] == [
        ("broken.txt", "malformed")]


def test_hl7_source_that_is_not_a_field_path_is_a_metadata_error() -> None:
    broken_columns = (ADT.tables[0].columns[0].model_copy(update={"source": "PID3"}),)
    broken = with_table(ADT, columns=broken_columns + ADT.tables[0].columns[1:])
    with pytest.raises(ColumnSourceError, match="adt_events table adt_messages column message_id"):
        build_parser(broken)


# XML ---------------------------------------------------------------------------------------


def test_xml_records_and_parent_relative_columns() -> None:
    parsed = parse(XML, encounter_xml("E7", diagnoses=3))
    assert column(parsed, "encounters", "encounter_id") == ["E7"]
    assert column(parsed, "encounters", "family_name") == ["Doe"]
    assert column(parsed, "encounters", "discharge_time") == [""]
    assert column(parsed, "diagnoses", "rank") == ["1", "2", "3"]
    assert column(parsed, "diagnoses", "encounter_id") == ["E7", "E7", "E7"]
    assert parsed.tables["encounters"].unknown == [None]


def test_xml_missing_element_is_absent() -> None:
    text = encounter_xml("E1").decode().replace("<Patient><MRN>01234</MRN>", "<Patient>")
    assert column(parse(XML, text), "encounters", "mrn") == [None]


def test_xml_unmapped_leaves_go_to_the_nearest_record() -> None:
    text = encounter_xml(
        "E1", patient_extra="<Phone>1</Phone><Phone>2</Phone>", extra="<Ward>4W</Ward>"
    ).decode()
    text = text.replace("<Rank>1</Rank>", "<Rank>1</Rank><OnAdmission>Y</OnAdmission>")
    parsed = parse(XML, text)
    assert parsed.tables["encounters"].unknown == [{"Patient/Phone": ["1", "2"], "Ward": "4W"}]
    assert parsed.tables["diagnoses"].unknown == [{"OnAdmission": "Y"}, None]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<Encounter><EncounterId>E1</Encounter>", "not well-formed XML (line 1)"),
        ("<Visit><Id>1</Id></Visit>", "no record matches the first table's selector"),
        ("", "not well-formed XML (line 1)"),
    ],
    ids=["not-well-formed", "other-root", "empty"],
)
def test_xml_bad_document_is_one_malformed_record_of_the_first_table(text: str, error: str) -> None:
    parsed = parse(XML, text)
    assert reasons(parsed, "encounters") == [("malformed", error)]
    assert "diagnoses" not in parsed.bad
    assert json.loads(parsed.bad["encounters"][0].raw) == text


def test_xml_invalid_xpath_is_a_metadata_error() -> None:
    with pytest.raises(ColumnSourceError, match="patient_encounters table encounters selector"):
        build_parser(with_table(XML, selector="/Encounter[["))
