"""Lake tables from Python, by SQL name or path, pinned to a version or a time if asked.

    from lake_assets.api import query, read_table
    census = read_table("gold.daily_census", kind="pandas")          # no Spark needed
    visits = read_table("silver.visits", as_of="2026-11-20T12:00:00Z")  # Spark DataFrame
    query("SELECT facility_code, COUNT(*) FROM silver.visits GROUP BY 1").show()

pandas and Arrow results come straight from delta-rs; no Spark session starts for them.
`serve_jdbc` serves silver and gold to BI tools over Spark's Thrift (HiveServer2) protocol.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
from pyspark.sql import DataFrame

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.lineage import PROJECTION_LAYERS, lake_tables, sql_name, view_name
from lake_assets.catalog.loader import load_catalog, metadata_root
from lake_assets.errors import LakeQueryError
from lake_assets.storage.delta import open_table
from lake_assets.storage.lake import Lake
from lake_assets.storage.spark import build_session
from lake_assets.storage.sql import read_lake_table, run_sql

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["spark", "pandas", "arrow"]


def read_table(
    name: str,
    version: int | None = None,
    *,
    as_of: dt.datetime | str | None = None,
    kind: Kind = "spark",
    lake: Lake | None = None,
    catalog: Catalog | None = None,
) -> DataFrame | pd.DataFrame | pa.Table:
    """Lake table `name` (`silver.visits`, `gold/daily_census`, `bronze.adt_events__visits`)
    as a Spark DataFrame, a pandas DataFrame or an Arrow table.

    `lake` and `catalog` default to `$LAKE_ROOT` and `$LAKE_METADATA`. Raises LakeQueryError
    for an unknown name or kind, NotADeltaTableError for a table not written yet, and
    DeltaStorageError for a version or time outside the table's history.
    """
    lake = lake or Lake()
    catalog = catalog or load_catalog(metadata_root())
    if kind == "spark":
        return read_lake_table(lake, catalog, name, version=version, as_of=as_of)
    if kind not in ("pandas", "arrow"):
        raise LakeQueryError(f"kind {kind!r} is not one of spark, pandas, arrow")
    path = lake_tables(catalog).get(sql_name(name))
    if path is None:
        raise LakeQueryError(f"unknown lake table {name!r}")
    ref = lake.ref(path)
    delta = open_table(ref.uri, options=ref.options, table=ref.name, version=version,
                       as_of=as_of)
    table = delta.to_pyarrow_table()
    return table.to_pandas() if kind == "pandas" else table


def query(
    sql: str,
    *,
    version: int | None = None,
    as_of: dt.datetime | str | None = None,
    lake: Lake | None = None,
    catalog: Catalog | None = None,
) -> DataFrame:
    """A Spark DataFrame of `sql` over lake tables by SQL name, each pinned if asked.

    Raises LakeQueryError if `sql` does not parse or names an unknown table.
    """
    return run_sql(lake or Lake(), catalog or load_catalog(metadata_root()), sql,
                   version=version, as_of=as_of)


def serve_jdbc(
    *,
    host: str = "127.0.0.1",
    port: int = 10000,
    refresh_seconds: float = 60.0,
    stop: threading.Event | None = None,
    catalog: Catalog | None = None,
) -> None:
    """Serve every written silver and gold table to JDBC/ODBC clients until `stop` is set.

    Starts Spark's Thrift server (HiveServer2 protocol, no authentication: keep `host` on a
    private interface) inside this process, where the `delta_rs` source is registered. Tables
    are the views `silver__<table>` and `gold__<projection>`, shared by every connection, and
    re-pinned to their latest version every `refresh_seconds`. Bronze is never served.
    """
    spark = build_session(app_name="lakehouse-jdbc", conf={
        "spark.sql.hive.thriftServer.singleSession": "true",
        "hive.server2.thrift.bind.host": host,
        "hive.server2.thrift.port": str(port),
    })
    if spark.conf.get("spark.sql.hive.thriftServer.singleSession") != "true":
        raise LakeQueryError("serve_jdbc needs a process without a Spark session of its own")
    lake, catalog = Lake(session_factory=lambda: spark), catalog or load_catalog(metadata_root())
    served = [n for n in lake_tables(catalog) if n.split(".", 1)[0] in PROJECTION_LAYERS]
    stop = stop or threading.Event()
    _register_written(lake, catalog, served)
    thrift = spark._jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2  # type: ignore[union-attr]
    server = thrift.startWithContext(spark._jsparkSession.sqlContext())  # type: ignore[union-attr]
    try:
        while not stop.wait(refresh_seconds):
            _register_written(lake, catalog, served)
    finally:
        server.stop()


def _register_written(lake: Lake, catalog: Catalog, names: list[str]) -> None:
    for name in names:
        if lake.exists(lake_tables(catalog)[name]):
            read_lake_table(lake, catalog, name).createOrReplaceTempView(view_name(name))
