"""Silver assets: one per table name, merging a day of bronze arrivals into `silver/<table>`.

A partition is an arrival date. Its run reads that day's rows from the bronze table of every
feed declaring the table, prepares them (`ingest.cdc`: typed, masked, one row per key) and
merges them by the table's CDC mode. Merges keep the newer record whatever the order days run
in, so materializing a partition again leaves the table as it was. The day's changes are checked
before they merge (`factory.silver_checks`), and the checks are reported with the run.
"""

import datetime as dt
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import reduce

import dagster as dg
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.models import Feed, Table
from lake_assets.catalog.versions import silver_version
from lake_assets.checks import daily_counts, history_window
from lake_assets.checks.rules import CONFLICT_RULE
from lake_assets.factory.automation import DEPENDENTS
from lake_assets.factory.checks import table_check_specs
from lake_assets.factory.report import table_size
from lake_assets.factory.silver_checks import DayChecks, check_changes, day_results
from lake_assets.factory.specs import freshness_policy, owner_tags, provenance
from lake_assets.ingest.cdc import (
    ARRIVAL,
    DELETED,
    LINEAGE,
    SCD2_COLUMNS,
    SEQUENCE,
    delete_keys,
    drop_deleted,
    latest,
    merge_keys,
    merge_sequence,
    tombstones,
    typed_changes,
    with_deletes,
)
from lake_assets.ingest.mask import HMAC_SECRET, masked_type
from lake_assets.resources import DeltaLake
from lake_assets.storage.delta import Scd2
from lake_assets.storage.lake import Lake
from lake_assets.storage.secrets import get_secret


@dataclass(frozen=True)
class SilverSource:
    """A silver table and the feeds whose bronze tables fill it."""

    table: Table
    feeds: tuple[Feed, ...]
    files: tuple[str, ...]

    @property
    def name(self) -> str:
        """The table name, shared by every feed declaring it."""
        return self.table.name


def silver_key(name: str) -> dg.AssetKey:
    """`silver/<table>`."""
    return dg.AssetKey(["silver", name])


def deletes_table(name: str) -> str:
    """Where the delete events of `silver/<name>` are kept, to outlast late records."""
    return f"_lake/deletes/{name}"


def silver_sources(catalog: Catalog) -> list[SilverSource]:
    """One source per table name, in catalog order. `load_catalog` has already judged that
    the tables can be merged once masked (`catalog.table_rules`)."""
    grouped: dict[str, list[tuple[Feed, Table]]] = {}
    for feed in catalog.feeds:
        for table in feed.tables:
            grouped.setdefault(table.name, []).append((feed, table))
    return [
        SilverSource(pairs[0][1], tuple(f for f, _ in pairs),
                     tuple(catalog.file_of("feed", f.name) for f, _ in pairs))
        for pairs in grouped.values()
    ]


def build_silver_assets(catalog: Catalog, daily: dg.DailyPartitionsDefinition
                        ) -> list[dg.AssetsDefinition]:
    """A silver asset per table name, partitioned by `daily`, fed by its bronze assets."""
    return [_build(source, daily) for source in silver_sources(catalog)]


@dataclass(frozen=True)
class SilverDay:
    """What a day's run did (materialization metadata) and what its checks found."""

    metadata: dict[str, object]
    checks: DayChecks


