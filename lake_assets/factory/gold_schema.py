"""Gold column schemas derived from each projection's SQL: names, types and PHI tags.

Types come from sqlglot's type annotation over the silver schemas (as masked) and the gold
schemas derived before; each output column's sources come from sqlglot's column lineage. A
column computed from a PHI-tagged column keeps the tag (all of them, when several feed it), so
the UI and reviewers see that `gold.x.y` still derives from, say, a hashed MRN. A projection
whose SQL sqlglot cannot follow gets no schema rather than a wrong one, and says why in its
metadata (`lake/column_schema_error`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dagster as dg
from sqlglot import exp, lineage
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope

from lake_assets.catalog.catalog import Catalog
from lake_assets.factory.silver import silver_sources
from lake_assets.ingest.cdc import silver_schema

DIALECT = "spark"


@dataclass(frozen=True)
class GoldColumn:
    """One output column of a projection: its type, PHI tags and the columns it reads."""

    name: str
    type: str
    phi: tuple[str, ...]
    sources: tuple[str, ...]  # layer.table.column

    def as_table_column(self) -> dg.TableColumn:
        """The column as the UI shows it, with its PHI tags and sources."""
        read = ", ".join(self.sources) or "no table column"
        tags = {"phi": ",".join(self.phi)} if self.phi else None
        note = f"; PHI ({', '.join(self.phi)}) carried from its sources" if self.phi else ""
        return dg.TableColumn(self.name, self.type, f"from {read}{note}", tags=tags)


def gold_columns(catalog: Catalog, sqls: Mapping[str, str],
                 order: Sequence[str]) -> dict[str, list[GoldColumn] | str]:
    """The output columns of each projection (`sqls`: name -> SQL text), derived in `order`
    (inputs before readers); for a projection sqlglot cannot follow, the reason instead."""
    types: dict[str, dict[str, dict[str, str]]] = {"silver": {}, "gold": {}}
    phi: dict[tuple[str, str, str], tuple[str, ...]] = {}
    for source in silver_sources(catalog):
        types["silver"][source.name] = {f.name: f.dataType.simpleString()
                                        for f in silver_schema(source.table).fields}
        phi |= {("silver", source.name, c.name): (c.phi,) for c in source.table.columns if c.phi}
    found: dict[str, list[GoldColumn] | str] = {}
    for name in order:
        columns = _derive(sqls[name], types, phi)
        found[name] = columns
        if isinstance(columns, str):
            continue
        types["gold"][name] = {c.name: c.type for c in columns}
        phi |= {("gold", name, c.name): c.phi for c in columns if c.phi}
    return found


def _derive(sql: str, types: dict[str, dict[str, dict[str, str]]],
            phi: Mapping[tuple[str, str, str], tuple[str, ...]]) -> list[GoldColumn] | str:
    try:
        query = qualify(exp.maybe_parse(sql, dialect=DIALECT), schema=types, dialect=DIALECT)
        typed = annotate_types(query, schema=types, dialect=DIALECT)
        scope = build_scope(query)  # qualified once: each column's lineage reuses it
        columns = []
        for select in typed.selects:
            sources = _sources(select.alias_or_name, query, scope)
            tags = tuple(sorted({t for s in sources for t in phi.get(s, ())}))
            kind = select.type.sql(DIALECT).lower() if select.type else "unknown"
            columns.append(GoldColumn(select.alias_or_name, kind, tags,
                                      tuple(".".join(s) for s in sources)))
        return columns
    except (SqlglotError, KeyError, ValueError, AttributeError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _sources(column: str, query: exp.Expression, scope: Scope | None
             ) -> list[tuple[str, str, str]]:
    """The (layer, table, column) that `column` of the qualified `query` is computed from."""
    node = lineage.lineage(column, query, dialect=DIALECT, scope=scope)
    found = []
    for leaf in node.walk():
        if leaf.downstream or not isinstance(leaf.source, exp.Table):
            continue
        table = leaf.source
        found.append((table.db, table.name, leaf.name.rsplit(".", 1)[-1].strip('"`')))
    return sorted(set(found))
