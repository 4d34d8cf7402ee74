"""The ingestion manifest `_lake.ingested_files`: one row per archive, the exactly-once ledger.

Rows are few (one per archive of a batch), so the driver writes them with delta-rs directly. Each
batch's rows commit with the app transaction `manifest/<feed>/<batch>`, so a replayed batch never
records an archive twice. This module owns the table: others go through `Manifest`'s queries,
never its Delta table or column names.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError

MANIFEST_TABLE = "_lake/ingested_files"  # the table's name under the lake root

SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("size", pa.int64()),
        ("sha256", pa.string()),
        ("feed", pa.string()),
        ("facility", pa.string()),
        ("arrival_date", pa.string()),
        ("batch_id", pa.string()),
        ("status", pa.string()),  # loaded | quarantined | failed
        ("rows", pa.int64()),
        ("bad_rows", pa.int64()),
        ("rows_by_table", pa.string()),  # JSON {table: rows}
        ("reason", pa.string()),
        ("message", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
        ("committed_at", pa.timestamp("us", tz="UTC")),
        # Added later, so older manifests lack them: every member accounted for, drift, re-sends.
        ("members_loaded", pa.int64()),  # data files parsed
        ("members_skipped", pa.int64()),  # members that are not data files
        ("skipped_members", pa.string()),  # JSON [{name, reason}]
        ("members_quarantined", pa.int64()),  # data files quarantined whole (`corrupt`)
        ("schema_drift", pa.string()),  # JSON {table: {missing: [..], undeclared: [..]}}
        ("resent_of", pa.string()),  # path of the committed archive with the same SHA-256
    ]
)


@dataclass(frozen=True)
class ManifestRow:
    """What happened to one archive."""

    path: str
    size: int
    sha256: str
    feed: str
    facility: str
    arrival_date: str
    batch_id: str
    status: str
    rows: int
    bad_rows: int
    rows_by_table: str
    reason: str | None
    message: str | None
    ingested_at: object
    committed_at: object
    members_loaded: int | None = None
    members_skipped: int | None = None
    skipped_members: str | None = None
    members_quarantined: int | None = None
    schema_drift: str | None = None
    resent_of: str | None = None


@dataclass(frozen=True)
class Manifest:
    """Reads and appends the manifest Delta table at `uri`."""

    uri: str
    storage_options: dict[str, str] | None = None

    def _table(self) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri, storage_options=self.storage_options)
        except TableNotFoundError:
            return None

    def committed(self, feed: str, batch_id: str) -> bool:
        """Whether the batch's manifest rows are already committed."""
        table = self._table()
        return table is not None and table.transaction_version(_app_id(feed, batch_id)) is not None

    def record(self, feed: str, batch_id: str, rows: Iterable[ManifestRow]) -> bool:
        """Append a batch's rows once; returns False when the batch was already recorded."""
        if self.committed(feed, batch_id):
            return False
        data = pa.Table.from_pylist([asdict(r) for r in rows], schema=SCHEMA)
        write_deltalake(
            self.uri,
            data,
            mode="append",
            partition_by=["feed"],
            schema_mode="merge",  # a manifest written before the latest columns gains them
            storage_options=self.storage_options,
            commit_properties=CommitProperties(
                app_transactions=[Transaction(_app_id(feed, batch_id), 1)]
            ),
        )
        return True

    def replace_slice(
        self, feed: str, date: str, facilities: Sequence[str] | None, rows: Iterable[ManifestRow]
    ) -> None:
        """Replace the manifest rows of one arrival date (and facilities) after a re-run."""
        data = pa.Table.from_pylist([asdict(r) for r in rows], schema=SCHEMA)
        # Values are a validated feed name, an ISO date and facility ids from landing paths.
        predicate = f"feed = '{feed}' AND arrival_date = '{date}'"
        if facilities is not None:
            predicate += f" AND facility IN ({', '.join(repr(str(f)) for f in facilities)})"
        write_deltalake(
            self.uri,
            data,
            mode="overwrite" if self._table() is not None else "append",
            predicate=predicate if self._table() is not None else None,
            partition_by=["feed"],
            schema_mode="merge",
            storage_options=self.storage_options,
        )

    def known(self, feed: str, dates: Iterable[str], paths: Iterable[str]) -> set[str]:
        """The subset of `paths` (of the given arrival dates) the manifest already holds."""
        table = self._table()
        wanted = list(set(paths))
        if table is None or not wanted:
            return set()
        dataset = table.to_pyarrow_dataset()
        condition = (
            (pc.field("feed") == feed)
            & pc.field("arrival_date").isin(sorted(set(dates)))
            & pc.field("path").isin(wanted)
        )
        found = dataset.to_table(columns=["path"], filter=condition)
        return set(found.column("path").to_pylist())

    def deliveries(self, feed: str, *, since: dt.date) -> pa.Table:
        """The feed's deliveries since `since` (arrival date), loaded or quarantined: columns
        `facility` and `committed_at`. Empty when the manifest does not exist yet."""
        table = self._table()
        columns = ["facility", "committed_at"]
        if table is None:
            return SCHEMA.empty_table().select(columns)
        condition = (pc.field("feed") == feed) & (pc.field("arrival_date") >= since.isoformat())
        return table.to_pyarrow_dataset().to_table(columns=columns, filter=condition)

    def digests(self, feed: str, *, since: dt.date,
                replaced: tuple[str, Sequence[str] | None] | None = None) -> dict[str, str]:
        """SHA-256 -> path of the feed's archives recorded with arrival dates from `since`,
        first arrival first, re-sends left out. `replaced` (arrival date, facilities or None for
        all) is a slice about to be replaced, whose archives do not count."""
        table = self._table()
        if table is None:
            return {}
        dataset = table.to_pyarrow_dataset()
        wanted = ["sha256", "path", "arrival_date", "facility", "resent_of"]
        columns = [c for c in wanted if c in dataset.schema.names]
        condition = (pc.field("feed") == feed) & (pc.field("arrival_date") >= since.isoformat())
        rows = _complete(dataset.to_table(columns=columns, filter=condition), wanted)
        found: dict[str, str] = {}
        for row in sorted(rows.to_pylist(), key=lambda r: (r["arrival_date"], r["path"])):
            if not row["sha256"] or row.get("resent_of") or _within(row, replaced):
                continue
            found.setdefault(row["sha256"], row["path"])
        return found

    def batch_archives(self, feed: str, batch_id: str) -> list[str]:
        """The archive paths a batch of the feed recorded, sorted."""
        table = self._table()
        if table is None:
            return []
        condition = (pc.field("feed") == feed) & (pc.field("batch_id") == batch_id)
        found = table.to_pyarrow_dataset().to_table(columns=["path"], filter=condition)
        return sorted(found.column("path").to_pylist())

    def rows(self, feed: str | None = None) -> pa.Table:
        """Every manifest row (of one feed), for reports and tests; columns an older manifest
        lacks are null."""
        table = self._table()
        if table is None:
            return SCHEMA.empty_table()
        condition = pc.field("feed") == feed if feed else None
        return _complete(table.to_pyarrow_dataset().to_table(filter=condition))


def _complete(found: pa.Table, names: Sequence[str] = SCHEMA.names) -> pa.Table:
    """`found` with the columns `names` an older manifest lacks, as nulls."""
    for name in names:
        if name not in found.column_names:
            kind = SCHEMA.field(name).type
            found = found.append_column(pa.field(name, kind), pa.nulls(found.num_rows, kind))
    return found


def _within(row: dict, replaced: tuple[str, Sequence[str] | None] | None) -> bool:
    if replaced is None:
        return False
    date, facilities = replaced
    return row["arrival_date"] == date and (facilities is None or row["facility"] in facilities)


def _app_id(feed: str, batch_id: str) -> str:
    return f"manifest/{feed}/{batch_id}"
