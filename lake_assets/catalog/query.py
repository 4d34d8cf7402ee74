"""SQL over the configuration itself: the catalog as in-memory SQLite tables.

Tables: feeds, tables, columns, projections, owners, and from access.yaml grants (one row per
role and table glob, with the role's column rules and row filter) and users; each row names the
YAML file it came from. `schema_versions` comes from the lake (every schema each table has had),
read by `lakehouse catalog` only when a query names it.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from lake_assets.catalog.catalog import Catalog
from lake_assets.errors import LakehouseError

_SCHEMA = {
    "feeds": (
        "name", "description", "format", "delimiter", "archive", "password_secret", "encoding",
        "landing_prefix", "partitions", "owners", "subscribers", "warn_after_s", "fail_after_s",
        "max_archives", "max_bytes", "tables", "file", "max_attempts", "retry_backoff_s",
    ),
    "tables": (
        "feed", "name", "description", "selector", "keys", "sequence_by", "cdc",
        "schema_evolution", "columns", "file",
    ),
    "columns": (
        "feed", "table", "name", "type", "source", "format", "nullable", "phi", "description",
        "checks", "file",
    ),
    "projections": (
        "name", "description", "owners", "subscribers", "sql", "partitions", "lookback_days",
        "warn_after_s", "fail_after_s", "file",
    ),
    "owners": (
        "team", "description", "email", "slack_webhook_secret", "pagerduty_routing_key_secret",
        "webhook_url", "file",
    ),
    "grants": ("role", "grant", "raw", "rows", "hide", "mask", "file"),
    "users": ("user", "role", "tenant", "facilities", "password_secret", "file"),
}


class CatalogQueryError(LakehouseError):
    """The SQL given to `lakehouse catalog` failed; the message carries SQLite's reason."""


def _joined(values: tuple[str, ...]) -> str:
    return ",".join(values)


def _feed_rows(catalog: Catalog) -> Iterator[tuple[Any, ...]]:
    for f in catalog.feeds:
        yield (
            f.name, f.description.strip(), f.format.kind, f.format.delimiter, f.archive.kind,
            f.archive.password_secret, f.encoding, f.landing.prefix, _joined(f.partitions),
            _joined(f.owners), _joined(f.subscribers), f.freshness.warn_after.total_seconds(),
            f.freshness.fail_after.total_seconds(), f.batch.max_archives, f.batch.max_bytes,
            len(f.tables), catalog.file_of("feed", f.name), f.retry.max_attempts,
            f.retry.backoff.total_seconds(),
        )


def _table_rows(catalog: Catalog) -> Iterator[tuple[Any, ...]]:
    for f in catalog.feeds:
        for t in f.tables:
            yield (
                f.name, t.name, t.description, t.selector, _joined(t.keys), t.sequence_by,
                t.cdc, t.schema_evolution, len(t.columns), catalog.file_of("feed", f.name),
            )


def _column_rows(catalog: Catalog) -> Iterator[tuple[Any, ...]]:
    for f in catalog.feeds:
        for t in f.tables:
            for c in t.columns:
                checks = c.checks.model_dump(exclude_defaults=True)
                yield (
                    f.name, t.name, c.name, c.type, c.source_or_name, c.format, int(c.nullable),
                    c.phi, c.description, json.dumps(checks) if checks else None,
                    catalog.file_of("feed", f.name),
                )


def _projection_rows(catalog: Catalog) -> Iterator[tuple[Any, ...]]:
    for p in catalog.projections:
        yield (
            p.name, p.description.strip(), _joined(p.owners), _joined(p.subscribers), p.sql,
            _joined(p.partitions), p.lookback_days, p.freshness.warn_after.total_seconds(),
            p.freshness.fail_after.total_seconds(), catalog.file_of("projection", p.name),
        )


def _owner_rows(catalog: Catalog) -> Iterator[tuple[Any, ...]]:
    for name, team in catalog.owners.teams.items():
        yield (
            name, team.description, _joined(team.email), team.slack_webhook_secret,
            team.pagerduty_routing_key_secret, team.webhook_url, catalog.file_of("team", name),
        )


def _grant_rows(catalog: Catalog) -> Iterator[tuple[Any, ...]]:
    access = catalog.access
    for name, role in (access.roles.items() if access else ()):
        rules = {action: ",".join(f"{r.table}:{r.column}" for r in role.columns
                                  if r.action == action) or None for action in ("hide", "mask")}
        for grant in role.grants:
            yield (name, grant, int(role.raw), role.rows, rules["hide"], rules["mask"],
                   catalog.file_of("access", ""))


def _user_rows(catalog: Catalog) -> Iterator[tuple[Any, ...]]:
    access = catalog.access
    for name, user in (access.users.items() if access else ()):
        tenant = access.tenants.get(user.tenant) if access and user.tenant else None
        yield (name, user.role, user.tenant, _joined(tenant.facilities) if tenant else None,
               user.password_secret, catalog.file_of("access", ""))


_ROWS = {
    "feeds": _feed_rows,
    "tables": _table_rows,
    "columns": _column_rows,
    "projections": _projection_rows,
    "owners": _owner_rows,
    "grants": _grant_rows,
    "users": _user_rows,
}


# Read from the lake, not metadata: filled by the caller (`lakehouse catalog`) when asked for.
LAKE_TABLES = {
    "schema_versions": ("table", "schema_version", "delta_version", "code_version",
                        "effective_at", "columns", "column_names", "fingerprint"),
}
LakeRows = Mapping[str, Iterable[tuple[Any, ...]]]


def connect(catalog: Catalog, lake_rows: LakeRows | None = None) -> sqlite3.Connection:
    """An in-memory SQLite connection holding the catalog tables, and the lake tables whose
    rows `lake_rows` gives (empty otherwise)."""
    connection = sqlite3.connect(":memory:")
    lake_rows = lake_rows or {}
    for table, columns in (_SCHEMA | LAKE_TABLES).items():
        quoted = ", ".join(f'"{c}"' for c in columns)
        connection.execute(f'CREATE TABLE "{table}" ({quoted})')
        marks = ", ".join("?" for _ in columns)
        rows = _ROWS[table](catalog) if table in _ROWS else lake_rows.get(table, ())
        connection.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
    connection.commit()
    connection.execute("PRAGMA query_only = ON")
    return connection


def lake_tables_in(sql: str) -> list[str]:
    """The lake-backed catalog tables that `sql` mentions (so only those are read)."""
    return [t for t in LAKE_TABLES if re.search(rf"\b{t}\b", sql, re.IGNORECASE)]


def run_query(catalog: Catalog, sql: str, lake_rows: LakeRows | None = None
              ) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run `sql` over the catalog (and `lake_rows`); returns column names and rows.

    Raises CatalogQueryError with SQLite's message and the available tables.
    """
    connection = connect(catalog, lake_rows)
    try:
        cursor = connection.execute(sql)
    except sqlite3.Error as exc:
        tables = "; ".join(f"{t}({', '.join(c)})" for t, c in (_SCHEMA | LAKE_TABLES).items())
        raise CatalogQueryError(f"catalog query failed: {exc}. Tables: {tables}") from exc
    names = [d[0] for d in cursor.description or ()]
    rows = cursor.fetchall()
    connection.close()
    return names, rows
