"""Delta Lake tables on delta-rs for Spark: the `delta_rs` data source and table operations.

Executors write Parquet files and the driver commits them in one Delta transaction; reads plan
their files from the Delta log. Everything public is listed in `__all__`; the `_` modules are
internal. No Dagster here, so Spark's Python workers that unpickle the data source stay light.
"""

from lake_assets.storage.delta._changes import Scd2
from lake_assets.storage.delta._commit import CommitPlan, discard
from lake_assets.storage.delta._files import (
    WRITER_KEY,
    DataFile,
    TableWriter,
    WriteSpec,
    align_batch,
    write_batches,
)
from lake_assets.storage.delta._locations import (
    lake_root,
    raw_root,
    root_for,
    storage_options,
    table_uri,
)
from lake_assets.storage.delta._maintenance import (
    RETENTION_FLOOR_HOURS,
    RowCounts,
    TableStats,
    checkpoint,
    count_rows,
    history,
    optimize,
    rows_by_partition,
    table_stats,
    vacuum,
)
from lake_assets.storage.delta._merge import SMALL_TABLE_BYTES, MergeResult, merge_into
from lake_assets.storage.delta._predicate import PredicateSpec
from lake_assets.storage.delta._schema import arrow_to_spark
from lake_assets.storage.delta._snapshot import arrow_schema, open_table, table_exists
from lake_assets.storage.delta._source import FORMAT
from lake_assets.storage.delta._tables import (
    TableRef,
    WriteResult,
    commit_files,
    plan_files,
    read,
    register,
    write,
)

__all__ = [
    "FORMAT",
    "RETENTION_FLOOR_HOURS",
    "SMALL_TABLE_BYTES",
    "WRITER_KEY",
    "CommitPlan",
    "DataFile",
    "MergeResult",
    "PredicateSpec",
    "RowCounts",
    "Scd2",
    "TableRef",
    "TableStats",
    "TableWriter",
    "WriteResult",
    "WriteSpec",
    "align_batch",
    "arrow_schema",
    "arrow_to_spark",
    "checkpoint",
    "commit_files",
    "count_rows",
    "discard",
    "history",
    "lake_root",
    "merge_into",
    "open_table",
    "optimize",
    "plan_files",
    "raw_root",
    "read",
    "register",
    "root_for",
    "rows_by_partition",
    "storage_options",
    "table_exists",
    "table_stats",
    "table_uri",
    "vacuum",
    "write",
    "write_batches",
]
