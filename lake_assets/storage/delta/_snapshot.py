"""Reading the Delta log: open a table at a version or time, list its files, prune them.

Pruning uses partition values and per-file min/max/null statistics, so a predicate skips files
that cannot hold a matching row (`may_match`) and finds files whose rows all match (`all_match`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from lake_assets.errors import DeltaStorageError, NotADeltaTableError
from lake_assets.storage.delta._locations import storage_path
from lake_assets.storage.delta._predicate import Term, value_matches

# Delta truncates timestamp statistics to milliseconds, so a max may sit up to 1 ms low.
_TS_SLACK = dt.timedelta(milliseconds=1)
_STAT_GROUPS = ("partition", "min", "max", "null_count")


@dataclass(frozen=True)
class FileEntry:
    """One data file of a snapshot: relative storage path (not URL-encoded), typed partition
    values and statistics."""

    path: str
    size: int
    partition_values: dict[str, Any] = field(default_factory=dict)
    num_records: int | None = None
    min_values: dict[str, Any] = field(default_factory=dict)
    max_values: dict[str, Any] = field(default_factory=dict)
    null_counts: dict[str, int] = field(default_factory=dict)


def open_table(
    uri: str,
    *,
    options: Mapping[str, str],
    table: str,
    version: int | None = None,
    as_of: dt.datetime | str | None = None,
) -> DeltaTable:
    """The Delta table at `uri`, at `version` or as of time `as_of` (latest if neither).

    Raises NotADeltaTableError if `uri` holds no Delta log, DeltaStorageError if the version or
    time is outside the table's history.
    """
    try:
        delta = DeltaTable(uri, storage_options=dict(options) or None)
    except TableNotFoundError as exc:
        raise NotADeltaTableError(f"table {table}: {uri} is not a Delta table ({exc})") from exc
    try:
        if version is not None:
            delta.load_as_version(version)
        elif as_of is not None:
            delta.load_as_version(as_of)
    except (DeltaError, ValueError) as exc:
        when = f"version {version}" if version is not None else f"time {as_of}"
        raise DeltaStorageError(f"table {table}: cannot load {when}: {exc}") from exc
    return delta


def table_exists(uri: str, *, options: Mapping[str, str]) -> bool:
    """Whether `uri` holds a Delta log."""
    return DeltaTable.is_deltatable(uri, storage_options=dict(options) or None)


def arrow_schema(delta: DeltaTable) -> pa.Schema:
    """The table schema as a pyarrow schema."""
    return pa.schema(delta.schema().to_arrow())


# Reader features that change which rows or columns a data file holds; planning files from the
# log alone would read deleted rows or wrong columns, so such tables are refused.
UNSUPPORTED_READER_FEATURES = ("deletionVectors", "columnMapping")


def check_readable(delta: DeltaTable) -> None:
    """Raise DeltaStorageError for a table using deletion vectors or column mapping (written
    so by another engine, e.g. delta-spark with `delta.enableDeletionVectors`)."""
    features = set(delta.protocol().reader_features or [])
    mapping = delta.metadata().configuration.get("delta.columnMapping.mode", "none")
    if mapping != "none":
        features.add("columnMapping")
    refused = sorted(features.intersection(UNSUPPORTED_READER_FEATURES))
    if refused:
        raise DeltaStorageError(
            f"{delta.table_uri}: uses {', '.join(refused)}, which the lake's reader does not "
            "apply; rewrite it without them (delta-spark: REORG TABLE ... APPLY (PURGE) and "
            "unset delta.enableDeletionVectors) or write it with the lake's writer")


def list_files(delta: DeltaTable) -> list[FileEntry]:
    """Every data file of the loaded snapshot; raises as `check_readable`."""
    check_readable(delta)
    actions = pa.table(delta.get_add_actions(flatten=True))
    entries = []
    for row in actions.to_pylist():
        groups: dict[str, dict[str, Any]] = {k: {} for k in _STAT_GROUPS}
        for key, value in row.items():
            prefix, dot, column = key.partition(".")
            if dot and prefix in groups:
                groups[prefix][column] = value
        entries.append(
            FileEntry(
                path=storage_path(row["path"]),
                size=row["size_bytes"],
                partition_values=groups["partition"],
                num_records=row.get("num_records"),
                min_values={k: v for k, v in groups["min"].items() if v is not None},
                max_values={k: v for k, v in groups["max"].items() if v is not None},
                null_counts={k: v for k, v in groups["null_count"].items() if v is not None},
            )
        )
    return entries


def may_match(entry: FileEntry, terms: Sequence[Term]) -> bool:
    """False only when partition values or statistics prove no row of the file matches."""
    return all(_term_may_match(entry, term) for term in terms)


def all_match(entry: FileEntry, terms: Sequence[Term]) -> bool:
    """True only when partition values or statistics prove every row of the file matches."""
    return all(_term_all_match(entry, term) for term in terms)


def _term_may_match(entry: FileEntry, term: Term) -> bool:
    if term.column in entry.partition_values:
        return value_matches(term, entry.partition_values[term.column])
    nulls = entry.null_counts.get(term.column)
    rows = entry.num_records
    if term.op == "is null":
        return nulls is None or nulls > 0
    if nulls is not None and rows is not None and nulls >= rows:
        return False  # all null: no comparison can match
    low, high = entry.min_values.get(term.column), entry.max_values.get(term.column)
    if low is None or high is None or term.op in ("is not null", "!=", "not in"):
        return True
    high = high + _TS_SLACK if isinstance(high, dt.datetime) else high
    try:
        return _range_may_match(term, low, high)
    except TypeError:
        return True  # stats of an incomparable type prove nothing


def _range_may_match(term: Term, low: Any, high: Any) -> bool:
    if term.op == "=":
        return low <= term.value <= high
    if term.op == "in":
        return any(low <= v <= high for v in term.value if v is not None)
    if term.op in ("<", "<="):
        return low < term.value or (term.op == "<=" and low == term.value)
    return high > term.value or (term.op == ">=" and high == term.value)


def _term_all_match(entry: FileEntry, term: Term) -> bool:
    if term.column in entry.partition_values:
        return value_matches(term, entry.partition_values[term.column])
    nulls = entry.null_counts.get(term.column)
    rows = entry.num_records
    if term.op == "is null":
        return nulls is not None and rows is not None and nulls >= rows
    if nulls != 0:
        return False
    if term.op == "is not null":
        return True
    low, high = entry.min_values.get(term.column), entry.max_values.get(term.column)
    if low is None or high is None or isinstance(high, dt.datetime):
        return False  # truncated timestamp stats cannot prove a bound on every row
    try:
        return value_matches(term, low) and value_matches(term, high) and (
            term.op not in ("=", "in", "!=", "not in") or low == high
        )
    except TypeError:
        return False


def partition_string(value: Any) -> str | None:
    """A partition value as the Delta log writes it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
