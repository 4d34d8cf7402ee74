"""What a bronze batch did, as materialization metadata and as manifest rows."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from lake_assets.catalog.models import Feed
from lake_assets.checks import CheckTally
from lake_assets.factory.specs import bronze_key
from lake_assets.storage.delta import WriteResult
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
        self, feed: Feed, *, seconds: float, attempt: int = 1
    ) -> Iterator[dg.MaterializeResult]:
        """One MaterializeResult per table of the feed; `attempt` > 1 for a retried batch."""
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
                    "schema_drift_archives": sum(
                        table.name in json.loads(a.get("schema_drift") or "{}")
                        for a in self.archives),
                    "bytes": size,
                    "duration_s": round(seconds, 2),
                    "rows_per_s": round(rows / seconds, 1) if seconds else 0.0,
                    "data_files_per_s": round(members / seconds, 1) if seconds else 0.0,
                    "delta_version": bronze.version,
                    "table_uri": dg.MetadataValue.path(bronze.uri),
                    "dagster/row_count": rows,
                    "attempt": attempt,
                    "retried_archives": len(self.archives) if attempt > 1 else 0,
                },
            )


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
