"""Hostile input never crashes the core: it loads, or it is quarantined with a reason code."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lake_assets.ingest import read_archive
from lake_assets.ingest.parsers import build_parser
from tests.unit.ingest_builders import (
    PASSWORD,
    aes_zip,
    encounter_xml,
    feed,
    hl7_message,
    lab_csv,
    plain_zip,
    zipcrypto_zip,
)

REASONS = {"corrupt", "truncated", "empty", "wrong_password", "too_large", "bad_encoding"}
ROW_REASONS = {"malformed", "missing_column", "bad_value", "schema_mismatch"}
FEEDS = {name: feed(name) for name in ("lab_results", "adt_events", "patient_encounters")}
SAMPLES = {
    "lab_results": lab_csv([{}, {"value": "x"}]),
    "adt_events": (hl7_message("M1", extra=("ZPV|1",)) + hl7_message("M2")).encode(),
    "patient_encounters": encounter_xml("E1"),
}
MEMBER = {"lab_results": "a.csv", "adt_events": "a.txt", "patient_encounters": "a.xml"}
ARCHIVES = {
    (name, build.__name__): build([(MEMBER[name], SAMPLES[name])], PASSWORD)
    if build is not plain_zip
    else plain_zip([(MEMBER[name], SAMPLES[name])])
    for name in FEEDS
    for build in (aes_zip, zipcrypto_zip, plain_zip)
}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.sampled_from(sorted(ARCHIVES)), st.data())
def test_damaged_archives_load_or_are_quarantined(
    key: tuple[str, str], data: st.DataObject
) -> None:
    archive = bytearray(ARCHIVES[key])
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(archive) - 1))
        archive[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(archive)))
    result = read_archive(FEEDS[key[0]], data=bytes(archive[:cut]), path="p", password=PASSWORD)
    assert result.status in ("loaded", "quarantined")
    if result.status == "quarantined":
        assert result.reason in REASONS
    for table in result.tables.values():
        assert set(table.bad.column("_reason").to_pylist()) <= ROW_REASONS


@FUZZ
@given(st.sampled_from(sorted(FEEDS)), st.data())
def test_mangled_data_files_never_crash_a_parser(name: str, data: st.DataObject) -> None:
    text = SAMPLES[name].decode()
    alphabet = st.sampled_from([*text, "|", "^", "~", "\\", "&", '"', ",", "<", ">", "\r", "\n"])
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(text)), alphabet), max_size=12))
    for position, character in edits:
        text = text[:position] + character + text[position + 1 :]
    parsed = build_parser(FEEDS[name])(member="m", text=text)
    for records in parsed.bad.values():
        assert {record.reason for record in records} <= ROW_REASONS


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text_never_crashes_a_parser(text: str) -> None:
    for of in FEEDS.values():
        build_parser(of)(member="m", text=text)
