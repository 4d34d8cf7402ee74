"""Checks of one silver day, run on the day's changes before they merge: the table's row rules
(masked values, as silver stores them), its references and its row count.

Quarantine is bronze's job: here a `quarantine` rule only reports, except conflicts: with
`on_conflict: quarantine_both` the day's records of a conflicting identity are kept out of the
merge (they stay in bronze). A `fail` rule that breaks stops the merge, and the asset fails
after reporting its checks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import dagster as dg
from pyspark.sql import DataFrame

from lake_assets.catalog.models import Reference, Table
from lake_assets.checks import (
    CheckTally,
    ReferenceCount,
    compile_rules,
    find_conflicts,
    judge_row_count,
    missing_references,
    tally_frame,
)
from lake_assets.factory.checks import check_results, reference_result, row_count_result
from lake_assets.ingest.cdc import change_keys
from lake_assets.storage.lake import Lake


@dataclass(frozen=True)
class ReferenceFinding:
    """A reference, what it counted, and whether the referenced table exists yet."""

    reference: Reference
    count: ReferenceCount
    target_exists: bool


@dataclass(frozen=True)
class DayChecks:
    """What the checks found in a day's changes; empty for a day without bronze rows."""

    tally: CheckTally = field(default_factory=CheckTally)
    references: tuple[ReferenceFinding, ...] = ()
    counts: Mapping[dt.date, int] = field(default_factory=dict)
    failed: tuple[str, ...] = ()
    held_back: DataFrame | None = None
    """Identities in conflict that `on_conflict: quarantine_both` keeps out of the merge."""

    @property
    def failing_rows(self) -> int:
        """Rows failing any row rule, summed over checks, plus rows with missing references."""
        return (sum(self.tally.failing_by_check.values())
                + sum(f.count.missing for f in self.references))


def check_changes(
    lake: Lake, table: Table, changes: DataFrame, *, counts: Mapping[dt.date, int],
    typed: DataFrame | None = None,
) -> DayChecks:
    """Evaluate `table`'s silver rules and references on `changes` (one job each), and
    conflicts among `typed` (the day's rows before one was kept per key) and the silver table.

    `counts` are the bronze rows per arrival date that the row-count check judges.
    """
    rules = compile_rules(table, layer="silver")
    # `changes` hold one row per `change_keys`: keys.unique, over them and more, finds none.
    tally = tally_frame(changes, rules, unique_by=change_keys(table))
    held_back = None
    if rules.conflict is not None and typed is not None:
        path = ["silver", table.name]
        conflicts = find_conflicts(typed, lake.read(path) if lake.exists(path) else None,
                                   rules.conflict)
        tally = tally.merge(conflicts.tally)
        if rules.conflict.action == "quarantine" and conflicts.tally.failing:
            held_back = conflicts.identities
    findings = []
    for ref in table.checks.references:
        target_key = ["silver", ref.table]
        exists = lake.exists(target_key)
        target = lake.read(target_key) if exists else changes.select(ref.column).limit(0)
        to_column = ref.to_column if exists else ref.column
        column = table.column(ref.column)
        phi = column is not None and column.phi is not None
        count = missing_references(changes, target, column=ref.column, to_column=to_column,
                                   phi=phi)
        findings.append(ReferenceFinding(ref, count, exists))
    failed = tuple(r.name for r in rules.rules
                   if r.action == "fail" and tally.failing.get(r.name, 0))
    return DayChecks(tally=tally, references=tuple(findings), counts=counts, failed=failed,
                     held_back=held_back)


def day_results(
    asset_key: dg.AssetKey, table: Table, checks: DayChecks, *, day: dt.date
) -> list[dg.AssetCheckResult]:
    """A result for every check `table_check_specs(..., layer="silver")` declares."""
    results = check_results(asset_key, table, checks.tally, layer="silver")
    severity = table.checks.severity
    if table.checks.row_count is not None:
        verdict = judge_row_count(table.checks.row_count, day=day, counts=checks.counts)
        results.append(row_count_result(asset_key, verdict, severity=severity))
    found = {f.reference: f for f in checks.references}
    for ref in table.checks.references:
        finding = found.get(ref, ReferenceFinding(ref, ReferenceCount(0, 0, ()), True))
        results.append(reference_result(asset_key, ref, finding.count, severity=severity,
                                         target_exists=finding.target_exists))
    return results
