"""One validation path: `lakehouse validate` and the definitions load judge metadata with the
same function, so every fixture that fails one fails the other with the same problems."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lake_assets.cli import app
from lake_assets.definitions import defs
from lake_assets.errors import MetadataError
from tests.conftest import EditFn

Edit = Callable[[dict[str, Any]], None]


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in data["tables"] if t["name"] == name)


def _column(data: dict[str, Any], table: str, name: str) -> dict[str, Any]:
    return next(c for c in _table(data, table)["columns"] if c["name"] == name)


def _scd1_without_sequence(data: dict[str, Any]) -> None:
    del _table(data, "visits")["sequence_by"]


def _redacted_key(data: dict[str, Any]) -> None:
    _column(data, "visits", "visit_number")["phi"] = "redact"


def _tagged_sequence(data: dict[str, Any]) -> None:
    _column(data, "visits", "event_time")["phi"] = "year_only"


def _append_with_deletes(data: dict[str, Any]) -> None:
    _table(data, "adt_messages")["deletes"] = {"column": "event_type", "values": ["A23"]}


def _bad_hl7_path(data: dict[str, Any]) -> None:
    _column(data, "visits", "unit")["source"] = "PV1.3"


def _bad_fallback_path(data: dict[str, Any]) -> None:
    _column(data, "visits", "room")["source"] = ["PV1-3.2", "room"]


def _precision_collision(data: dict[str, Any]) -> None:
    _table(data, "visits")["columns"].append({"name": "admit_time_precision"})


def _list_source_in_csv(data: dict[str, Any]) -> None:
    _column(data, "lab_results", "unit")["source"] = ["unit", "units"]


def _bad_xpath(data: dict[str, Any]) -> None:
    _column(data, "encounters", "mrn")["source"] = "Patient/[MRN"


def _unsupported_directive(data: dict[str, Any]) -> None:
    _column(data, "lab_results", "collected_at")["format"] = "%c"


FIXTURES: list[tuple[str, str, Edit, str]] = [
    ("feeds/adt_events.yaml", "scd1 without sequence_by", _scd1_without_sequence,
     "needs sequence_by"),
    ("feeds/adt_events.yaml", "key tagged redact", _redacted_key, "only keys may be tagged"),
    ("feeds/adt_events.yaml", "tagged sequence_by", _tagged_sequence, "(ordering)"),
    ("feeds/adt_events.yaml", "append with deletes", _append_with_deletes, "deletes need cdc"),
    ("feeds/adt_events.yaml", "bad HL7 path", _bad_hl7_path, "not an HL7 field path"),
    ("feeds/adt_events.yaml", "bad fallback path", _bad_fallback_path, "'room' is not an HL7"),
    ("feeds/adt_events.yaml", "precision collision", _precision_collision, "format hl7 adds"),
    ("feeds/lab_results.yaml", "list source in CSV", _list_source_in_csv, "only hl7v2"),
    ("feeds/patient_encounters.yaml", "bad XPath", _bad_xpath, "not a valid XPath"),
    ("feeds/lab_results.yaml", "unsupported directive", _unsupported_directive,
     "'%c' is not supported"),
]


def validate_problems(root: Path) -> list[str]:
    """The problems `lakehouse validate` prints, one per line; [] when it passes."""
    result = CliRunner().invoke(app, ["validate", str(root)])
    if result.exit_code == 0:
        return []
    lines = result.output.splitlines()
    return [line.removeprefix("✗ ") for line in lines if line.startswith("✗ ")]


def load_problems(root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The problems the definitions load raises; [] when it loads."""
    monkeypatch.setenv("LAKE_METADATA", str(root))
    try:
        defs()
    except MetadataError as exc:
        return [str(problem) for problem in exc.problems]
    return []


@pytest.mark.parametrize(("file", "about", "edit", "expected"), FIXTURES,
                         ids=[f[1] for f in FIXTURES])
def test_validate_and_the_definitions_load_give_the_same_errors(
    metadata_copy: Path, edit_yaml: EditFn, monkeypatch: pytest.MonkeyPatch,
    file: str, about: str, edit: Edit, expected: str,
) -> None:
    edit_yaml(file, edit)
    from_cli = validate_problems(metadata_copy)
    from_load = load_problems(metadata_copy, monkeypatch)
    assert from_cli, f"lakehouse validate passed metadata with a {about}"
    assert sorted(from_cli) == sorted(from_load)
    assert any(expected in problem and file in problem for problem in from_cli), from_cli


def test_bad_projection_sql_fails_validate_like_the_load(
    metadata_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (metadata_copy / "projections" / "broken.sql").write_text("SELECT * FROM silver.vists")
    (metadata_copy / "projections" / "broken.yaml").write_text(
        "name: broken\nowners: [analytics]\nsql: broken.sql\n"
        "freshness: {warn_after: 1h, fail_after: 2h}\n")
    from_cli = validate_problems(metadata_copy)
    assert from_cli and sorted(from_cli) == sorted(load_problems(metadata_copy, monkeypatch))
    assert any("projections/broken.sql" in p and "unknown table" in p for p in from_cli)


def test_the_shipped_metadata_passes_both(monkeypatch: pytest.MonkeyPatch,
                                          metadata_copy: Path) -> None:
    assert validate_problems(metadata_copy) == []
    assert load_problems(metadata_copy, monkeypatch) == []
