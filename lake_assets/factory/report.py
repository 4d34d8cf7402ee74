"""What a bronze batch did, as materialization metadata and as manifest rows."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from lake_assets.catalog.models import Feed
from lake_assets.checks import CheckTally
from lake_assets.factory.specs import bronze_key
from lake_assets.storage.delta import PredicateSpec, WriteResult
from lake_assets.storage.lake import Lake
from lake_assets.storage.manifest import ManifestRow


@dataclass
class BatchReport:
    """Writes per (layer, table), one summary per archive, and bad rows by (table, reason)."""

    ingested_at: datetime
    writes: dict[tuple[str, str], WriteResult] = field(default_factory=dict)
    archives: list[dict[str, Any]] = field(default_factory=list)
    bad_reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    checks: dict[str, CheckTally] = field(default_factory=dict)
    failed_rules: dict[str, set[str]] = field(default_factory=dict)

    def results(
        self, feed: Feed, *, seconds: float, attempt: int = 1,
        sizes: Mapping[str, TableSize | None] | None = None,
    ) -> Iterator[dg.MaterializeResult]:
        """One MaterializeResult per table of the feed; `attempt` > 1 for a retried batch.
        `sizes` gives each table's rows in the run's partitions and overall, and its schema
        version: the row count the UI shows is the partition's, not the batch's."""
        quarantined = Counter(a["reason"] for a in self.archives if a["status"] == "quarantined")
        members = sum(a["members"] or 0 for a in self.archives)
        size = sum(a["size"] or 0 for a in self.archives)
        skipped = Counter(m["reason"] for a in self.archives
                          for m in json.loads(a.get("skipped_members") or "[]"))
        for table in feed.tables:
            bronze = self.writes[("bronze", table.name)]
            rows = sum(json.loads(a["rows_by_table"]).get(table.name, 0) for a in self.archives)
            bad = {r: n for (t, r), n in self.bad_reasons.items() if t == table.name}
            yield dg.MaterializeResult(
                asset_key=bronze_key(feed, table),
                metadata={
                    "archives": len(self.archives),
                    "data_files": members,
                    "rows": rows,
                    "quarantined_archives": sum(quarantined.values()),
                    "quarantined_archives_by_reason": dict(quarantined),
                    "quarantined_rows": sum(bad.values()),
                    "quarantined_rows_by_reason": bad,
                    "quarantined_members": sum(a.get("members_quarantined") or 0
                                               for a in self.archives),
                    "skipped_members": sum(skipped.values()),
                    "skipped_members_by_reason": dict(skipped),
                    "resent_archives": sum(a["status"] == "resent" for a in self.archives),
                    "archives_not_loaded": _not_loaded(self.archives),
                    "schema_drift_archives": sum(
                        table.name in json.loads(a.get("schema_drift") or "{}")
                        for a in self.archives),
                    "bytes": size,
                    "duration_s": round(seconds, 2),
                    "rows_per_s": round(rows / seconds, 1) if seconds else 0.0,
                    "data_files_per_s": round(members / seconds, 1) if seconds else 0.0,
                    "delta_version": bronze.version,
                    "table_uri": dg.MetadataValue.path(bronze.uri),
                    "batch_rows": rows,
                    **_size_metadata((sizes or {}).get(table.name), rows),
                    "attempt": attempt,
                    "retried_archives": len(self.archives) if attempt > 1 else 0,
                },
            )


@dataclass(frozen=True)
class TableSize:
    """A table's rows in the run's partitions and in all, from Delta file statistics (None when
    the statistics cannot tell), and the schema version the write left it at."""

    partition_rows: int | None
    table_rows: int | None
    schema_version: int

    def as_metadata(self) -> dict[str, Any]:
        """`dagster/row_count` (the partition's rows), `table_rows` and `schema_version`."""
        found: dict[str, Any] = {"schema_version": self.schema_version}
        if self.partition_rows is not None:
            found["dagster/row_count"] = self.partition_rows
        if self.table_rows is not None:
            found["table_rows"] = self.table_rows
        return found


def table_size(lake: Lake, table: Sequence[str], *, where: PredicateSpec,
               code_version: str | None) -> TableSize | None:
    """The size of `table` after a write (in the partitions `where` selects, or in all when
    None), and its schema version, recorded if new; None for a table not written yet."""
    if not lake.exists(table):
        return None
    counted = lake.count_rows(table, where)
    recorded = lake.record_schema(table, code_version=code_version, counted=counted)
    return TableSize(partition_rows=counted.matching, table_rows=counted.total,
                     schema_version=recorded.schema_version)


# At most this many rows in an asset's table of archives that were not loaded.
NOT_LOADED_ROWS = 50
_NOT_LOADED = dg.TableSchema(columns=[
    dg.TableColumn("archive", "string"), dg.TableColumn("facility", "string"),
    dg.TableColumn("status", "string", description="quarantined or resent"),
    dg.TableColumn("reason", "string"), dg.TableColumn("resent_of", "string")])


def _not_loaded(archives: list[dict[str, Any]]) -> dg.TableMetadataValue:
    """The batch's quarantined and re-sent archives with their reasons (no row values)."""
    rows = [dg.TableRecord({"archive": a["path"], "facility": a["facility"] or "",
                            "status": a["status"], "reason": a["reason"] or "",
                            "resent_of": a.get("resent_of") or ""})
            for a in archives if a["status"] in ("quarantined", "resent")]
    return dg.MetadataValue.table(rows[:NOT_LOADED_ROWS], schema=_NOT_LOADED)


def _size_metadata(size: TableSize | None, batch_rows: int) -> dict[str, Any]:
    return size.as_metadata() if size is not None else {"dagster/row_count": batch_rows}


def manifest_rows(
    feed: Feed, batch_id: str, archives: list[dict[str, Any]], *, ingested_at: datetime,
    attempts: int = 1,
) -> list[ManifestRow]:
    """Manifest rows for a batch's archive summaries; `committed_at` is now, after the data;
    `attempts` is the number of runs the batch took."""
    committed_at = datetime.now(UTC)
    return [
        ManifestRow(
            path=a["path"],
            size=a["size"],
            sha256=a["sha256"],
            feed=feed.name,
            facility=a["facility"],
            arrival_date=a["arrival_date"],
            batch_id=batch_id,
            status=a["status"],
            rows=a["rows"],
            bad_rows=a["bad_rows"],
            rows_by_table=a["rows_by_table"],
            reason=a["reason"],
            message=a["message"],
            ingested_at=ingested_at,
            committed_at=committed_at,
            members_loaded=a.get("members_loaded"),
            members_skipped=a.get("members_skipped"),
            skipped_members=a.get("skipped_members"),
            members_quarantined=a.get("members_quarantined"),
            schema_drift=a.get("schema_drift"),
            resent_of=a.get("resent_of"),
            attempts=attempts,
        )
        for a in archives
    ]
