"""Lake tables from Python, by SQL name or path, as a named principal, pinned to a version or a
time if asked.

    from lake_assets.api import query, read_table
    census = read_table("gold.daily_census", kind="pandas", user="ana")   # no Spark needed
    visits = read_table("silver.visits", as_of="2026-11-20T12:00:00Z", user="ana")
    query("SELECT facility_code, COUNT(*) FROM silver.visits GROUP BY 1", user="ana").show()

Every read acts as a user of `metadata/access.yaml` (`user=`, else `$LAKE_USER`; the admin is
named like anyone else), goes through that user's policy and is written to the audit log
`_lake/audit`. pandas and Arrow results come straight from delta-rs; no Spark session starts for
them. BI tools and JDBC/ODBC clients connect to `lakehouse serve` (PostgreSQL protocol).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
from pyspark.sql import DataFrame

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.lineage import lake_tables, parse_query, sql_name, table_references
from lake_assets.catalog.loader import load_catalog, metadata_root
from lake_assets.catalog.policy import Policy, Principal, governed_tables
from lake_assets.catalog.statements import mask_literals
from lake_assets.errors import AccessDeniedError, LakehouseError, LakeQueryError
from lake_assets.serve.server import audit_log
from lake_assets.storage.audit import AuditRecord
from lake_assets.storage.delta import open_table
from lake_assets.storage.lake import Lake
from lake_assets.storage.sql import governed_arrow, governed_frame, read_lake_table, run_sql

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["spark", "pandas", "arrow"]
USER_VARIABLE = "LAKE_USER"


def read_table(
    name: str,
    version: int | None = None,
    *,
    user: str | None = None,
    as_of: dt.datetime | str | None = None,
    kind: Kind = "spark",
    lake: Lake | None = None,
    catalog: Catalog | None = None,
    schema_version: int | None = None,
) -> DataFrame | pd.DataFrame | pa.Table:
    """Lake table `name` (`silver.visits`, `gold/daily_census`, `bronze.adt_events__visits`)
    as `user` sees it: a Spark DataFrame, a pandas DataFrame or an Arrow table.

    `lake` and `catalog` default to `$LAKE_ROOT` and `$LAKE_METADATA`. Raises AccessDeniedError
    for no user or a table the user may not read, LakeQueryError for an unknown name or kind,
    NotADeltaTableError for a table not written yet, DeltaStorageError for a version or time
    outside the table's history.

    `schema_version=N` reads the table as it last was with its N-th schema (`lakehouse catalog
    "SELECT * FROM schema_versions"` lists them); SchemaVersionError for one it never had.
    """
    lake, catalog = lake or Lake(), catalog or load_catalog(metadata_root())
    policy, principal = _reader(catalog, user)
    wanted = sql_name(name)
    started = time.perf_counter()
    with _audited(lake, principal, f"SELECT * FROM {wanted}", [wanted], started) as rows:
        if kind not in ("spark", "pandas", "arrow"):
            raise LakeQueryError(f"kind {kind!r} is not one of spark, pandas, arrow")
        path = governed_tables(catalog).get(wanted)
        if path is None:
            raise LakeQueryError(f"unknown lake table {name!r}")
        table_policy = policy.table(principal, wanted)
        if schema_version is not None:
            if version is not None or as_of is not None:
                raise LakeQueryError("give one of version, as_of and schema_version")
            version = lake.schema_history().delta_version_of(
                lake.ref(path).name, schema_version, latest=lake.version(path))
        if kind == "spark":
            return governed_frame(read_lake_table(lake, catalog, wanted, version=version,
                                                  as_of=as_of), table_policy)
        ref = lake.ref(path)
        delta = open_table(ref.uri, options=ref.options, table=ref.name, version=version,
                           as_of=as_of)
        table = governed_arrow(delta.to_pyarrow_table(), table_policy)
        rows.append(table.num_rows)
        return table.to_pandas() if kind == "pandas" else table


def query(
    sql: str,
    *,
    user: str | None = None,
    version: int | None = None,
    as_of: dt.datetime | str | None = None,
    lake: Lake | None = None,
    catalog: Catalog | None = None,
) -> DataFrame:
    """A Spark DataFrame of `sql` over lake tables by SQL name, as `user` sees them, each
    pinned if asked.

    Raises AccessDeniedError for no user or a table the user may not read, LakeQueryError if
    `sql` does not parse or names an unknown table.
    """
    lake, catalog = lake or Lake(), catalog or load_catalog(metadata_root())
    reader = _reader(catalog, user)
    try:
        tables = [t for t in table_references(parse_query(sql, file="<query>"))
                  if t in lake_tables(catalog)]
    except LakehouseError:
        tables = []
    with _audited(lake, reader[1], sql, tables, time.perf_counter()):
        return run_sql(lake, catalog, sql, version=version, as_of=as_of, reader=reader)


def _reader(catalog: Catalog, user: str | None) -> tuple[Policy, Principal]:
    name = user or os.environ.get(USER_VARIABLE)
    if not name:
        raise AccessDeniedError(f"name the user to read as: user=... or ${USER_VARIABLE} "
                                "(users are declared in access.yaml; admin too is named)")
    policy = Policy.of(catalog)
    return policy, policy.principal(name)


class _audited:
    """Audits the read it wraps: allowed, or denied with the reason; rows when known."""

    def __init__(self, lake: Lake, principal: Principal, sql: str, tables: list[str],
                 started: float) -> None:
        self.lake, self.principal, self.sql, self.tables = lake, principal, sql, tables
        self.started, self.rows = started, []

    def __enter__(self) -> list[int]:
        return self.rows

    def __exit__(self, kind: type | None, error: BaseException | None, _tb: object) -> None:
        denied = isinstance(error, LakehouseError)
        if error is not None and not denied:
            return
        audit_log(self.lake).append([AuditRecord(
            principal=self.principal.user, role=self.principal.role,
            client=f"{socket.gethostname()}:{os.getpid()}", path="api",
            sql=mask_literals(self.sql), tables=self.tables, rows=next(iter(self.rows), None),
            allowed=not denied, reason=mask_literals(str(error)) if denied else None,
            duration_ms=(time.perf_counter() - self.started) * 1000)])
