"""Asset checks from table metadata: one check per rule group, partitioned like the asset, and
results carrying counts, masked samples and the facility, in keys the alert sensor reads.

Every number sits under a stable key (`failing_rows`, `total_rows`, one per rule such as
`status.allowed`), so the UI plots them over time.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import dagster as dg

from lake_assets.catalog.models import Reference, Severity, Table
from lake_assets.checks import (
    CheckTally,
    ReferenceCount,
    RowCountVerdict,
    Rule,
    compile_rules,
)
from lake_assets.checks.rules import SCHEMA_CHECK, Layer

ROW_COUNT_CHECK = "row_count"
SCHEMA_DRIFT_CHECK = "schema_drift"
_ABOUT = {
    "type": "declared type", "not_null": "not null", "range": "within range",
    "allowed": "one of the allowed values", "regex": "matches the pattern",
    "length": "length within bounds", "unique": "unique",
    "conflict": "never shared by records of different content",
}


def reference_check(reference: Reference) -> str:
    """`<column>_in_<table>`: the check that `column` values exist in the referenced table."""
    return f"{reference.column}_in_{reference.table}"


def table_check_specs(
    asset_key: dg.AssetKey,
    table: Table,
    partitions_def: dg.PartitionsDefinition | None,
    *,
    layer: Layer = "bronze",
) -> list[dg.AssetCheckSpec]:
    """One check per rule group of `table` (see `compile_rules`), blocking when any of its rules
    is; silver adds `row_count` and one `<column>_in_<table>` per declared reference."""
    rules = compile_rules(table, layer=layer)
    wanted = [
        (check, _describe(rules.of_check(check)), any(r.blocking for r in rules.of_check(check)))
        for check in rules.checks
    ]
    if layer == "silver":
        blocking = table.checks.blocking
        if table.checks.row_count is not None:
            count = table.checks.row_count
            wanted.append((ROW_COUNT_CHECK, f"Rows of the arrival day within {count.min_ratio}x"
                           f"-{count.max_ratio}x the average of the {count.lookback_days} days "
                           "before.", blocking))
        wanted += [(reference_check(ref), f"Every {ref.column} exists in silver.{ref.table}"
                    f".{ref.to_column}.", blocking) for ref in table.checks.references]
    with warnings.catch_warnings():  # partitioned checks are a preview in 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(name, asset=asset_key, description=about, blocking=blocks,
                              partitions_def=partitions_def)
            for name, about, blocks in wanted
        ]


def _describe(rules: tuple[Rule, ...]) -> str:
    first = rules[0]
    if first.check == SCHEMA_CHECK:
        return ("Every declared column is present with its declared type; a mismatch is a bug "
                "and fails the run.")
    subject = "Records" if len(first.columns) > 1 else f"Column `{first.columns[0]}`"
    parts = [f"`{r.name}` {_ABOUT[r.kind]} ({r.severity}, {r.action})" for r in rules]
    return f"{subject}: " + "; ".join(parts) + "."


def check_results(
    asset_key: dg.AssetKey,
    table: Table,
    tally: CheckTally,
    *,
    layer: Layer = "bronze",
    facility: str | None = None,
) -> list[dg.AssetCheckResult]:
    """A result for every rule group of `table` from `tally` (merged from any number of tasks).

    A group fails when any of its rules failed a row: ERROR when one of those rules is an error,
    else WARN. `facility` names the facility of the partition; without it the facility with
    the most failing rows is named.
    """
    rules = compile_rules(table, layer=layer)
    return [
        _group_result(asset_key, check, rules.of_check(check), tally, facility=facility)
        for check in rules.checks
    ]


def _group_result(
    asset_key: dg.AssetKey, check: str, rules: tuple[Rule, ...], tally: CheckTally, *,
    facility: str | None,
) -> dg.AssetCheckResult:
    broken = [r for r in rules if tally.failing.get(r.name, 0)]
    failing = tally.failing_by_check.get(check, 0)
    ranked = tally.failing_facilities(check)
    metadata: dict[str, object] = {
        "failing_rows": failing,
        "total_rows": tally.rows,
        **{rule.name: tally.failing.get(rule.name, 0) for rule in rules},
        "failing_facilities": len(ranked),
    }
    if check != SCHEMA_CHECK and len(rules[0].columns) == 1:
        metadata["column"] = rules[0].columns[0]
    named = facility or (ranked[0][0] if ranked else None)
    if named:
        metadata["facility"] = named
    if broken:
        metadata["samples"] = dg.MetadataValue.json(
            {r.name: list(tally.samples.get(r.name, ())) for r in broken})
        metadata["facilities"] = dg.MetadataValue.json(dict(ranked))
        archives = {r.name: list(tally.archives[r.name])
                    for r in broken if r.name in tally.archives}
        if archives:
            metadata["archives"] = dg.MetadataValue.json(archives)
    counts = ", ".join(f"{r.name} {tally.failing[r.name]}" for r in broken)
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check,
        passed=not broken,
        severity=_severity(broken or list(rules)),
        metadata=metadata,
        description=f"{failing} of {tally.rows} rows fail: {counts}" if broken
        else f"{tally.rows} rows pass",
    )


def drift_check_spec(asset_key: dg.AssetKey, partitions_def: dg.PartitionsDefinition | None
                     ) -> dg.AssetCheckSpec:
    """`schema_drift` of a bronze table, judged from its archives (`drift_result`)."""
    with warnings.catch_warnings():  # partitioned checks are a preview in 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            SCHEMA_DRIFT_CHECK, asset=asset_key, partitions_def=partitions_def,
            description="Every data file carries every declared column and no undeclared "
            "field; counts the archives and facilities that drift.")


def drift_result(asset_key: dg.AssetKey, table: Table, archives: list[dict[str, Any]]
                 ) -> dg.AssetCheckResult:
    """The `schema_drift` result: per declared column, how many archives and facilities lacked
    it, and per undeclared field, how many carried it (from the archives' summaries)."""
    found: dict[str, dict[str, tuple[set[str], set[str]]]] = {"missing": {}, "undeclared": {}}
    drifting = 0
    for archive in archives:
        drift = json.loads(archive.get("schema_drift") or "{}").get(table.name)
        drifting += bool(drift)
        for kind, names in (drift or {}).items():
            for name in names:
                paths, facilities = found[kind].setdefault(name, (set(), set()))
                paths.add(archive["path"])
                facilities.add(archive["facility"])
    counts = {kind: {name: {"archives": len(p), "facilities": len(f)}
                     for name, (p, f) in sorted(names.items())}
              for kind, names in found.items()}
    parts = [f"{name} missing from {c['archives']} archives of {c['facilities']} facilities"
             for name, c in counts["missing"].items()]
    parts += [f"undeclared {name} in {c['archives']} archives of {c['facilities']} facilities"
              for name, c in counts["undeclared"].items()]
    return dg.AssetCheckResult(
        asset_key=asset_key, check_name=SCHEMA_DRIFT_CHECK, passed=not parts,
        severity=_level(table.checks.severity),
        metadata={"drifting_archives": drifting, "total_archives": len(archives),
                  "missing_columns": dg.MetadataValue.json(counts["missing"]),
                  "undeclared_fields": dg.MetadataValue.json(counts["undeclared"])},
        description="; ".join(parts) if parts else f"{len(archives)} archives as declared",
    )


def row_count_result(
    asset_key: dg.AssetKey, verdict: RowCountVerdict, *, severity: Severity
) -> dg.AssetCheckResult:
    """The `row_count` result: the day's rows against the trailing average."""
    metadata: dict[str, object] = {"row_count": verdict.rows, "history_days": verdict.history_days}
    if verdict.average is not None:
        metadata |= {
            "trailing_average": round(verdict.average, 1),
            "expected_min": round(verdict.expected_min or 0.0, 1),
            "expected_max": round(verdict.expected_max or 0.0, 1),
            "ratio": round(verdict.ratio or 0.0, 3),
        }
        about = (f"{verdict.rows} rows against a trailing average of {verdict.average:.1f} "
                 f"over {verdict.history_days} days")
    else:
        about = f"{verdict.rows} rows; no earlier day to compare with yet"
    return dg.AssetCheckResult(
        asset_key=asset_key, check_name=ROW_COUNT_CHECK, passed=verdict.passed,
        severity=_level(severity), metadata=metadata, description=about,
    )


def reference_result(
    asset_key: dg.AssetKey, reference: Reference, count: ReferenceCount, *,
    severity: Severity, target_exists: bool = True,
) -> dg.AssetCheckResult:
    """The `<column>_in_<table>` result: rows whose value the referenced table lacks."""
    target = f"silver.{reference.table}.{reference.to_column}"
    about = f"{count.missing} of {count.checked} {reference.column} values not in {target}"
    if not target_exists:
        about += f" (silver.{reference.table} is not written yet)"
    metadata = {
        "failing_rows": count.missing,
        "total_rows": count.checked,
        "column": reference.column,
        "samples": dg.MetadataValue.json({reference_check(reference): list(count.samples)}),
    }
    return dg.AssetCheckResult(
        asset_key=asset_key, check_name=reference_check(reference), passed=count.missing == 0,
        severity=_level(severity), metadata=metadata, description=about,
    )


def _severity(rules: list[Rule]) -> dg.AssetCheckSeverity:
    return _level("error" if any(r.severity == "error" for r in rules) else "warn")


def _level(severity: Severity) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if severity == "error" else dg.AssetCheckSeverity.WARN
