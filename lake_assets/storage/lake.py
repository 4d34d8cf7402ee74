"""`Lake`: the lake's Delta tables by name, written, read and merged through Spark and delta-rs.

    lake = Lake()  # $LAKE_ROOT, $LAKE_BRONZE_ROOT and S3 settings from the environment
    result = lake.write(df, table="bronze/adt_events/messages", mode="overwrite",
                        replace_where={"_arrival_date": day})
    visits = lake.read("silver/visits", version=3)

A table name is its asset key path: `bronze/<feed>/<table>`, `silver/<table>`,
`gold/<projection>`, `quarantine/<feed>/<table>`, `_lake/...`. Roots, storage options and the
Spark session are resolved when a method is called, never when a `Lake` is made.

A sandbox's lake reads another lake's silver and gold read-only (`Upstream`, or the pins file
named by `$LAKE_UPSTREAM`): a table the sandbox has not written reads from the other lake at
its pinned version. Every write goes to the sandbox's own root.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, overload

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession

from lake_assets.errors import SandboxError
from lake_assets.storage import delta
from lake_assets.storage.manifest import MANIFEST_TABLE, Manifest
from lake_assets.storage.schema_history import SCHEMA_HISTORY_TABLE, SchemaHistory, SchemaVersion
from lake_assets.storage.spark import build_session

TableName = str | Sequence[str]
UPSTREAM_VARIABLE = "LAKE_UPSTREAM"


@dataclass(frozen=True)
class Upstream:
    """Tables of another lake read read-only: its `root` and each table's pinned version."""

    root: str
    versions: Mapping[str, int]
    s3: Mapping[str, str] | None = None

    @classmethod
    def load(cls, path: str) -> Upstream:
        """The pins file a sandbox wrote; raises SandboxError if it cannot be read."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(root=data["root"], versions=dict(data["versions"]))
        except (OSError, ValueError, KeyError) as exc:
            raise SandboxError(f"${UPSTREAM_VARIABLE}: cannot read pins file {path}: {exc}"
                               ) from exc

    def ref(self, table: str) -> delta.TableRef:
        """Where `table` lives in the other lake."""
        uri = delta.table_uri(table, root=delta.lake_root(root=self.root))
        return delta.TableRef(name=table, uri=uri,
                              options=delta.storage_options(uri, s3=self.s3))


def _name(table: TableName) -> str:
    return table if isinstance(table, str) else "/".join(table)


@dataclass(frozen=True)
class Lake:
    """The lake's tables under `root` (raw layers under `bronze_root` when set).

    `s3` holds delta-rs storage options for `s3://` roots (default: from the environment);
    `session` builds the Spark session on first use (default: `build_session()`).
    """

    root: str | None = None
    bronze_root: str | None = None
    s3: Mapping[str, str] | None = None
    session_factory: Callable[[], SparkSession] = field(
        default=build_session, repr=False, compare=False)
    upstream: Upstream | None = None

    @cached_property
    def _upstream(self) -> Upstream | None:
        if self.upstream is not None:
            return self.upstream
        pins = os.environ.get(UPSTREAM_VARIABLE)
        return Upstream.load(pins) if pins else None

    def _pinned(self, table: TableName) -> tuple[Upstream, int] | None:
        """The other lake and pinned version `table` reads from, when this lake lacks it."""
        upstream, name = self._upstream, _name(table)
        if upstream is None or name not in upstream.versions:
            return None
        ref = self.ref(table)
        if delta.table_exists(ref.uri, options=ref.options):
            return None
        return upstream, upstream.versions[name]

    @cached_property
    def session(self) -> SparkSession:
        """The Spark session, built on first use, with the `delta_rs` data source registered."""
        session = self.session_factory()
        delta.register(session)
        return session

    def ref(self, table: TableName) -> delta.TableRef:
        """The location and storage options of `table`."""
        name = _name(table)
        uri = delta.table_uri(table, root=delta.root_for(table, lake=self.root,
                                                          raw=self.bronze_root))
        return delta.TableRef(name=name, uri=uri, options=delta.storage_options(uri, s3=self.s3))

    def manifest(self) -> Manifest:
        """The ingestion manifest of this lake."""
        ref = self.ref(MANIFEST_TABLE)
        return Manifest(ref.uri, ref.options or None)

    def schema_history(self) -> SchemaHistory:
        """The schema history of this lake's tables."""
        ref = self.ref(SCHEMA_HISTORY_TABLE)
        return SchemaHistory(ref.uri, ref.options or None)

    def record_schema(self, table: TableName, *, code_version: str | None,
                      counted: delta.RowCounts | None = None) -> SchemaVersion:
        """Record `table`'s current schema in the history; returns its schema version.
        `counted` (from `count_rows`) spares opening the table again."""
        ref = self.ref(table)
        if counted is None:
            opened = delta.open_table(ref.uri, options=ref.options, table=ref.name)
            latest, current = opened.version(), opened.schema().to_json()
        else:
            latest, current = counted.version, counted.schema_json

        def schema_at(version: int) -> str:
            if version == latest:
                return current
            return delta.open_table(ref.uri, options=ref.options, table=ref.name,
                                    version=version).schema().to_json()

        return self.schema_history().record(ref.name, latest=latest, schema_at=schema_at,
                                            code_version=code_version)

    def stats(self, table: TableName, *, partition_column: str | None = None) -> delta.TableStats:
        """Files, bytes, rows and versions of `table`'s latest version (per partition value of
        `partition_column` when given)."""
        return delta.table_stats(self.ref(table), partition_column=partition_column)

    def rows_by_partition(self, table: TableName, *, column: str, version: int | None = None
                          ) -> dict[Any, int] | None:
        """Rows of `table` per value of its partition column `column`, from file statistics;
        None when they cannot tell (see `delta.rows_by_partition`)."""
        pinned = self._pinned(table)
        if pinned is not None:
            upstream, pin = pinned
            return delta.rows_by_partition(upstream.ref(_name(table)), column=column,
                                           version=pin if version is None else version)
        return delta.rows_by_partition(self.ref(table), column=column, version=version)

    def count_rows(self, table: TableName, where: delta.PredicateSpec = None) -> delta.RowCounts:
        """Rows of `table`, all and those matching `where`, from one snapshot's statistics."""
        return delta.count_rows(self.ref(table), where)

    @overload
    def write(self, df: DataFrame, *, table: TableName, mode: Literal["append"] = "append",
              partition_by: Sequence[str] | None = None, evolve_schema: bool = False,
              app_txn: tuple[str, int] | None = None) -> delta.WriteResult: ...

    @overload
    def write(self, df: DataFrame, *, table: TableName, mode: Literal["overwrite"],
              replace_where: delta.PredicateSpec = None,
              partition_by: Sequence[str] | None = None, evolve_schema: bool = False,
              app_txn: tuple[str, int] | None = None) -> delta.WriteResult: ...

    def write(self, df: DataFrame, *, table: TableName,
              mode: Literal["append", "overwrite"] = "append",
              replace_where: delta.PredicateSpec = None,
              partition_by: Sequence[str] | None = None, evolve_schema: bool = False,
              app_txn: tuple[str, int] | None = None) -> delta.WriteResult:
        """Write `df` in one commit; see `delta.write`. Returns the version and counts."""
        return delta.write(df, self.ref(table), mode=mode,  # type: ignore[call-overload]
                           replace_where=replace_where, partition_by=partition_by,
                           evolve_schema=evolve_schema, app_txn=app_txn)

    @overload
    def plan_files(self, table: TableName, schema: pa.Schema, *,
                   mode: Literal["append"] = "append",
                   partition_by: Sequence[str] | None = None,
                   app_txn: tuple[str, int] | None = None) -> delta.CommitPlan: ...

    @overload
    def plan_files(self, table: TableName, schema: pa.Schema, *, mode: Literal["overwrite"],
                   replace_where: delta.PredicateSpec = None,
                   partition_by: Sequence[str] | None = None,
                   app_txn: tuple[str, int] | None = None) -> delta.CommitPlan: ...

    def plan_files(self, table: TableName, schema: pa.Schema, *,
                   mode: Literal["append", "overwrite"] = "append",
                   replace_where: delta.PredicateSpec = None,
                   partition_by: Sequence[str] | None = None,
                   app_txn: tuple[str, int] | None = None) -> delta.CommitPlan:
        """Plan a write whose Spark tasks write their own files; see `delta.plan_files`."""
        return delta.plan_files(self.ref(table), schema,  # type: ignore[call-overload]
                                mode=mode, replace_where=replace_where,
                                partition_by=partition_by, app_txn=app_txn)

    def commit_files(self, plan: delta.CommitPlan,
                     files: Sequence[delta.DataFile]) -> delta.WriteResult:
        """Commit files written for `plan` in one transaction; see `delta.commit_files`."""
        return delta.commit_files(plan, files)

    def read(self, table: TableName, *, version: int | None = None,
             as_of: dt.datetime | str | None = None) -> DataFrame:
        """The table as a DataFrame pinned to a version (latest by default) or a time; a table
        of the upstream lake at its pinned version unless one is asked for."""
        pinned = self._pinned(table)
        if pinned is not None:
            upstream, pin = pinned
            return delta.read(self.session, upstream.ref(_name(table)),
                              version=pin if version is None and as_of is None else version,
                              as_of=as_of)
        return delta.read(self.session, self.ref(table), version=version, as_of=as_of)

    def merge(
        self,
        source: DataFrame,
        *,
        table: TableName,
        keys: Sequence[str],
        sequence_by: str,
        delete_when: Column | str | None = None,
        scd2: delta.Scd2 | None = None,
        drop_columns: Sequence[str] = (),
        partition_by: Sequence[str] | None = None,
        evolve_schema: bool = False,
        rewrite_below_bytes: int = delta.SMALL_TABLE_BYTES,
    ) -> delta.MergeResult:
        """Upsert `source` by `keys`, latest `sequence_by` winning; see `delta.merge_into`."""
        return delta.merge_into(source, self.ref(table), keys=keys, sequence_by=sequence_by,
                                delete_when=delete_when, scd2=scd2, drop_columns=drop_columns,
                                partition_by=partition_by, evolve_schema=evolve_schema,
                                rewrite_below_bytes=rewrite_below_bytes)

    def exists(self, table: TableName) -> bool:
        """Whether `table` is a Delta table yet (here, or pinned upstream)."""
        if self._pinned(table) is not None:
            return True
        ref = self.ref(table)
        return delta.table_exists(ref.uri, options=ref.options)

    def version(self, table: TableName) -> int:
        """The latest version of `table` (its pin, if read upstream); raises
        NotADeltaTableError if it does not exist."""
        pinned = self._pinned(table)
        if pinned is not None:
            return pinned[1]
        ref = self.ref(table)
        return delta.open_table(ref.uri, options=ref.options, table=ref.name).version()

    def optimize(self, table: TableName, *, zorder_by: Sequence[str] | None = None,
                 where: delta.PredicateSpec = None) -> dict[str, Any]:
        """Compact `table`, Z-ordered by `zorder_by` if given; returns delta-rs metrics."""
        return delta.optimize(self.ref(table), zorder_by=zorder_by, where=where)

    def vacuum(self, table: TableName, *,
               retention_hours: int = delta.RETENTION_FLOOR_HOURS) -> list[str]:
        """Delete unreferenced files older than the retention (>= 7 days); returns them."""
        return delta.vacuum(self.ref(table), retention_hours=retention_hours)

    def history(self, table: TableName, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The commits of `table`, newest first."""
        return delta.history(self.ref(table), limit=limit)

    def checkpoint(self, table: TableName) -> int:
        """Checkpoint `table` at its latest version; returns that version."""
        return delta.checkpoint(self.ref(table))
