"""`Engine`: governed SQL over the lake in DuckDB, shared by every client of `lakehouse serve`.

A `Session` is one client acting as one principal. Each statement is inspected (sqlglot) for
the lake tables it reads, checked against the policy, reads every such table at its latest
committed version (or the version it asks with `FOR VERSION AS OF`), runs in the principal's
`RoleDatabase`, and is audited, allowed or denied, with its literals masked.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from sqlglot import exp

import lake_assets.serve.pgcompat as pgcompat
from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.policy import Policy, Principal, governed_tables
from lake_assets.catalog.statements import Statement, mask_literals
from lake_assets.errors import AccessDeniedError, LakehouseError, LakeQueryError
from lake_assets.serve.database import RoleDatabase
from lake_assets.serve.loader import Loader
from lake_assets.storage.audit import AuditRecord, AuditWriter
from lake_assets.storage.lake import Lake

# DuckDB statement types a reader may run; everything else (COPY, ATTACH, INSTALL, LOAD, SET,
# PRAGMA, CALL, CREATE, EXPORT, ...) is refused before it runs.
_READS = {"SELECT", "EXPLAIN"}
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\([^)]*\)\s*)?", re.IGNORECASE)


@dataclass(frozen=True)
class Result:
    """A statement's rows (None for a statement without rows) and its command tag."""

    tag: str
    rows: pa.Table | None = None


class Engine:
    """Governed DuckDB over the lake's Delta tables for every principal of `catalog`."""

    def __init__(self, lake: Lake, catalog: Catalog, *, audit: AuditWriter | None = None,
                 threads: int = 2) -> None:
        self.policy = Policy.of(catalog)
        self.refs = {name: lake.ref(path) for name, path in governed_tables(catalog).items()}
        self.audit = audit
        self.threads = threads
        self.loader = Loader()
        self._databases: dict[tuple[str, tuple[str, ...] | None], RoleDatabase] = {}
        self._lock = threading.Lock()

    def database(self, principal: Principal) -> RoleDatabase:
        """The database of `principal`'s policy shape, opened on first use."""
        with self._lock:
            found = self._databases.get(principal.shape)
            if found is None:
                found = RoleDatabase(self.policy, principal, self.refs, self.loader,
                                     threads=self.threads)
                self._databases[principal.shape] = found
        return found

    def session(self, user: str, *, client: str, path: str = "serve") -> Session:
        """A session acting as `user`; raises AccessDeniedError for an unknown user."""
        return Session(self, self.policy.principal(user), client=client, path=path)

    def record(self, record: AuditRecord) -> None:
        """Audit `record` (nothing without an audit writer)."""
        if self.audit is not None:
            self.audit.record(record)


