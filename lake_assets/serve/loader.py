"""Delta tables read through the access policy by DuckDB's delta extension.

The loader is the only DuckDB connection with file access, and no reader's SQL ever runs on it:
it runs SELECTs built here (sqlglot) that keep a principal's rows, mask its masked columns and
leave out its hidden ones, straight from the table's Delta log and Parquet files. Its Arrow
results fill the principals' own databases, which have no file access at all.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

import duckdb
import duckdb_extension_delta
import pyarrow as pa
from sqlglot import exp

from lake_assets.catalog.policy import TablePolicy
from lake_assets.errors import NotADeltaTableError, ServeError
from lake_assets.storage import delta

MASK_TEXT = "***"
_TEXT_TYPES = ("VARCHAR",)


def delta_extension() -> Path:
    """The delta extension shipped by the `duckdb-extension-delta` package; raises ServeError
    when the package holds none for this DuckDB version."""
    folder = Path(duckdb_extension_delta.__file__).parent / "extensions"
    path = folder / f"v{duckdb.__version__}" / "delta.duckdb_extension"
    if not path.is_file():
        raise ServeError(f"duckdb-extension-delta has no delta extension for DuckDB "
                         f"{duckdb.__version__} in {folder}; install matching versions")
    return path


class Loader:
    """Reads lake tables at a version, through a `TablePolicy`, into Arrow."""

    def __init__(self) -> None:
        self._db = duckdb.connect(config={"autoinstall_known_extensions": False,
                                          "autoload_known_extensions": False})
        self._db.execute(f"LOAD {exp.Literal.string(str(delta_extension())).sql()}")
        self._local = threading.local()
        self._versions: dict[str, int] = {}
        self._lock = threading.Lock()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self._db.cursor()
        return cursor

    def latest(self, ref: delta.TableRef) -> int | None:
        """The latest committed version of `ref`, or None when it is not a Delta table yet.

        A local table's next commit is looked for by name (one stat per check), so every query
        can afford to ask; other stores open the table's log.
        """
        known = self._versions.get(ref.uri)
        if known is not None and "://" not in ref.uri:
            log = Path(ref.uri) / "_delta_log"
            while os.path.exists(log / f"{known + 1:020d}.json"):
                known += 1
        else:
            try:
                known = delta.open_table(ref.uri, options=ref.options, table=ref.name).version()
            except NotADeltaTableError:
                return None
        with self._lock:
            self._versions[ref.uri] = known
        return known

    def version_at(self, ref: delta.TableRef, when: str) -> int:
        """The version of `ref` current at time `when` (ISO-8601); raises DeltaStorageError
        for a time before the table existed."""
        moment = dt.datetime.fromisoformat(when.replace(" ", "T"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return delta.open_table(ref.uri, options=ref.options, table=ref.name,
                                as_of=moment).version()

    def read(self, ref: delta.TableRef, policy: TablePolicy, *, version: int) -> pa.Table:
        """The rows and columns of `ref` at `version` that `policy` lets its principal see.

        Raises AccessDeniedError when a tenant's rows cannot be told apart (no facility column).
        """
        source = exp.func("delta_scan", exp.Literal.string(ref.uri),
                          exp.Kwarg(this=exp.var("version"), expression=exp.Literal.number(
                              version)))
        cursor = self._cursor()
        described = cursor.execute(exp.select("*").from_(source).limit(0).sql("duckdb"))
        types = {d[0]: str(d[1]) for d in described.description or ()}
        query = exp.select(*(_projection(name, action, types[name])
                             for name, action in policy.columns(list(types)))).from_(source)
        for column, facilities in policy.row_filter(list(types)):
            query = query.where(exp.column(column, quoted=True).isin(
                *(exp.Literal.string(f) for f in facilities)))
        return cursor.execute(query.sql("duckdb")).to_arrow_table()


def _projection(name: str, action: str, type_name: str) -> exp.Expression:
    column = exp.column(name, quoted=True)
    if action == "show":
        return column
    masked = exp.Literal.string(MASK_TEXT) if type_name in _TEXT_TYPES else exp.Null()
    return exp.alias_(exp.cast(masked, exp.DataType.build(type_name, dialect="duckdb")),
                      name, quoted=True)
