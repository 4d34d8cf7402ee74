"""Simple predicates: a conjunction of `column op value` terms, used for replaceWhere and pruning.

One predicate form serves four places: Spark filter pushdown, file pruning by partition values
and statistics, the row check that written rows fall inside a replaceWhere slice, and the row
filter that keeps the rest of a partially replaced file. No SQL text is built or parsed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from lake_assets.errors import DeltaPredicateError

Op = Literal["=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null"]
OPS: tuple[str, ...] = ("=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null")
_COMPARE = {"=": "equal", "!=": "not_equal", "<": "less", "<=": "less_equal",
            ">": "greater", ">=": "greater_equal"}

PredicateSpec = Mapping[str, Any] | Sequence[tuple[Any, ...]] | None


@dataclass(frozen=True)
class Term:
    """One comparison `column op value`; `value` is a tuple for `in` / `not in`."""

    column: str
    op: Op
    value: Any = None


def parse_predicate(spec: PredicateSpec) -> tuple[Term, ...]:
    """Terms from `{"col": value}` (equality) or `[("col", op, value), ...]`; ANDed together.

    Raises DeltaPredicateError for an unknown operator or a malformed term.
    """
    if spec is None:
        return ()
    if isinstance(spec, Mapping):
        return tuple(Term(str(col), "=", val) for col, val in spec.items())
    terms = []
    for item in spec:
        if isinstance(item, Term):
            terms.append(item)
            continue
        column, op, *rest = item
        if op not in OPS:
            raise DeltaPredicateError(f"predicate on column {column!r}: unknown operator {op!r}")
        value = tuple(rest[0]) if op in ("in", "not in") else (rest[0] if rest else None)
        terms.append(Term(str(column), op, value))
    return tuple(terms)


def check_columns(terms: Iterable[Term], schema: pa.Schema, *, table: str) -> None:
    """Raises DeltaPredicateError naming `table` and the column if a term's column is unknown."""
    for term in terms:
        if schema.get_field_index(term.column) < 0:
            raise DeltaPredicateError(
                f"table {table}: predicate names unknown column {term.column!r}"
                f" (columns: {', '.join(schema.names)})"
            )


def coerce_terms(terms: Iterable[Term], schema: pa.Schema) -> tuple[Term, ...]:
    """Terms whose values are converted to the Python type of their column in `schema`."""
    out = []
    for term in terms:
        kind = schema.field(term.column).type
        if term.op in ("in", "not in"):
            out.append(Term(term.column, term.op, tuple(_coerce(v, kind) for v in term.value)))
        else:
            out.append(Term(term.column, term.op, _coerce(term.value, kind)))
    return tuple(out)


def _coerce(value: Any, kind: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_date(kind) and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if pa.types.is_timestamp(kind) and isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if pa.types.is_timestamp(kind) and isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC) if kind.tz else value
    if pa.types.is_integer(kind) and isinstance(value, str):
        return int(value)
    return value


def to_json(terms: Sequence[Term]) -> str:
    """A JSON encoding of `terms` for a Spark data source option."""
    return json.dumps([[t.column, t.op, _json_value(t.value)] for t in terms])


def from_json(text: str | None) -> tuple[Term, ...]:
    """Terms decoded from `to_json` output; values stay strings or numbers until coerced."""
    if not text:
        return ()
    return parse_predicate([tuple(item) for item in json.loads(text)])


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def arrow_mask(terms: Sequence[Term], data: pa.Table | pa.RecordBatch) -> pa.ChunkedArray:
    """A boolean mask of rows matching every term, nulls counting as not matching."""
    mask: Any = pa.array([True] * data.num_rows)
    for term in terms:
        mask = pc.and_kleene(mask, _arrow_term(term, data.column(term.column)))
    return pc.fill_null(mask, False)


def _arrow_term(term: Term, column: Any) -> Any:
    if term.op == "is null":
        return pc.is_null(column)
    if term.op == "is not null":
        return pc.is_valid(column)
    if term.op in ("in", "not in"):
        values = pa.array(list(term.value), type=column.type)
        hit = pc.is_in(column, value_set=values)
        hit = pc.if_else(pc.is_null(column), pa.scalar(None, pa.bool_()), hit)
        return pc.invert(hit) if term.op == "not in" else hit
    scalar = pa.scalar(term.value, type=column.type)
    return getattr(pc, _COMPARE[term.op])(column, scalar)


def value_matches(term: Term, value: Any) -> bool:
    """Whether one Python `value` satisfies `term` (SQL semantics: null matches only `is null`)."""
    if term.op == "is null":
        return value is None
    if term.op == "is not null" or value is None:
        return value is not None and term.op == "is not null"
    if term.op == "in":
        return value in term.value
    if term.op == "not in":
        return value not in term.value
    return bool(_PY_COMPARE[term.op](value, term.value))


_PY_COMPARE = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
