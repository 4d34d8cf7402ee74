"""Lineage from SQL: the lake tables a query reads, found by parsing it (sqlglot, Spark dialect).

SQL names lake tables as `bronze.<feed>__<table>`, `silver.<table>` and `gold.<projection>`.
Queries are rewritten for `spark.sql(text, **frames)`: each lake table becomes the placeholder
`{silver__<table>}` (`view_name`) for its DataFrame, keeping the original name as the alias.
No temporary view is registered, so runs can share one Spark Connect session.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from lake_assets.catalog.catalog import Catalog
from lake_assets.errors import MetadataError, MetadataProblem

LAYERS = ("bronze", "silver", "gold")
# Gold may read silver and other gold tables, never bronze: bronze holds raw PHI.
PROJECTION_LAYERS = ("silver", "gold")


def lake_tables(catalog: Catalog) -> dict[str, str]:
    """Every lake table of `catalog`: SQL name (`silver.visits`) to table path (`silver/visits`)."""
    tables = {f"bronze.{f.name}__{t.name}": f"bronze/{f.name}/{t.name}"
              for f in catalog.feeds for t in f.tables}
    tables |= {f"silver.{t.name}": f"silver/{t.name}" for f in catalog.feeds for t in f.tables}
    tables |= {f"gold.{p.name}": f"gold/{p.name}" for p in catalog.projections}
    return tables


def sql_name(name: str) -> str:
    """The SQL name of a lake table given by SQL name or path: `bronze/f/t` -> `bronze.f__t`."""
    parts = name.lower().split("/")
    if len(parts) == 3 and parts[0] == "bronze":
        return f"bronze.{parts[1]}__{parts[2]}"
    return ".".join(parts) if len(parts) == 2 else name.lower()


def view_name(sql_name: str) -> str:
    """The placeholder name standing for a lake table: `silver.visits` -> `silver__visits`."""
    return sql_name.replace(".", "__", 1)


def parse_query(sql: str, *, file: str) -> exp.Query:
    """The one SELECT statement of `sql`; raises MetadataError naming `file` otherwise."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="spark") if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f"line {first.get('line')}, column {first.get('col')}" if first else ""
        reason = first.get("description", str(exc))
        problem = MetadataProblem(file, where, f"SQL does not parse: {reason}")
        raise MetadataError([problem]) from exc
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise MetadataError([MetadataProblem(file, "", "expected exactly one SELECT statement")])
    return statements[0]


def table_references(query: exp.Query) -> tuple[str, ...]:
    """The tables `query` reads, lower-cased as `layer.name`, or `name` when unqualified;
    common table expressions are not tables and are left out."""
    ctes = {cte.alias_or_name.lower() for cte in query.find_all(exp.CTE)}
    found = set()
    for table in query.find_all(exp.Table):
        name, db = table.name.lower(), table.db.lower()
        if table.catalog or db:
            found.add(".".join(p for p in (table.catalog.lower(), db, name) if p))
        elif name not in ctes:
            found.add(name)
    return tuple(sorted(found))


def output_columns(query: exp.Query) -> list[str] | None:
    """The names of the columns `query` returns, or None when a star hides them."""
    names = []
    for select in query.selects:
        if isinstance(select, exp.Star) or (isinstance(select, exp.Column)
                                            and isinstance(select.this, exp.Star)):
            return None
        names.append(select.alias_or_name)
    return names


def rewrite(query: exp.Query) -> str:
    """Spark SQL of `query` for `spark.sql(text, **frames)`: `layer.name` tables read the
    placeholder `{layer__name}` (`view_name`); every other brace is escaped."""
    marker = f"lake_{uuid.uuid4().hex}_"  # an identifier no query holds
    query = query.copy()
    for table in list(query.find_all(exp.Table)):
        db = table.db.lower()
        if db in LAYERS and not table.catalog:
            alias = table.alias or table.name
            view = view_name(f"{db}.{table.name.lower()}")
            table.replace(exp.Table(this=exp.to_identifier(marker + view),
                                    alias=exp.TableAlias(this=exp.to_identifier(alias))))
    text = query.sql(dialect="spark", pretty=True).replace("{", "{{").replace("}", "}}")
    return re.sub(rf"`?{marker}(\w+)`?", r"{\1}", text)


def projection_inputs(catalog: Catalog) -> dict[str, tuple[str, ...]]:
    """The lake tables each projection's SQL reads (`silver.x`, `gold.y`), by projection name.

    Raises MetadataError naming the SQL file for SQL that does not parse, a table that is not
    a silver or gold table of the catalog, a projection reading itself, or a cycle.
    """
    known = {n for n in lake_tables(catalog) if n.split(".", 1)[0] in PROJECTION_LAYERS}
    inputs: dict[str, tuple[str, ...]] = {}
    problems: list[MetadataProblem] = []
    for projection in catalog.projections:
        path = catalog.sql_path(projection)
        file = path.relative_to(catalog.root).as_posix()
        try:
            refs = table_references(parse_query(path.read_text(encoding="utf-8"), file=file))
        except MetadataError as exc:
            problems += exc.problems
            continue
        unknown = [r for r in refs if r not in known]
        for ref in unknown:
            problems.append(MetadataProblem(file, "", _unknown_message(ref, known)))
        if f"gold.{projection.name}" in refs:
            problems.append(MetadataProblem(file, "", "a projection cannot read itself"))
        inputs[projection.name] = refs
    problems += _cycles(inputs, catalog)
    if problems:
        raise MetadataError(problems)
    return inputs


def _unknown_message(ref: str, known: Iterable[str]) -> str:
    if ref.startswith("bronze."):
        return f"{ref}: projections read silver and gold tables only (bronze holds raw PHI)"
    return f"unknown table {ref}; known tables: {', '.join(sorted(known))}"


def _cycles(inputs: Mapping[str, tuple[str, ...]], catalog: Catalog) -> list[MetadataProblem]:
    """A problem for each projection that reaches itself through other gold tables."""
    reads = {name: {r.split(".", 1)[1] for r in refs if r.startswith("gold.")}
             for name, refs in inputs.items()}
    problems = []
    for start in reads:
        seen: set[str] = set()
        todo = [n for n in reads[start] if n != start]
        while todo:
            name = todo.pop()
            if name == start:
                file = catalog.file_of("projection", start)
                problems.append(MetadataProblem(file, "sql", "projection reads itself through "
                                                "other gold tables (a cycle)"))
                break
            if name not in seen:
                seen.add(name)
                todo.extend(reads.get(name, ()))
    return problems
