"""What a reader's SQL touches and how it is logged, found by parsing it (sqlglot).

`inspect` returns the lake tables a statement reads (with any time travel asked of them), the
columns it touches, and its text with every literal masked, since a WHERE clause can carry an
MRN. Time travel is written as in Trino and SQL:2011: `FROM silver.visits FOR VERSION AS OF 3`
or `FROM silver.visits FOR TIMESTAMP AS OF '2026-11-20 12:00:00'`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.qualify import qualify

LAKE_LAYERS = ("bronze", "silver", "gold", "quarantine")
_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w.$])\d+(?:\.\d+)?(?:e[+-]?\d+)?", re.IGNORECASE)


@dataclass(frozen=True)
class TimeTravel:
    """A table read at a version or a time: `kind` is `version` or `timestamp`."""

    table: str
    kind: str
    value: str


@dataclass
class Statement:
    """What one statement touches. `tree` is None when sqlglot could not parse it."""

    masked_sql: str
    tables: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    travel: list[TimeTravel] = field(default_factory=list)
    tree: exp.Expression | None = None


def mask_literals(sql: str, tree: exp.Expression | None = None) -> str:
    """`sql` with every string and number literal replaced by `?`."""
    if tree is None:
        return _NUMBER.sub("?", _STRING.sub("?", sql))
    masked = tree.copy().transform(
        lambda node: exp.Placeholder() if isinstance(node, exp.Literal) else node)
    return masked.sql(dialect="duckdb")


def inspect(sql: str, *, schema: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
            dialect: str = "duckdb") -> Statement:
    """What `sql` (one statement) touches; columns are resolved against `schema`
    ({layer: {table: [columns]}}) when given. Never raises: SQL that does not parse is masked
    by pattern and reports no tables."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except SqlglotError:
        return Statement(masked_sql=mask_literals(sql))
    found = Statement(masked_sql=mask_literals(sql, tree), tree=tree)
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        name = _lake_name(table)
        if name is None or name in ctes:
            continue
        if name not in found.tables:
            found.tables.append(name)
        version = table.args.get("version")
        if isinstance(version, exp.Version):
            found.travel.append(TimeTravel(name, version.name.lower(),
                                           version.expression.name))
    found.columns = _columns(tree, found.tables, schema)
    return found


def _lake_name(table: exp.Table) -> str | None:
    db = table.db.lower()
    if db in LAKE_LAYERS and table.name:
        return f"{db}.{table.name.lower()}"
    return None


def _columns(tree: exp.Expression, tables: list[str],
             schema: Mapping[str, Mapping[str, Sequence[str]]] | None) -> list[str]:
    """`layer.table.column` for each column touched; bare names when they cannot be resolved."""
    if schema is not None and tables:
        try:
            nested = {layer: {table: dict.fromkeys(columns, "text")
                              for table, columns in tables.items()}
                      for layer, tables in schema.items()}
            qualified = qualify(tree.copy(), schema=nested, dialect="duckdb",
                                validate_qualify_columns=False)
            return sorted(_resolved(qualified))
        except (OptimizeError, SqlglotError, KeyError, ValueError):
            pass
    return sorted({c.name for c in tree.find_all(exp.Column) if c.name})


def _resolved(tree: exp.Expression) -> set[str]:
    sources = {}
    for table in tree.find_all(exp.Table):
        name = _lake_name(table)
        if name:
            sources[table.alias_or_name.lower()] = name
    only = next(iter(sources.values())) if len(set(sources.values())) == 1 else None
    found = set()
    for column in tree.find_all(exp.Column):
        source = sources.get(column.table.lower()) if column.table else only
        if source and column.name:
            found.add(f"{source}.{column.name}")
    return found
