"""Lake tables by SQL name as DataFrames, and Spark SQL over them.

`silver.visits` is passed to Spark SQL as the DataFrame `{silver__visits}` (see
`catalog.lineage`), pinned to a version or a time when asked; no temporary view is left in the
session. A silver table not written yet reads as empty, with its schema. A reader's query gets
each table through its `TablePolicy` (`governed_frame`, `governed_arrow`): only its rows, masked
columns masked, hidden ones gone, so the SQL cannot reach more.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.lineage import (
    lake_tables,
    parse_query,
    rewrite,
    sql_name,
    table_references,
    view_name,
)
from lake_assets.catalog.policy import Policy, Principal, TablePolicy
from lake_assets.errors import LakeQueryError, MetadataError, ProjectionError
from lake_assets.ingest.cdc import silver_schema
from lake_assets.storage.lake import Lake

QUERY_FILE = "<query>"
MASK_TEXT = "***"


def read_lake_table(
    lake: Lake,
    catalog: Catalog,
    name: str,
    *,
    version: int | None = None,
    as_of: dt.datetime | str | None = None,
) -> DataFrame:
    """Lake table `name` (`silver.visits` or `silver/visits`) as a DataFrame.

    Raises LakeQueryError for a name the catalog does not know, ProjectionError for a bronze or
    gold table not written yet, DeltaStorageError for a version or time outside its history.
    """
    tables = lake_tables(catalog)
    wanted = sql_name(name)
    path = tables.get(wanted)
    if path is None:
        raise LakeQueryError(f"unknown lake table {name!r}; known: {', '.join(sorted(tables))}")
    if lake.exists(path) or version is not None or as_of is not None:
        return lake.read(path, version=version, as_of=as_of)
    layer, _, table = wanted.partition(".")
    if layer != "silver":
        raise ProjectionError(f"lake table {wanted} has not been written yet ({path})")
    declared = next(t for f in catalog.feeds for t in f.tables if t.name == table)
    return lake.session.createDataFrame([], silver_schema(declared))


def governed_frame(frame: DataFrame, policy: TablePolicy) -> DataFrame:
    """`frame` as `policy`'s principal may see it: its rows, masked and hidden columns."""
    for column, facilities in policy.row_filter(frame.columns):
        frame = frame.where(F.col(column).isin(list(facilities)))
    types = dict(frame.dtypes)
    return frame.select(*(
        F.col(name) if action == "show" else
        (F.lit(MASK_TEXT) if types[name] == "string" else F.lit(None).cast(types[name]))
        .alias(name)
        for name, action in policy.columns(frame.columns)))


def governed_arrow(table: pa.Table, policy: TablePolicy) -> pa.Table:
    """`table` as `policy`'s principal may see it (see `governed_frame`)."""
    for column, facilities in policy.row_filter(table.column_names):
        table = table.filter(pc.is_in(table[column], pa.array(facilities)))
    columns = {}
    for name, action in policy.columns(table.column_names):
        kind = table.schema.field(name).type
        columns[name] = table[name] if action == "show" else pa.array(
            [MASK_TEXT if pa.types.is_string(kind) else None] * table.num_rows, kind)
    return pa.table(columns)


def lake_sql(
    lake: Lake,
    catalog: Catalog,
    spark_sql: str,
    names: Iterable[str],
    *,
    version: int | None = None,
    as_of: dt.datetime | str | None = None,
    reader: tuple[Policy, Principal] | None = None,
) -> DataFrame:
    """`spark_sql` (a `rewrite` of a query) over the lake tables `names` it reads, each pinned
    to `version` or `as_of` if given, and through `reader`'s policy when given.

    Raises AccessDeniedError for a table `reader` may not read."""
    frames = {}
    for name in names:
        policy = reader[0].table(reader[1], name) if reader else None
        frame = read_lake_table(lake, catalog, name, version=version, as_of=as_of)
        frames[view_name(name)] = governed_frame(frame, policy) if policy else frame
    if not frames:  # Spark formats (and unescapes braces) only when given frames
        return lake.session.sql(spark_sql.format())
    return lake.session.sql(spark_sql, **frames)


def run_sql(
    lake: Lake,
    catalog: Catalog,
    sql: str,
    *,
    version: int | None = None,
    as_of: dt.datetime | str | None = None,
    reader: tuple[Policy, Principal] | None = None,
) -> DataFrame:
    """The result of Spark SQL `sql` over lake tables named `bronze.<feed>__<table>`,
    `silver.<table>` and `gold.<projection>`, each pinned to `version` or `as_of` if given,
    and each through `reader`'s policy when given.

    Raises LakeQueryError if `sql` does not parse or names an unknown table (files read as
    tables, such as parquet.`/path`, are unknown tables), AccessDeniedError for a table not granted.
    """
    try:
        query = parse_query(sql, file=QUERY_FILE)
    except MetadataError as exc:
        raise LakeQueryError("; ".join(str(p) for p in exc.problems)) from exc
    known = lake_tables(catalog)
    refs = table_references(query)
    unknown = [r for r in refs if r not in known]
    if unknown:
        raise LakeQueryError(
            f"unknown table {', '.join(unknown)}; known tables: {', '.join(sorted(known))}"
        )
    return lake_sql(lake, catalog, rewrite(query), refs, version=version, as_of=as_of,
                    reader=reader)
