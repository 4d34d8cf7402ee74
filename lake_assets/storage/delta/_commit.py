"""Driver side of a write: commit the files executors wrote as one Delta transaction.

A commit appends, replaces a slice (replaceWhere) or the whole table, or swaps an explicit set
of files (merge, compaction). It carries an app transaction when asked, so a retried batch is
skipped instead of appended twice. A conflicting concurrent commit makes a slice replacement
re-plan on the new snapshot; an explicit swap fails with DeltaConflictError. Files that will
never be committed are deleted; files a commit may reference are never touched.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, Schema
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    RemoveAction,
    Transaction,
    create_table_with_add_actions,
)

from lake_assets.errors import DeltaConflictError, DeltaSchemaError, DeltaStorageError
from lake_assets.storage.delta._files import DataFile, WriteSpec, write_batches
from lake_assets.storage.delta._locations import data_filesystem, join_path
from lake_assets.storage.delta._predicate import Term, arrow_mask
from lake_assets.storage.delta._reader import ReadSpec, read_files
from lake_assets.storage.delta._schema import reconcile
from lake_assets.storage.delta._snapshot import (
    FileEntry,
    all_match,
    arrow_schema,
    list_files,
    may_match,
    open_table,
    partition_string,
    table_exists,
)

WRITE_ID_KEY = "lake.writeId"


@dataclass(frozen=True)
class CommitPlan:
    """How to commit one write; built on the driver before the Spark job runs."""

    spec: WriteSpec
    write_id: str
    mode: Literal["append", "overwrite"] = "append"
    evolve: bool = False
    app_txn: tuple[str, int] | None = None
    remove_paths: tuple[str, ...] | None = None
    read_version: int | None = None
    operation: str = "WRITE"
    data_change: bool = True
    max_attempts: int = 5


def commit(plan: CommitPlan, files: Sequence[DataFile]) -> int | None:
    """Commit `files`; returns the new table version, or None if the app transaction was done.

    Raises DeltaConflictError when concurrent commits keep conflicting, DeltaSchemaError or
    DeltaPredicateError for invalid input; the written files are deleted in all these cases.
    """
    try:
        if not table_exists(plan.spec.uri, options=plan.spec.options):
            created = _create(plan, files)
            if created is not None:
                return created
        for attempt in range(plan.max_attempts):
            version = _attempt(plan, files)
            if version != -1:
                return version
            time.sleep(0.05 * (attempt + 1))
    except (DeltaStorageError, CommitFailedError):
        discard(plan.spec, [f.path for f in files])
        raise
    discard(plan.spec, [f.path for f in files])
    raise DeltaConflictError(
        f"table {plan.spec.table}: concurrent commits conflicted {plan.max_attempts} times"
    )


def _create(plan: CommitPlan, files: Sequence[DataFile]) -> int | None:
    spec = plan.spec
    try:
        create_table_with_add_actions(
            spec.uri,
            Schema.from_arrow(spec.schema),
            [_add(f, plan) for f in files],
            mode="error",
            partition_by=list(spec.partition_by) or None,
            storage_options=spec.options or None,
            commit_properties=_properties(plan, files),
        )
    except DeltaError as exc:
        if "already exists" in str(exc):
            return None  # a concurrent writer created it first: commit into it
        raise
    return 0


def _attempt(plan: CommitPlan, files: Sequence[DataFile]) -> int | None:
    """One commit try: the version, None if already applied, -1 to retry on a new snapshot."""
    spec = plan.spec
    delta = open_table(spec.uri, options=spec.options, table=spec.table, version=plan.read_version)
    if plan.app_txn:
        done = delta.transaction_version(plan.app_txn[0])
        if done is not None and done >= plan.app_txn[1]:
            discard(spec, [f.path for f in files])
            return None
    schema = _evolve(delta, plan)
    removes, rewritten = _removals(delta, plan, schema)
    actions = [*(_add(f, plan) for f in [*files, *rewritten]), *removes]
    try:
        delta.create_write_transaction(
            actions,
            "append",
            schema,
            partition_by=list(spec.partition_by) or None,
            commit_properties=_properties(plan, files),
        )
    except CommitFailedError as exc:
        discard(spec, [f.path for f in rewritten])
        if plan.remove_paths is not None:
            raise DeltaConflictError(
                f"table {spec.table}: a concurrent commit changed files this {plan.operation}"
                f" read at version {plan.read_version}; rerun it ({exc})"
            ) from exc
        return -1
    delta.update_incremental()
    entry = find_commit(delta, plan.write_id)
    return delta.version() if entry is None else int(entry["version"])


def _evolve(delta: DeltaTable, plan: CommitPlan) -> pa.Schema:
    spec = plan.spec
    schema, added = reconcile(arrow_schema(delta), spec.schema, table=spec.table,
                              evolve=plan.evolve)
    if added:
        fields = Schema.from_arrow(pa.schema(added)).fields
        try:
            delta.alter.add_columns(fields)
        except DeltaError as exc:
            delta.update_incremental()
            if any(arrow_schema(delta).get_field_index(f.name) < 0 for f in added):
                raise DeltaSchemaError(f"table {spec.table}: cannot add columns: {exc}") from exc
    return schema


def _removals(
    delta: DeltaTable, plan: CommitPlan, schema: pa.Schema
) -> tuple[list[RemoveAction], list[DataFile]]:
    """Files this commit removes, and files it wrote to keep rows outside a replaced slice."""
    if plan.remove_paths is not None:
        wanted = set(plan.remove_paths)
        entries = [e for e in list_files(delta) if e.path in wanted]
        missing = wanted - {e.path for e in entries}
        if missing:
            raise DeltaConflictError(
                f"table {plan.spec.table}: {len(missing)} files to replace are no longer in"
                f" version {delta.version()}; rerun the {plan.operation}"
            )
        return [_remove(e, plan) for e in entries], []
    if plan.mode == "append":
        return [], []
    terms = plan.spec.slice_terms
    removes: list[RemoveAction] = []
    kept: list[DataFile] = []
    for entry in list_files(delta):
        if not may_match(entry, terms):
            continue
        removes.append(_remove(entry, plan))
        if terms and not all_match(entry, terms):
            kept.extend(_keep_outside(entry, terms, plan.spec, schema))
    return removes, kept


def _keep_outside(
    entry: FileEntry, terms: tuple[Term, ...], spec: WriteSpec, schema: pa.Schema
) -> list[DataFile]:
    """Rewrite the rows of `entry` that fall outside the slice, one row group at a time."""
    read = ReadSpec(uri=spec.uri, table=spec.table, schema=schema, options=spec.options)
    batches = (b.filter(pc.invert(arrow_mask(terms, b))) for b in read_files([entry], read))
    return write_batches(batches, replace(spec, schema=schema, slice_terms=()))


def _add(f: DataFile, plan: CommitPlan) -> AddAction:
    return AddAction(f.path, f.size, f.partition_values, f.modification_time, plan.data_change,
                     f.stats)


def _remove(entry: FileEntry, plan: CommitPlan) -> RemoveAction:
    values = {k: partition_string(v) for k, v in entry.partition_values.items()}
    return RemoveAction(entry.path, plan.data_change, int(time.time() * 1000), entry.size,
                        values)


def _properties(plan: CommitPlan, files: Sequence[DataFile]) -> CommitProperties:
    metadata = {
        WRITE_ID_KEY: plan.write_id,
        "lake.operation": plan.operation,
        "lake.rows": sum(f.num_records for f in files),
        "lake.files": len(files),
    }
    txns = [Transaction(plan.app_txn[0], plan.app_txn[1])] if plan.app_txn else None
    return CommitProperties(custom_metadata=metadata, app_transactions=txns)


def discard(spec: WriteSpec, paths: Sequence[str]) -> None:
    """Delete data files (relative storage paths) that no commit references."""
    fs, root = data_filesystem(spec.uri, spec.options)
    for path in paths:
        try:
            fs.delete_file(join_path(root, path))
        except FileNotFoundError:
            continue


def find_commit(delta: DeltaTable, write_id: str, *, limit: int = 100) -> dict | None:
    """The history entry of the commit tagged `write_id`, among the last `limit` commits."""
    for entry in delta.history(limit):
        if entry.get(WRITE_ID_KEY) == write_id:
            return entry
    return None
