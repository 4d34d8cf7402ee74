"""The `DeltaLake` Dagster resource: assets write, read and merge lake tables by name.

    result = lake.write(df, table="bronze/adt_events/messages", mode="overwrite",
                        replace_where={"_arrival_date": day}, app_txn=("adt_events/messages", 42))
    return MaterializeResult(metadata=result.as_metadata())

A table name is its asset key path: `bronze/<feed>/<table>`, `silver/<table>`,
`gold/<projection>`, `quarantine/<feed>/<table>`, `_lake/ingested_files`, stored under the lake
root (`$LAKE_ROOT`, default `./.lake`, or `s3://bucket/prefix`). Root, storage options and the
Spark session are resolved when a method is called, never at import or definitions load.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

import pyarrow as pa
from dagster import AssetKey, ConfigurableResource
from dagster_deltalake import S3Config
from pydantic import Field
from pyspark.sql import Column, DataFrame

from resources.delta import maintenance, tables
from resources.delta.changes import Scd2
from resources.delta.commit import CommitPlan
from resources.delta.files import DataFile
from resources.delta.merge import SMALL_TABLE_BYTES, MergeResult, merge_into
from resources.delta.predicate import PredicateSpec
from resources.delta.snapshot import open_table, table_exists
from resources.delta.storage import root_for, storage_options, table_uri
from resources.delta.tables import TableRef, WriteResult
from resources.spark import SparkResource

TableName = str | Sequence[str] | AssetKey


class DeltaLake(ConfigurableResource):
    """Delta tables of the lake, written and read through Spark and delta-rs."""

    root: str | None = Field(
        default=None, description="Local path or s3://bucket/prefix; default $LAKE_ROOT."
    )
    bronze_root: str | None = Field(
        default=None,
        description="Root of bronze and quarantine (raw PHI); default $LAKE_BRONZE_ROOT or root.",
    )
    s3: S3Config | None = Field(
        default=None, description="S3 options; default AWS_* and LAKE_S3_ENDPOINT from the env."
    )
    spark: SparkResource = Field(default_factory=SparkResource)

    def ref(self, table: TableName) -> TableRef:
        """The location and storage options of `table`."""
        parts = table.path if isinstance(table, AssetKey) else table
        name = parts if isinstance(parts, str) else "/".join(parts)
        uri = table_uri(parts, root=root_for(parts, lake=self.root, raw=self.bronze_root))
        return TableRef(name=name, uri=uri, options=storage_options(uri, config=self.s3))

    def write(
        self,
        df: DataFrame,
        *,
        table: TableName,
        mode: Literal["append", "overwrite"] = "append",
        replace_where: PredicateSpec = None,
        partition_by: Sequence[str] | None = None,
        evolve_schema: bool = False,
        app_txn: tuple[str, int] | None = None,
    ) -> WriteResult:
        """Write `df` in one commit; see `tables.write`. Returns the version and counts."""
        return tables.write(df, self.ref(table), mode=mode, replace_where=replace_where,
                            partition_by=partition_by, evolve_schema=evolve_schema,
                            app_txn=app_txn)

    def plan_files(
        self,
        table: TableName,
        schema: pa.Schema,
        *,
        mode: Literal["append", "overwrite"] = "append",
        replace_where: PredicateSpec = None,
        partition_by: Sequence[str] | None = None,
        app_txn: tuple[str, int] | None = None,
    ) -> CommitPlan:
        """Plan a write whose Spark tasks write their own files; see `tables.plan_files`."""
        return tables.plan_files(self.ref(table), schema, mode=mode, replace_where=replace_where,
                                 partition_by=partition_by, app_txn=app_txn)

    def commit_files(self, plan: CommitPlan, files: Sequence[DataFile]) -> WriteResult:
        """Commit files written for `plan` in one transaction; see `tables.commit_files`."""
        return tables.commit_files(plan, files)

    def read(
        self,
        table: TableName,
        *,
        version: int | None = None,
        as_of: dt.datetime | str | None = None,
    ) -> DataFrame:
        """The table as a DataFrame pinned to a version (latest by default) or a time."""
        return tables.read(self.spark.session, self.ref(table), version=version, as_of=as_of)

    def merge(
        self,
        source: DataFrame,
        *,
        table: TableName,
        keys: Sequence[str],
        sequence_by: str,
        delete_when: Column | str | None = None,
        scd2: Scd2 | None = None,
        drop_columns: Sequence[str] = (),
        partition_by: Sequence[str] | None = None,
        evolve_schema: bool = False,
        rewrite_below_bytes: int = SMALL_TABLE_BYTES,
    ) -> MergeResult:
        """Upsert `source` by `keys`, latest `sequence_by` winning; see `merge.merge_into`."""
        return merge_into(source, self.ref(table), keys=keys, sequence_by=sequence_by,
                          delete_when=delete_when, scd2=scd2, drop_columns=drop_columns,
                          partition_by=partition_by, evolve_schema=evolve_schema,
                          rewrite_below_bytes=rewrite_below_bytes)

    def exists(self, table: TableName) -> bool:
        """Whether `table` is a Delta table yet."""
        ref = self.ref(table)
        return table_exists(ref.uri, options=ref.options)

    def version(self, table: TableName) -> int:
        """The latest version of `table`; raises NotADeltaTableError if it does not exist."""
        ref = self.ref(table)
        return open_table(ref.uri, options=ref.options, table=ref.name).version()

    def optimize(self, table: TableName, *, zorder_by: Sequence[str] | None = None,
                 where: PredicateSpec = None) -> dict[str, Any]:
        """Compact `table`, Z-ordered by `zorder_by` if given; returns delta-rs metrics."""
        return maintenance.optimize(self.ref(table), zorder_by=zorder_by, where=where)

    def vacuum(self, table: TableName, *,
               retention_hours: int = maintenance.RETENTION_FLOOR_HOURS) -> list[str]:
        """Delete unreferenced files older than the retention (>= 7 days); returns them."""
        return maintenance.vacuum(self.ref(table), retention_hours=retention_hours)

    def history(self, table: TableName, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The commits of `table`, newest first."""
        return maintenance.history(self.ref(table), limit=limit)

    def checkpoint(self, table: TableName) -> int:
        """Checkpoint `table` at its latest version; returns that version."""
        return maintenance.checkpoint(self.ref(table))