class Session:
    """One client's connection to the engine, as one principal."""

    def __init__(self, engine: Engine, principal: Principal, *, client: str, path: str) -> None:
        self.engine = engine
        self.principal = principal
        self.client = client
        self.path = path
        self.database = engine.database(principal)
        self.cursor = self.database.cursor()

    def execute(self, sql: str, params: Sequence[object] | None = None) -> Result:
        """Run one statement; returns its rows.

        Raises AccessDeniedError for a table, statement or file access the policy refuses, and
        LakeQueryError for SQL DuckDB rejects; both are audited.
        """
        tag = pgcompat.command_tag(sql)
        if tag is not None:
            return Result(tag)
        shown = pgcompat.show_value(sql)
        if shown is not None:
            return Result("SHOW", pa.table({shown[0]: [shown[1]]}))
        started = time.perf_counter()
        sql = pgcompat.rewrite(sql)
        statement = self.database.inspect(sql)
        try:
            result = self._run(statement, sql, params)
        except AccessDeniedError as exc:
            self._audit(statement, started, allowed=False, reason=str(exc))
            raise
        except LakehouseError as exc:  # DuckDB's message may quote a value: masked
            self._audit(statement, started, allowed=False, reason=mask_literals(f"error: {exc}"))
            raise
        self._audit(statement, started, rows=result.rows.num_rows if result.rows else 0)
        return result

    def close(self) -> None:
        """Release the session's connection."""
        self.cursor.close()

    def _run(self, statement: Statement, sql: str, params: Sequence[object] | None) -> Result:
        for name in statement.tables:
            self.engine.policy.table(self.principal, name)  # raises for a table not granted
        travelled = self._travel(statement) if statement.travel else {}
        if travelled:
            sql = self._rewrite_travel(statement, travelled)
        kinds = self._kinds(sql)
        if kinds == ["EXPLAIN"]:
            # EXPLAIN ANALYZE runs what it explains (DROP TABLE too): only a SELECT may follow.
            inner = _EXPLAIN.sub("", sql, count=1)
            kinds = ["EXPLAIN"] if inner != sql and self._kinds(inner) == ["SELECT"] \
                else ["EXPLAIN of a statement other than SELECT"]
        refused = [k for k in kinds if k not in _READS]
        if refused or len(kinds) != 1:
            what = refused[0] if refused else f"{len(kinds)} statements"
            raise AccessDeniedError(f"permission denied: only one SELECT at a time is served "
                                    f"(got {what})")
        # A statement naming no lake table (a catalog query) or not parsed syncs every table.
        self.database.sync(statement.tables if statement.tree is not None and statement.tables
                           else self.database.readable)
        try:
            return self._fetch(kinds[0], sql, params)
        except duckdb.PermissionException as exc:
            raise AccessDeniedError(f"permission denied: {_first_line(exc)}") from None
        except duckdb.CatalogException as exc:
            if "extension" in str(exc):  # delta_scan & co.: extensions cannot be loaded here
                raise AccessDeniedError(f"permission denied: {_first_line(exc)}; extensions "
                                        "cannot be loaded") from None
            raise LakeQueryError(_first_line(exc)) from None
        except duckdb.Error as exc:
            raise LakeQueryError(_first_line(exc)) from None
        finally:
            for name in travelled.values():
                self.cursor.unregister(name)

    def _kinds(self, sql: str) -> list[str]:
        """The DuckDB statement types of `sql`, by DuckDB's own parser."""
        try:
            return [s.type.name for s in self.cursor.extract_statements(sql)]
        except duckdb.Error as exc:
            raise LakeQueryError(_first_line(exc)) from None

    def _fetch(self, kind: str, sql: str, params: Sequence[object] | None) -> Result:
        self.cursor.execute(sql, list(params) if params else None)
        rows = self.cursor.to_arrow_table()
        return Result(f"{kind} {rows.num_rows}" if kind == "SELECT" else kind, rows)

    def _travel(self, statement: Statement) -> dict[tuple[str, str, str], str]:
        """Register each table read at a past version on this session's connection; returns
        the name each (table, kind, value) is registered under."""
        loader, names = self.engine.loader, {}
        for index, travel in enumerate(statement.travel):
            ref = self.engine.refs[travel.table]
            version = int(travel.value) if travel.kind == "version" \
                else loader.version_at(ref, travel.value)
            policy = self.engine.policy.table(self.principal, travel.table)
            name = f"_travel_{index}"
            self.cursor.register(name, loader.read(ref, policy, version=version))
            names[(travel.table, travel.kind, travel.value)] = name
        return names

    @staticmethod
    def _rewrite_travel(statement: Statement, names: dict[tuple[str, str, str], str]) -> str:
        tree = statement.tree.copy()  # type: ignore[union-attr]
        for table in list(tree.find_all(exp.Table)):
            version = table.args.get("version")
            if not isinstance(version, exp.Version):
                continue
            key = (f"{table.db.lower()}.{table.name.lower()}", version.name.lower(),
                   version.expression.name)
            table.replace(exp.Table(this=exp.to_identifier(names[key]),
                                    alias=exp.TableAlias(this=exp.to_identifier(
                                        table.alias or table.name))))
        return tree.sql("duckdb")

    def _audit(self, statement: Statement, started: float, *, allowed: bool = True,
               rows: int | None = None, reason: str | None = None) -> None:
        self.engine.record(AuditRecord(
            principal=self.principal.user, role=self.principal.role, client=self.client,
            path=self.path, sql=statement.masked_sql, tables=statement.tables,
            columns=statement.columns, rows=rows, allowed=allowed, reason=reason,
            duration_ms=(time.perf_counter() - started) * 1000))


def _first_line(error: Exception) -> str:
    return str(error).strip().split("\n", 1)[0]
