"""Row rules of a table, compiled from its column and table metadata into small picklable data.

A rule is named `<column>.<kind>` (`status.allowed`, `mrn.not_null`) or `keys.unique`, and
reports under one Dagster check per group: `schema` (declared types), `<column>_valid` (the
column's nullability, value rules and uniqueness), `keys_unique` (the same record twice) and
`keys_conflict` (records that share their identity but differ in content).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from typing import Literal

from lake_assets.catalog.models import Column, ColumnType, RowAction, Severity, Table
from lake_assets.ingest.mask import masked_type

Layer = Literal["bronze", "silver"]
RuleKind = Literal["type", "not_null", "range", "allowed", "regex", "length", "unique",
                   "conflict"]

SCHEMA_CHECK = "schema"
KEYS_CHECK = "keys_unique"
KEYS_RULE = "keys.unique"
CONFLICT_CHECK = "keys_conflict"
CONFLICT_RULE = "keys.conflict"
_CONFLICT_ACTIONS: dict[str, RowAction] = {
    "keep_latest": "keep", "quarantine_both": "quarantine", "fail": "fail"}
FACILITY_COLUMN = "_facility_id"
ARCHIVE_COLUMN = "_source_archive"
# Silver stores these masks instead of the raw value, so rules on the raw value cannot apply.
_VALUE_CHANGING = ("hash", "redact", "year_only", "zip3")
# Masks that merge distinct values (or blank them), so uniqueness cannot apply either.
_NOT_UNIQUE = ("redact", "year_only", "zip3", "age")
# Masks that may turn a present value into null (redact always, zip3 for malformed codes).
_MAY_NULL = ("redact", "zip3")


@dataclass(frozen=True)
class Rule:
    """One row rule: what it tests, the check it reports under, and what a failure means."""

    name: str
    check: str
    kind: RuleKind
    columns: tuple[str, ...]
    severity: Severity
    blocking: bool
    action: RowAction
    phi: bool = False
    dtype: ColumnType | None = None
    low: float | None = None
    high: float | None = None
    values: tuple[str, ...] = ()
    pattern: str | None = None
    content: tuple[str, ...] = ()
    """What a conflict compares: the columns besides `columns` (kind `conflict`)."""


@dataclass(frozen=True)
class TableRules:
    """Every row rule of one table, in check order; picklable, so executors can receive it."""

    table: str
    rules: tuple[Rule, ...]
    facility_column: str = FACILITY_COLUMN

    @property
    def checks(self) -> tuple[str, ...]:
        """The check names, each once, in rule order."""
        return tuple(dict.fromkeys(rule.check for rule in self.rules))

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column some rule reads, each once."""
        return tuple(dict.fromkeys(c for rule in self.rules for c in rule.columns))

    def of_check(self, check: str) -> tuple[Rule, ...]:
        """The rules reporting under `check`."""
        return tuple(rule for rule in self.rules if rule.check == check)

    def rule(self, name: str) -> Rule:
        """The rule called `name`; raises KeyError naming the table for an unknown one."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(f"table {self.table} has no rule {name!r}")

    def without_uniqueness(self) -> TableRules:
        """The same rules minus uniqueness and conflicts, which need all rows at once."""
        return replace(self, rules=tuple(r for r in self.rules
                                         if r.kind not in ("unique", "conflict")))

    @property
    def uniqueness(self) -> tuple[Rule, ...]:
        """The uniqueness rules."""
        return tuple(r for r in self.rules if r.kind == "unique")

    @property
    def conflict(self) -> Rule | None:
        """The `keys.conflict` rule, for tables with keys."""
        return next((r for r in self.rules if r.kind == "conflict"), None)


def column_check(column: str) -> str:
    """The check a column's rules report under: `<column>_valid`."""
    return f"{column}_valid"


