"""The metadata loader: the shipped metadata loads, and each broken rule names file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from lake_assets.catalog.loader import load_catalog
from lake_assets.errors import MetadataError
from tests.conftest import METADATA, EditFn


def problems_of(root: Path) -> list[str]:
    with pytest.raises(MetadataError) as caught:
        load_catalog(root)
    return [str(p) for p in caught.value.problems]


def test_shipped_metadata_loads_every_format() -> None:
    catalog = load_catalog(METADATA)
    formats = {feed.format.kind for feed in catalog.feeds}
    assert formats == {"csv", "delimited", "hl7v2", "xml"}
    adt = catalog.feed("adt_events")
    assert adt.archive.password_secret == "ADT_ZIP_PASSWORD"
    assert adt.freshness.warn_after.total_seconds() == 3600
    assert catalog.feed("bed_census").partitions == ("date", "facility")
    assert catalog.file_of("feed", "lab_results") == "feeds/lab_results.yaml"


def test_unknown_key_names_file_and_key_path(edit_yaml: EditFn, metadata_copy: Path) -> None:
    edit_yaml("feeds/lab_results.yaml", lambda d: d["tables"][0]["columns"][1].update(colour=1))
    assert problems_of(metadata_copy) == [
        "feeds/lab_results.yaml: tables[lab_results].columns[facility_code].colour: "
        "unknown key (not part of the metadata schema)"
    ]


def test_bad_enum_says_what_was_expected(edit_yaml: EditFn, metadata_copy: Path) -> None:
    edit_yaml("feeds/adt_events.yaml", lambda d: d["tables"][1]["columns"][0].update(phi="mask"))
    (problem,) = problems_of(metadata_copy)
    assert problem.startswith("feeds/adt_events.yaml: tables[patients].columns[mrn].phi: ")
    assert "'hash'" in problem and "'zip3'" in problem


def test_every_problem_is_listed_not_just_the_first(
    edit_yaml: EditFn, metadata_copy: Path
) -> None:
    edit_yaml("feeds/lab_results.yaml", lambda d: d.pop("freshness"))
    edit_yaml("feeds/bed_census.yaml", lambda d: d["format"].update(delimiter=None))
    found = problems_of(metadata_copy)
    assert "feeds/lab_results.yaml: freshness: required key is missing" in found
    assert any(p.startswith("feeds/bed_census.yaml: format: ") for p in found)


def test_invalid_yaml_names_the_line(metadata_copy: Path) -> None:
    (metadata_copy / "feeds" / "broken.yaml").write_text("name: x\ntables: [\n")
    (problem,) = problems_of(metadata_copy)
    assert problem.startswith("feeds/broken.yaml: line ")
    assert "invalid YAML" in problem


def test_duplicate_yaml_key_is_an_error(metadata_copy: Path) -> None:
    path = metadata_copy / "feeds" / "bed_census.yaml"
    path.write_text(path.read_text() + "encoding: utf-8\n")
    (problem,) = problems_of(metadata_copy)
    assert "feeds/bed_census.yaml" in problem and "duplicate key 'encoding'" in problem


# One test per cross-file rule.


def test_rule_feed_names_are_unique(metadata_copy: Path) -> None:
    source = metadata_copy / "feeds" / "lab_results.yaml"
    copy = metadata_copy / "feeds" / "lab_results_copy.yaml"
    copy.write_text(source.read_text().replace("prefix: lab_results/", "prefix: lab_copy/"))
    assert problems_of(metadata_copy) == [
        "feeds/lab_results_copy.yaml: name: feed 'lab_results' is also declared in "
        "feeds/lab_results.yaml"
    ]


def test_rule_projection_names_are_unique(metadata_copy: Path) -> None:
    folder = metadata_copy / "projections"
    (folder / "zz_copy.yaml").write_text((folder / "daily_census.yaml").read_text())
    assert problems_of(metadata_copy) == [
        "projections/zz_copy.yaml: name: projection 'daily_census' is also declared in "
        "projections/daily_census.yaml"
    ]


def test_rule_table_and_column_names_unique_in_feed(
    edit_yaml: EditFn, metadata_copy: Path
) -> None:
    def duplicate(data: dict) -> None:
        data["tables"].append(data["tables"][0])
        data["tables"][1]["columns"].append(data["tables"][1]["columns"][0])

    edit_yaml("feeds/adt_events.yaml", duplicate)
    found = problems_of(metadata_copy)
    assert (
        "feeds/adt_events.yaml: tables[adt_messages].name: table 'adt_messages' is declared "
        "twice in feed 'adt_events'"
    ) in found
    assert any("tables[patients].columns[mrn].name: column 'mrn' is declared twice" in p
               for p in found)


def test_rule_referenced_owners_exist(edit_yaml: EditFn, metadata_copy: Path) -> None:
    edit_yaml("feeds/lab_results.yaml", lambda d: d["subscribers"].append("finance"))
    edit_yaml("projections/daily_census.yaml", lambda d: d.update(owners=["nobody"]))
    found = problems_of(metadata_copy)
    assert len(found) == 2
    assert found[0].startswith(
        "feeds/lab_results.yaml: subscribers[2]: team 'finance' is not declared in owners.yaml"
    )
    assert found[1].startswith(
        "projections/daily_census.yaml: owners[0]: team 'nobody' is not declared"
    )


def test_rule_keys_name_real_columns(edit_yaml: EditFn, metadata_copy: Path) -> None:
    edit_yaml("feeds/lab_results.yaml", lambda d: d["tables"][0].update(keys=["result_uid"]))
    (problem,) = problems_of(metadata_copy)
    assert problem.startswith(
        "feeds/lab_results.yaml: tables[lab_results].keys[0]: 'result_uid' is not a column of "
        "table 'lab_results'"
    )


def test_rule_sequence_by_names_a_real_column(edit_yaml: EditFn, metadata_copy: Path) -> None:
    edit_yaml("feeds/adt_events.yaml", lambda d: d["tables"][2].update(sequence_by="sent_at"))
    (problem,) = problems_of(metadata_copy)
    assert problem.startswith(
        "feeds/adt_events.yaml: tables[visits].sequence_by: 'sent_at' is not a column"
    )


def test_rule_references_name_real_tables(edit_yaml: EditFn, metadata_copy: Path) -> None:
    edit_yaml(
        "feeds/patient_encounters.yaml",
        lambda d: d["tables"][0]["checks"]["references"][0].update(table="people"),
    )
    assert problems_of(metadata_copy) == [
        "feeds/patient_encounters.yaml: tables[encounters].checks.references[0].table: "
        "no table named 'people'"
    ]


def test_rule_landing_prefixes_do_not_overlap(edit_yaml: EditFn, metadata_copy: Path) -> None:
    edit_yaml("feeds/lab_results.yaml", lambda d: d["landing"].update(prefix="adt_events/lab/"))
    (problem,) = problems_of(metadata_copy)
    assert problem.startswith(
        "feeds/lab_results.yaml: landing.prefix: prefix 'adt_events/lab/' overlaps 'adt_events/'"
    )


def test_rule_selectors_fit_the_format(edit_yaml: EditFn, metadata_copy: Path) -> None:
    edit_yaml("feeds/patient_encounters.yaml", lambda d: d["tables"][1].pop("selector"))
    edit_yaml("feeds/adt_events.yaml", lambda d: d["tables"][1].update(selector="pid"))
    found = problems_of(metadata_copy)
    assert any(p.startswith("feeds/adt_events.yaml: tables[patients].selector: 'pid' is not an")
               for p in found)
    assert any(p.startswith("feeds/patient_encounters.yaml: tables[diagnoses].selector: format "
                            "xml needs a selector") for p in found)


def test_rule_shared_table_names_agree(edit_yaml: EditFn, metadata_copy: Path) -> None:
    def rename(data: dict) -> None:
        data["tables"][0]["name"] = "patients"

    edit_yaml("feeds/patient_encounters.yaml", rename)
    found = problems_of(metadata_copy)
    assert any(
        p.startswith("feeds/patient_encounters.yaml: tables[patients]: table 'patients' is also "
                     "declared by feed 'adt_events'")
        for p in found
    )


def test_rule_projection_sql_file_exists(metadata_copy: Path) -> None:
    (metadata_copy / "projections" / "daily_census.sql").unlink()
    assert problems_of(metadata_copy) == [
        "projections/daily_census.yaml: sql: SQL file 'daily_census.sql' does not exist next "
        "to the YAML"
    ]


def test_rule_cdc_needs_keys(edit_yaml: EditFn, metadata_copy: Path) -> None:
    edit_yaml("feeds/lab_results.yaml", lambda d: d["tables"][0].update(keys=[]))
    assert problems_of(metadata_copy) == [
        "feeds/lab_results.yaml: tables[lab_results].keys: cdc scd1 needs at least one key"
    ]


def test_maintenance_keeps_the_time_travel_window_and_zorders_real_columns(
    edit_yaml: EditFn, metadata_copy: Path
) -> None:
    def change(feed: dict) -> None:
        feed["maintenance"] = {"time_travel": "7d", "vacuum_after": "2d",
                               "zorder_by": ["_facility_id"]}
    edit_yaml("feeds/lab_results.yaml", change)
    [problem] = problems_of(metadata_copy)
    assert problem.startswith("feeds/lab_results.yaml: maintenance: vacuum_after (2 days")
    assert "break the promised time travel" in problem

    edit_yaml("feeds/lab_results.yaml",
              lambda feed: feed.update(maintenance={"zorder_by": ["_facility_id", "ward"]}))
    assert problems_of(metadata_copy) == [
        "feeds/lab_results.yaml: maintenance.zorder_by[1]: 'ward' is not a column of table(s) "
        "lab_results"
    ]
