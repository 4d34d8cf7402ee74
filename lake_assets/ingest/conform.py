"""Conform raw records to a table's declared columns: good rows typed, bad rows with reasons.

A row is bad when a non-nullable column is absent (`missing_column`), a value does not convert or
a non-nullable value is null (`bad_value`), or, with `schema_evolution: fail`, it carries an
undeclared field (`schema_mismatch`). Errors name columns and fields, never values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from lake_assets.catalog.models import Column, Table
from lake_assets.ingest.convert import DEFAULT_FORMATS, convert
from lake_assets.ingest.records import BadRecord, RawTable, Unknown, to_json

RESCUED = "_rescued_data"
SOURCE_MEMBER = "_source_member"


@dataclass(frozen=True)
class _Checked:
    """One column after conversion: typed values and the rows it makes bad (boolean masks)."""

    column: Column
    raw: pa.Array
    values: pa.Array
    missing: pa.Array
    null: pa.Array
    failed: pa.Array
    early: pa.Array | None = None
    precision: pa.Array | None = None


def conform(table: Table, raw: RawTable, *, members: pa.Array) -> tuple[pa.Table, list[BadRecord]]:
    """Good rows of `table` as an Arrow table, and the bad ones as records.

    The good table has the declared columns typed, then (with `add_columns`) undeclared fields as
    string columns, then `_rescued_data` (JSON or null) and `_source_member`.
    """
    checked = [_check(column, raw.column(column.name)) for column in table.columns]
    has_unknown = any(fields is not None for fields in raw.unknown)
    if table.schema_evolution == "fail" and has_unknown:
        mismatch = pa.array([fields is not None for fields in raw.unknown], pa.bool_())
    else:
        mismatch = pa.repeat(False, raw.num_rows)
    bad = mismatch
    for item in checked:
        bad = pc.or_(bad, pc.or_(item.missing, pc.or_(item.null, item.failed)))
    rows = pc.indices_nonzero(bad) if pc.any(bad).as_py() else pa.array([], pa.uint64())
    records = _bad_records(table, raw, checked, rows, members=members, mismatch=mismatch)
    good = _good_table(table, raw, checked, pc.invert(bad), members, has_unknown=has_unknown)
    return good, records


def _check(column: Column, raw: pa.Array) -> _Checked:
    done = convert(column, raw)
    values, failed = done.values, done.failed
    none = pa.repeat(False, len(raw))
    if column.nullable:
        return _Checked(column, raw, values, none, none, failed, done.early, done.precision)
    absent = raw.is_null()
    null = pc.and_(pc.invert(absent), pc.and_(values.is_null(), pc.invert(failed)))
    return _Checked(column, raw, values, absent, null, failed, done.early, done.precision)


def _bad_records(
    table: Table,
    raw: RawTable,
    checked: list[_Checked],
    rows: pa.Array,
    *,
    members: pa.Array,
    mismatch: pa.Array,
) -> list[BadRecord]:
    """One record per bad row: the first reason (schema_mismatch, missing_column, bad_value)
    and every problem of the row."""
    if not len(rows):
        return []
    masks = {
        item.column.name: (
            item.missing.take(rows).to_pylist(),
            item.null.take(rows).to_pylist(),
            item.failed.take(rows).to_pylist(),
            item.early.take(rows).to_pylist() if item.early is not None else None,
        )
        for item in checked
    }
    values = {",".join(c.column.sources): c.raw.take(rows).to_pylist() for c in checked}
    failures = {item.column.name: _failure(item.column) for item in checked}
    floors = {item.column.name: f"is before {item.column.floor.isoformat()} (not_before)"
              for item in checked}
    names = members.take(rows).to_pylist()
    mismatched = mismatch.take(rows).to_pylist()
    records = []
    for position, row in enumerate(rows.to_pylist()):
        fields = raw.unknown[row]
        problems: list[tuple[str, str]] = []
        if mismatched[position] and fields:
            problems.append(("schema_mismatch", f"undeclared fields {', '.join(sorted(fields))}"))
        for name, (missing, null, failed, early) in masks.items():
            if missing[position]:
                problems.append(("missing_column", f"column {name} is absent"))
            elif null[position]:
                problems.append(("bad_value", f"column {name} is empty but not nullable"))
            elif early is not None and early[position]:
                problems.append(("bad_value", f"column {name} {floors[name]}"))
            elif failed[position]:
                problems.append(("bad_value", f"column {name} {failures[name]}"))
        problems.sort(key=lambda problem: _ORDER[problem[0]])
        record = {key: v[position] for key, v in values.items() if v[position] is not None}
        record.update(fields or {})
        error = "; ".join(text for _, text in problems)
        records.append(BadRecord(names[position], problems[0][0], error, to_json(record)))
    return records


_ORDER = {"schema_mismatch": 0, "missing_column": 1, "bad_value": 2}


def _failure(column: Column) -> str:
    if column.type in ("date", "timestamp"):
        return f"does not match format {column.format or DEFAULT_FORMATS[column.type]}"
    article = "an" if column.type[0] in "aeiou" else "a"
    return f"is not {article} {column.type}"


def _good_table(
    table: Table,
    raw: RawTable,
    checked: list[_Checked],
    keep: pa.Array,
    members: pa.Array,
    *,
    has_unknown: bool,
) -> pa.Table:
    arrays: dict[str, pa.Array] = {}
    for item in checked:
        arrays[item.column.name] = pc.filter(item.values, keep)
        sibling = item.column.precision_column
        if sibling is not None:
            precision = item.precision if item.precision is not None \
                else pa.nulls(len(keep), pa.string())
            arrays[sibling] = pc.filter(precision, keep)
    rows = len(arrays[checked[0].column.name])
    if not has_unknown:
        arrays[RESCUED] = pa.nulls(rows, pa.string())
    else:
        kept = [fields for fields, ok in zip(raw.unknown, keep.to_pylist(), strict=True) if ok]
        if table.schema_evolution == "add_columns":
            extra, kept = _extra_columns(kept, taken=set(arrays))
            arrays.update(extra)
        arrays[RESCUED] = pa.array(
            [to_json(fields) if fields else None for fields in kept], pa.string()
        )
    arrays[SOURCE_MEMBER] = pc.filter(members, keep)
    return pa.table(arrays)


_NOT_NAME = re.compile(r"[^a-z0-9]+")


def column_name(field: str) -> str:
    """An undeclared field as a column name: lower case, runs of other characters as `_`."""
    name = _NOT_NAME.sub("_", field.lower()).strip("_")
    return f"x_{name}" if not name or name[0].isdigit() else name


def _extra_columns(
    rows: list[Unknown | None], *, taken: set[str]
) -> tuple[dict[str, pa.Array], list[Unknown | None]]:
    """Undeclared fields as string columns; a field whose name collides stays in the leftovers."""
    values: dict[str, list[str | None]] = {}
    leftovers: list[Unknown | None] = []
    for index, fields in enumerate(rows):
        rest: Unknown = {}
        for field, value in (fields or {}).items():
            name = column_name(field)
            if name in taken or name.startswith("_"):
                rest[field] = value
                continue
            column = values.setdefault(name, [None] * len(rows))
            if column[index] is not None:
                rest[field] = value
                continue
            column[index] = value if isinstance(value, str) else to_json(value)
        leftovers.append(rest or None)
    return {name: pa.array(v, pa.string()) for name, v in values.items()}, leftovers
