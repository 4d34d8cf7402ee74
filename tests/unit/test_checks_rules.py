"""Compiling column and table metadata into named row rules, per layer."""

from __future__ import annotations

import pickle

import pytest

from lake_assets.catalog.loader import load_catalog
from lake_assets.catalog.models import Bounds, Column, ColumnChecks, Table, TableChecks
from lake_assets.checks import compile_rules
from tests.conftest import METADATA


def table(*columns: Column, **fields: object) -> Table:
    return Table(name="t", columns=columns, **fields)  # type: ignore[arg-type]


def test_rule_names_checks_and_metadata_settings() -> None:
    rules = compile_rules(table(
        Column(name="id", nullable=False, checks=ColumnChecks(length=Bounds(min=2), unique=True)),
        Column(name="status", checks=ColumnChecks(
            allowed=("P", "F"), severity="warn", blocking=True, action="keep")),
        Column(name="value", type="double", checks=ColumnChecks(range=Bounds(max=9))),
    ))

    assert [(r.name, r.check) for r in rules.rules] == [
        ("id.type", "schema"), ("status.type", "schema"), ("value.type", "schema"),
        ("id.not_null", "id_valid"), ("id.length", "id_valid"), ("id.unique", "id_valid"),
        ("status.allowed", "status_valid"), ("value.range", "value_valid"),
    ]
    status = rules.rule("status.allowed")
    assert (status.severity, status.blocking, status.action) == ("warn", True, "keep")
    assert rules.rule("value.range").high == 9 and rules.rule("value.range").low is None
    assert rules.rule("id.type").action == "fail"
    assert rules.checks == ("schema", "id_valid", "status_valid", "value_valid")


def test_keys_unique_is_keys_and_sequence_with_table_severity() -> None:
    rules = compile_rules(table(
        Column(name="site"), Column(name="id"), Column(name="at", type="timestamp"),
        keys=("site", "id"), sequence_by="at", cdc="scd1",
        checks=TableChecks(severity="error", blocking=True),
    ))

    keys = rules.rule("keys.unique")
    assert keys.columns == ("site", "id", "at")
    assert (keys.check, keys.severity, keys.blocking, keys.action) == (
        "keys_unique", "error", True, "keep")


def test_a_unique_single_key_column_is_not_checked_twice() -> None:
    messages = load_catalog(METADATA).feed("adt_events").table("adt_messages")
    rules = compile_rules(messages.model_copy(update={"sequence_by": None}))

    assert [r.name for r in rules.uniqueness] == ["message_id.unique"]


def test_silver_drops_rules_on_values_its_masks_change() -> None:
    patients = load_catalog(METADATA).feed("adt_events").table("patients")
    bronze = compile_rules(patients)
    silver = compile_rules(patients, layer="silver")

    assert "postal_code.regex" in [r.name for r in bronze.rules]
    assert "postal_code.regex" not in [r.name for r in silver.rules]  # zip3 keeps 3 digits
    assert "mrn.not_null" in [r.name for r in silver.rules]  # a hash of a value is not null
    assert silver.rule("birth_date.type").dtype == "integer"  # year_only stores the year
    assert bronze.rule("mrn.not_null").phi and not bronze.rule("sex.allowed").phi


def test_rules_are_cached_and_picklable_for_executors() -> None:
    lab = load_catalog(METADATA).feed("lab_results").table("lab_results")

    rules = compile_rules(lab)

    assert compile_rules(lab) is rules
    assert pickle.loads(pickle.dumps(rules)) == rules


@pytest.mark.parametrize(("column", "message"), [
    ({"name": "n", "type": "date", "checks": {"range": {"min": 1}}}, "checks.range needs type"),
    ({"name": "n", "type": "integer", "checks": {"allowed": ["1"]}}, "checks.allowed applies to"),
    ({"name": "n", "checks": {"regex": "^(?=a)b"}}, "does not compile"),
])
def test_rules_that_cannot_run_on_their_column_fail_at_load(column: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Column.model_validate(column)
