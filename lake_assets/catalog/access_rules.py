"""Rules between `access.yaml` and the rest of the metadata: every grant and column rule names
tables that exist, raw layers are granted only with `raw: true`, masked columns exist."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator

from lake_assets.catalog.access import RAW_LAYERS, Access, Role
from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.lineage import lake_tables
from lake_assets.errors import MetadataProblem

ACCESS_FILE = "access.yaml"
# Lineage columns every bronze and silver table carries besides its declared ones.
LINEAGE_COLUMNS = ("_facility_id", "_source_archive", "_source_member", "_archive_sha256",
                   "_ingested_at", "_batch_id", "_rescued_data", "_arrival_date")


def access_problems(catalog: Catalog) -> list[MetadataProblem]:
    """Every problem of `catalog.access` against the catalog's tables, naming the key."""
    if catalog.access is None:
        return []
    tables = _tables(catalog)
    return [p for name, role in catalog.access.roles.items()
            for p in _role_problems(name, role, tables)] + list(_secrets(catalog.access))


def _tables(catalog: Catalog) -> dict[str, set[str] | None]:
    """SQL name -> its known column names (None for gold: its SQL decides them)."""
    known: dict[str, set[str] | None] = {}
    for name in lake_tables(catalog):
        known[name] = None
    for feed in catalog.feeds:
        for table in feed.tables:
            columns = {c.name for c in table.columns} | set(LINEAGE_COLUMNS)
            for layer in ("bronze", "quarantine"):
                known[f"{layer}.{feed.name}__{table.name}"] = columns | {"_error"}
            known[f"silver.{table.name}"] = (known.get(f"silver.{table.name}") or set()) \
                | columns
    return known


def _role_problems(name: str, role: Role,
                   tables: dict[str, set[str] | None]) -> Iterator[MetadataProblem]:
    for index, glob in enumerate(role.grants):
        key = f"roles.{name}.grants[{index}]"
        matched = [t for t in tables if fnmatch.fnmatchcase(t, glob)]
        if not matched:
            yield MetadataProblem(ACCESS_FILE, key, f"{glob!r} matches no table")
        elif glob.split(".", 1)[0] in RAW_LAYERS and not role.raw:
            yield MetadataProblem(ACCESS_FILE, key, f"{glob!r} grants raw PHI; only a role "
                                  "with raw: true may read bronze or quarantine")
    for index, rule in enumerate(role.columns):
        key = f"roles.{name}.columns[{index}]"
        matched = [t for t in tables if fnmatch.fnmatchcase(t, rule.table)]
        if not matched:
            yield MetadataProblem(ACCESS_FILE, f"{key}.table", f"{rule.table!r} matches no table")
            continue
        if all(tables[t] is not None for t in matched) and not any(
                fnmatch.filter(tables[t] or (), rule.column) for t in matched):
            yield MetadataProblem(ACCESS_FILE, f"{key}.column",
                                  f"no table matching {rule.table!r} has a column "
                                  f"{rule.column!r}")


def _secrets(access: Access) -> Iterator[MetadataProblem]:
    for name, user in access.users.items():
        if user.password_secret is None:
            continue
        owners = [n for n, u in access.users.items()
                  if u.password_secret == user.password_secret and n < name]
        if owners:
            yield MetadataProblem(ACCESS_FILE, f"users.{name}.password_secret",
                                  f"secret {user.password_secret} is also {owners[0]}'s; "
                                  "every user has a password of its own")
