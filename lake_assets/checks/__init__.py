"""The check engine: row rules from metadata, evaluated with Pandera where it gives counts.

No Dagster here; `lake_assets.factory.checks` turns what this finds into asset checks.

Public API (stable; the bronze asset calls the first four on its executors and driver):

    compile_rules(table: Table, *, layer: "bronze" | "silver" = "bronze") -> TableRules
        Every row rule of a table, picklable: types (`<column>.type`, check `schema`),
        `<column>.not_null|range|allowed|regex|length|unique` (check `<column>_valid`) and
        `keys.unique` (keys + sequence_by: the same record twice; check `keys_unique`), each
        with severity, blocking and action (keep | quarantine | fail) from metadata.

    evaluate_rows(rules: TableRules, rows: pa.Table | pa.RecordBatch, *, within=()) -> RowVerdict
        Pandera's pandas backend (lazy) on one Arrow table. RowVerdict.tally: a CheckTally;
        .reasons: pa.string array, one per row, naming the `quarantine` rules the row broke
        (null: keep it); .failed: names of `fail` rules that any row broke. Uniqueness is
        judged within `rows` only, among rows that agree on the `within` columns.

    CheckTally(rows, failing, failing_by_check, samples, facilities)
        .merge(other) -> CheckTally, CheckTally.merge_all(tallies) -> CheckTally,
        .to_json() -> str, CheckTally.from_json(text) -> CheckTally.
        Counts by rule and by check, at most SAMPLE_SIZE masked sample values per rule (a
        PHI-tagged column shows `***`, never its value), failing rows per facility (top 20).

    tally_frame(df: DataFrame, rules: TableRules, *, unique_by=()) -> CheckTally
        One Spark action over data already written or about to merge: evaluate_rows per Arrow
        batch on the executors (mapInArrow), one JSON row per task; uniqueness over the whole
        frame by a group-by count in the same action, except rules over all the `unique_by`
        columns `df` is known to hold one row per.

    find_conflicts(changes, stored, rule) -> Conflicts
        Records sharing their identity (keys, plus sequence_by for scd) with a record of other
        content, among `changes` or in the table they merge into: a tally of `keys.conflict`
        (masked identities, the archives involved) and the identities, lazily.

    missing_references(df, target, *, column, to_column, phi) -> ReferenceCount
    daily_counts(df, *, date_column, first, last) -> dict[date, int]
    judge_row_count(check: RowCountCheck, *, day, counts) -> RowCountVerdict
    facility_cadences(deliveries, *, silence_after) -> list[FacilityCadence]
    silent_facilities(cadences, *, now) -> list[FacilityCadence]
"""

from lake_assets.checks.frames import (
    Conflicts,
    ReferenceCount,
    daily_counts,
    find_conflicts,
    missing_references,
    tally_frame,
)
from lake_assets.checks.row_count import RowCountVerdict, history_window, judge_row_count
from lake_assets.checks.rows import RowVerdict, evaluate_rows
from lake_assets.checks.rules import Rule, TableRules, compile_rules
from lake_assets.checks.silence import (
    FacilityCadence,
    facility_cadences,
    silent_facilities,
)
from lake_assets.checks.tally import MASK, SAMPLE_SIZE, CheckTally

__all__ = [
    "MASK",
    "SAMPLE_SIZE",
    "CheckTally",
    "Conflicts",
    "FacilityCadence",
    "ReferenceCount",
    "RowCountVerdict",
    "RowVerdict",
    "Rule",
    "TableRules",
    "compile_rules",
    "daily_counts",
    "evaluate_rows",
    "facility_cadences",
    "find_conflicts",
    "history_window",
    "judge_row_count",
    "missing_references",
    "silent_facilities",
    "tally_frame",
]