def _build(source: SilverSource, daily: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    key = silver_key(source.name)

    @dg.asset(
        key=key,
        deps=[dg.AssetDep(["bronze", f.name, source.name], partition_mapping=_mapping(f))
              for f in source.feeds],
        partitions_def=daily,
        group_name="silver",
        description=_description(source),
        owners=owner_tags(tuple(dict.fromkeys(t for f in source.feeds for t in f.owners))),
        kinds={"spark", "delta"},
        code_version=silver_version(source.table, source.feeds),
        automation_condition=DEPENDENTS,
        freshness_policy=freshness_policy(max(
            (f.freshness for f in source.feeds), key=lambda x: x.fail_after)),
        pool=f"silver_{source.name}",
        check_specs=table_check_specs(key, source.table, daily, layer="silver"),
        tags={"lake/layer": "silver", "lake/table": source.name},
        metadata={
            "dagster/column_schema": silver_schema_metadata(source.table),
            "dagster/table_name": f"silver.{source.name}",
            "lake/metadata_file": ", ".join(source.files),
            "lake/keys": ", ".join(merge_keys(source.table)),
            "lake/cdc": source.table.cdc,
        },
    )
    def _silver(
        context: dg.AssetExecutionContext, lake: DeltaLake
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        day = update_silver(lake.open(), source, date=context.partition_key)
        context.log.info(f"silver.{source.name} from arrivals of {context.partition_key}: "
                         f"{day.metadata}")
        if not day.checks.failed:
            size = table_size(lake.open(), key.path, where=None,
                              code_version=silver_version(source.table, source.feeds))
            yield dg.MaterializeResult(
                metadata=day.metadata | {"check_failing_rows": day.checks.failing_rows}
                | (size.as_metadata() if size else {}))
        yield from day_results(key, source.table, day.checks,
                               day=dt.date.fromisoformat(context.partition_key))
        if day.checks.failed:
            raise dg.Failure(
                description=f"silver.{source.name}: rows of {context.partition_key} break "
                f"{', '.join(day.checks.failed)}, whose action is fail; nothing was merged. "
                "Fix the source data or the rule in metadata, then re-run the partition.",
                metadata={name: day.checks.tally.failing[name] for name in day.checks.failed},
            )

    return _silver


def update_silver(lake: Lake, source: SilverSource, *, date: str) -> SilverDay:
    """Check the bronze rows that arrived on `date`, then merge them into `silver/<table>`,
    unless a rule whose action is `fail` broke (`SilverDay.checks.failed`).

    Returns materialization metadata (rows read, changes, deletes, the merge's version and
    files) and the checks' findings. Raises SecretNotFoundError without the HMAC key,
    DeltaStorageError from storage.
    """
    table = source.table
    day = dt.date.fromisoformat(date)
    row_count = table.checks.row_count
    first = history_window(row_count, day)[0] if row_count else day
    bronze = _arrivals(lake, source, first=first, last=day)
    if bronze is None:
        return SilverDay({"rows_read": 0, "note": "no bronze table holds this table yet"},
                         DayChecks())
    counts = _daily_counts(lake, bronze, first=first, last=day) if row_count else {}
    arrived = bronze.rows.where(F.col(ARRIVAL) == F.lit(day))
    typed = typed_changes(arrived, table, key=get_secret(HMAC_SECRET), reference_year=day.year)
    cached = [typed.persist(StorageLevel.MEMORY_AND_DISK)]
    changes = latest(typed, table)
    cached.append(changes.persist(StorageLevel.MEMORY_AND_DISK))
    try:
        totals = changes.agg(F.count(F.lit(1)), F.sum(F.col(DELETED).cast("int"))).first()
        rows, deletes = (totals[0], totals[1] or 0) if totals else (0, 0)
        found: dict[str, object] = {"changes": rows, "deletes": deletes}
        checks = check_changes(lake, table, changes, counts=counts, typed=typed)
        if rows == 0 or checks.failed:
            return SilverDay(found, checks)
        if checks.held_back is not None:
            # on_conflict: quarantine_both. The records stay in bronze; the check names them.
            kept = typed.join(checks.held_back, on=list(checks.held_back.columns),
                              how="left_anti")
            changes = latest(kept, table)
            found["held_back_conflicts"] = checks.tally.failing.get(CONFLICT_RULE, 0)
        result = _merge(lake, table, changes, new_deletes=deletes > 0)
        return SilverDay(found | result, checks)
    finally:
        for frame in cached:
            frame.unpersist()


def _merge(lake: Lake, table: Table, changes: DataFrame, *, new_deletes: bool
           ) -> dict[str, object]:
    """Merge `changes` into `silver/<table>` by its CDC mode; returns the merge's metadata."""
    if table.deletes is not None:
        changes = _keep_deletes(lake, changes, table, new_deletes=new_deletes)
    result = lake.merge(
        changes, table=silver_key(table.name).path, keys=merge_keys(table),
        sequence_by=merge_sequence(table), delete_when=F.col(DELETED),
        drop_columns=[DELETED], scd2=Scd2() if table.cdc == "scd2" else None,
    )
    return result.as_metadata()


@dataclass(frozen=True)
class _Bronze:
    """The rows that arrived in a window, and the bronze table versions they were read at."""

    rows: DataFrame
    versions: dict[tuple[str, ...], int]


def _arrivals(lake: Lake, source: SilverSource, *, first: dt.date, last: dt.date
              ) -> _Bronze | None:
    """The rows that arrived from `first` to `last` in every existing bronze table of the
    source."""
    paths = [("bronze", f.name, source.name) for f in source.feeds]
    versions = {path: lake.version(path) for path in paths if lake.exists(path)}
    if not versions:
        return None
    frames = [lake.read(path, version=version) for path, version in versions.items()]
    # Column functions need the session that lake.read started; build them only now.
    days = F.col(ARRIVAL).between(F.lit(first), F.lit(last))
    frames = [frame.where(days) for frame in frames]
    rows = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
    return _Bronze(rows, versions)


def _daily_counts(lake: Lake, bronze: _Bronze, *, first: dt.date, last: dt.date
                  ) -> dict[dt.date, int]:
    """Bronze rows per arrival date from `first` to `last`, days without rows absent.

    Bronze is partitioned by arrival date, so the files' statistics at the versions read
    answer without a Spark job; a table they cannot answer for is counted by Spark.
    """
    counts: dict[dt.date, int] = {}
    for path, version in bronze.versions.items():
        rows = lake.rows_by_partition(path, column=ARRIVAL, version=version)
        if rows is None:
            return daily_counts(bronze.rows, date_column=ARRIVAL, first=first, last=last)
        for day, count in rows.items():
            if day is not None and first <= day <= last:
                counts[day] = counts.get(day, 0) + count
    return {day: count for day, count in counts.items() if count}


def _keep_deletes(lake: Lake, changes: DataFrame, table: Table, *,
                  new_deletes: bool) -> DataFrame:
    """Store this batch's delete events, then apply every stored one to `changes`."""
    path = deletes_table(table.name)
    if new_deletes:
        keys = delete_keys(table)
        lake.merge(tombstones(changes, table), table=path, keys=keys, sequence_by=keys[-1])
    if not lake.exists(path):
        return changes
    stored = lake.read(path)
    if table.cdc == "scd2":
        return with_deletes(changes, stored, table)
    return drop_deleted(changes, stored, table)


def _mapping(feed: Feed) -> dg.PartitionMapping | None:
    if feed.partitions != ("date", "facility"):
        return None
    with warnings.catch_warnings():  # beta in 1.13; the documented way to map to one dimension
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="date")


def silver_schema_metadata(table: Table) -> dg.TableSchema:
    """Declared columns with their masked types and PHI tags, lineage, then merge columns."""
    columns = []
    for c in table.columns:
        columns.append(dg.TableColumn(c.name, masked_type(c), c.description or None,
                                      tags={"phi": c.phi} if c.phi else None))
        if c.precision_column is not None:
            columns.append(dg.TableColumn(c.precision_column, "string",
                                          f"precision {c.name} was sent with"))
    columns += [dg.TableColumn(name, kind.simpleString()) for name, kind in LINEAGE]
    if table.cdc == "scd1":
        columns.append(dg.TableColumn(SEQUENCE, "struct", "ordering of the current record"))
    if table.cdc == "scd2":
        columns += [dg.TableColumn(name, "history") for name in SCD2_COLUMNS]
    return dg.TableSchema(columns=columns)


def _description(source: SilverSource) -> str:
    feeds = ", ".join(f"`{f.name}`" for f in source.feeds)
    mode = {"append": "appended once per key", "scd1": "current state per key (SCD1)",
            "scd2": "full history per key (SCD2)"}[source.table.cdc]
    return (f"{source.table.description.strip()}\n\nTyped, PHI-masked `{source.name}` from "
            f"feeds {feeds}: {mode}."
            + provenance(silver_version(source.table, source.feeds), *source.files))
