"""`RoleDatabase`: the in-memory DuckDB database of one policy shape (a role, and a tenant's
facilities for tenant roles), holding only what that shape may see.

Each granted table is a DuckDB table filled by the `Loader` through the policy: its rows, with
masked columns masked and hidden ones absent. Nothing else is in the database, so no SQL run in
it can reach more, and it has no file access (`enable_external_access=false`), no extension
loading, and a locked configuration from the moment it opens. A table is reloaded when a query
reads it and its Delta table has a newer committed version.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

import duckdb
from sqlglot import exp

from lake_assets.catalog.policy import Policy, Principal, layer_of
from lake_assets.catalog.statements import Statement, inspect
from lake_assets.serve.loader import Loader
from lake_assets.storage.delta import TableRef

MEMORY_LIMIT = "2GB"  # per role database; DuckDB's default is 80% of the machine
STATEMENT_CACHE = 512  # distinct SQL texts remembered per database
# Client tools ask for these PostgreSQL functions on connect (psql's \dt, BI catalogs).
_COMPAT_MACROS = (
    "CREATE MACRO pg_get_userbyid(id) AS 'lake'",
    "CREATE MACRO pg_encoding_to_char(id) AS 'UTF8'",
    "CREATE MACRO pg_get_function_identity_arguments(id) AS ''",
    "CREATE MACRO obj_description(id, kind) AS NULL",
    "CREATE MACRO shobj_description(id, kind) AS NULL",
    "CREATE MACRO to_regtype(name) AS "
    "(SELECT min(oid) FROM pg_catalog.pg_type WHERE typname = name)",
)


def _locked_database(threads: int) -> duckdb.DuckDBPyConnection:
    # One role's runaway query stops at its own memory limit, not the machine's.
    return duckdb.connect(config={
        "memory_limit": MEMORY_LIMIT,
        "enable_external_access": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "allow_unsigned_extensions": False,
        "threads": threads,
        "lock_configuration": True,
    })


class RoleDatabase:
    """What one policy shape sees of the lake, as DuckDB tables kept at the latest version."""

    def __init__(self, policy: Policy, principal: Principal, refs: Mapping[str, TableRef],
                 loader: Loader, *, threads: int = 2) -> None:
        self.policy = policy
        self.principal = principal
        self.refs = refs
        self.loader = loader
        self.readable = policy.readable(principal)
        self.db = _locked_database(threads)
        self.versions: dict[str, int] = {}
        self.columns: dict[str, list[str]] = {}
        self._locks = {name: threading.Lock() for name in self.readable}
        self._statements: dict[tuple[str, tuple], Statement] = {}
        self._statements_lock = threading.Lock()
        setup = self.db.cursor()
        for layer in sorted({layer_of(n) for n in self.readable}):
            setup.execute(f"CREATE SCHEMA {exp.to_identifier(layer, quoted=True).sql()}")
        for macro in _COMPAT_MACROS:
            setup.execute(macro)
        self.sync(self.readable)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection to this database, for one client."""
        return self.db.cursor()

    def schema(self) -> dict[str, dict[str, list[str]]]:
        """{layer: {table: columns}} of every loaded table, as sqlglot's qualify takes it."""
        found: dict[str, dict[str, list[str]]] = {}
        for name, columns in self.columns.items():
            layer, table = name.split(".", 1)
            found.setdefault(layer, {})[table] = columns
        return found

    def inspect(self, sql: str) -> Statement:
        """What `sql` touches (see `catalog.statements.inspect`), remembered per text while
        the columns stay the same: dashboards send the same SQL again and again, and parsing
        it costs more than DuckDB answering it."""
        key = (sql, tuple(sorted((n, tuple(c)) for n, c in self.columns.items())))
        found = self._statements.get(key)
        if found is None:
            found = inspect(sql, schema=self.schema())
            with self._statements_lock:
                if len(self._statements) >= STATEMENT_CACHE:
                    self._statements.pop(next(iter(self._statements)))
                self._statements[key] = found
        return found

    def sync(self, names: Iterable[str]) -> dict[str, int]:
        """Reload each readable table of `names` whose Delta table has a newer version; returns
        the version each is read at. Tables not written yet are left out."""
        seen = {}
        for name in names:
            if name not in self._locks:
                continue
            latest = self.loader.latest(self.refs[name])
            if latest is None:
                continue
            if self.versions.get(name) != latest:
                with self._locks[name]:
                    if self.versions.get(name) != latest:
                        self._load(name, latest)
            seen[name] = latest
        return seen

    def _load(self, name: str, version: int) -> None:
        rows = self.loader.read(self.refs[name], self.policy.table(self.principal, name),
                                version=version)
        layer, table = name.split(".", 1)
        target = exp.table_(table, db=layer, quoted=True).sql("duckdb")
        cursor = self.db.cursor()
        try:
            cursor.register("_incoming", rows)
            cursor.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM _incoming")
            cursor.unregister("_incoming")
        finally:
            cursor.close()
        # Replaced, not changed in place: other clients' threads read them without a lock.
        self.versions = {**self.versions, name: version}
        self.columns = {**self.columns, name: rows.column_names}