@cache
def compile_rules(table: Table, *, layer: Layer = "bronze") -> TableRules:
    """The row rules of `table` as the `layer` stores it.

    Bronze holds raw typed values, so every declared rule applies. Silver holds PHI-tagged
    columns masked: value rules (range, allowed, regex, length) on a column whose mask changes
    the value are dropped, as are uniqueness where masking merges values and nullability where
    masking may blank a value; types are the masked types. A column's `checks` block sets the
    severity, blocking and action of each of its rules; `schema` and `keys.unique` take the
    table's severity and blocking, with action `fail` (a wrong type is a bug) and `keep`.
    """
    rules = [_type_rule(table, column, layer) for column in table.columns]
    for column in table.columns:
        rules += _column_rules(column, layer)
    keys = _key_columns(table)
    covered = len(keys) == 1 and any(r.kind == "unique" and r.columns == keys for r in rules)
    if keys and not covered:
        phi = any(_phi(table.column(k)) for k in keys)
        rules.append(Rule(
            name=KEYS_RULE, check=KEYS_CHECK, kind="unique", columns=keys,
            severity=table.checks.severity, blocking=table.checks.blocking, action="keep",
            phi=phi,
        ))
    if table.keys:
        rules.append(conflict_rule(table))
    return TableRules(table=table.name, rules=tuple(rules))


def conflict_rule(table: Table) -> Rule:
    """`keys.conflict`: records with the same identity and different content. The identity is
    the keys, plus `sequence_by` for scd1 and scd2 (a newer sequence is an update, not a
    conflict); an append table keeps one record per key, so a second one differing in content
    would be dropped unseen. The action comes from `checks.on_conflict`."""
    identity = (*table.keys,) if table.cdc == "append" or not table.sequence_by \
        else tuple(dict.fromkeys([*table.keys, table.sequence_by]))
    content = tuple(c.name for c in table.columns if c.name not in identity)
    return Rule(
        name=CONFLICT_RULE, check=CONFLICT_CHECK, kind="conflict", columns=identity,
        severity=table.checks.severity, blocking=table.checks.blocking,
        action=_CONFLICT_ACTIONS[table.checks.on_conflict],
        phi=any(_phi(table.column(k)) for k in identity), content=content,
    )


def _key_columns(table: Table) -> tuple[str, ...]:
    """What identifies one record as sent: the keys and `sequence_by`.

    A later correction (same keys, newer sequence) is expected; the same record twice is not.
    """
    if not table.keys:
        return ()
    extra = (table.sequence_by,) if table.sequence_by and table.sequence_by not in table.keys \
        else ()
    return (*table.keys, *extra)


def _type_rule(table: Table, column: Column, layer: Layer) -> Rule:
    dtype = masked_type(column) if layer == "silver" else column.type
    return Rule(
        name=f"{column.name}.type", check=SCHEMA_CHECK, kind="type", columns=(column.name,),
        severity="error", blocking=table.checks.blocking, action="fail", dtype=dtype,
    )


def _column_rules(column: Column, layer: Layer) -> list[Rule]:
    checks = column.checks
    tag = column.phi if layer == "silver" else None
    values = tag not in _VALUE_CHANGING
    wanted: list[tuple[RuleKind, dict[str, object]]] = []
    if not column.nullable and tag not in _MAY_NULL:
        wanted.append(("not_null", {}))
    if values and checks.range is not None:
        wanted.append(("range", {"low": checks.range.min, "high": checks.range.max}))
    if values and checks.allowed is not None:
        wanted.append(("allowed", {"values": checks.allowed}))
    if values and checks.regex is not None:
        wanted.append(("regex", {"pattern": checks.regex}))
    if values and checks.length is not None:
        wanted.append(("length", {"low": checks.length.min, "high": checks.length.max}))
    if checks.unique and tag not in _NOT_UNIQUE:
        wanted.append(("unique", {}))
    return [
        Rule(
            name=f"{column.name}.{kind}", check=column_check(column.name), kind=kind,
            columns=(column.name,), severity=checks.severity, blocking=checks.blocking,
            action=checks.action, phi=_phi(column), **params,  # type: ignore[arg-type]
        )
        for kind, params in wanted
    ]


def _phi(column: Column | None) -> bool:
    return column is not None and column.phi is not None
