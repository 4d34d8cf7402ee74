"""The ingestion manifest `_lake.ingested_files`: one row per archive, the exactly-once ledger.

Rows are few (one per archive of a batch), so the driver writes them with delta-rs directly. Each
batch's rows commit with the app transaction `manifest/<feed>/<batch>`, so a replayed batch never
records an archive twice. A batch whose processing kept failing is recorded `dead_letter` without
that transaction, and replaced by its real rows once a replay commits it. This module owns the
table: others go through `Manifest`'s queries, never its Delta table or column names.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

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
        ("status", pa.string()),  # loaded | quarantined | resent | dead_letter | replay
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
        # Added later (null in older rows): runs the batch took, counting the one that committed.
        ("attempts", pa.int64()),
    ]
)

DEAD_LETTER = "dead_letter"  # processing failed every attempt; the owners were alerted
REPLAY = "replay"  # a dead letter an operator asked to load again
OUTSTANDING = (DEAD_LETTER, REPLAY)
# Feed names and batch ids are the only values that go into a predicate.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_\-]{1,80}$")
_COMMIT_TRIES = 5
_T = TypeVar("_T")


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
    attempts: int | None = None


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
        """Append a batch's rows once, in place of its dead-letter rows if it has any; returns
        False when the batch was already recorded."""
        return self._write_once(feed, batch_id, rows, _app_id(feed, batch_id))

    def dead_letter(self, feed: str, batch_id: str, rows: Iterable[ManifestRow]) -> bool:
        """Record a batch's archives as dead letters (replacing earlier ones of the batch);
        returns False when the batch was committed meanwhile. The batch's own app transaction
        stays free for a replay's commit; one of its own marks that rows are to be replaced."""
        return self._write_once(feed, batch_id, rows, _dead_app_id(feed, batch_id))

    def _write_once(self, feed: str, batch_id: str, rows: Iterable[ManifestRow],
                    app_id: str) -> bool:
        data = _arrow(rows)
        properties = CommitProperties(app_transactions=[Transaction(app_id, 1)])

        def write() -> bool:
            if self.committed(feed, batch_id):
                return False
            self._write_batch(feed, batch_id, data, properties)
            return True

        return _retry_conflicts(write)

    def request_replay(self, feed: str | None = None, batch_id: str | None = None) -> int:
        """Mark dead letters (of a feed, of one batch) for replay; returns how many archives.

        The feed's sensor requests their batches again. Raises ValueError for a feed or batch
        that is not an identifier.
        """
        condition = pc.field("status") == DEAD_LETTER
        for column, value in (("feed", feed), ("batch_id", batch_id)):
            if value:
                condition &= pc.field(column) == _checked(value)
        chosen = self._select(condition, columns=["feed", "batch_id"]).to_pylist()
        batches: dict[str, set[str]] = {}
        for row in chosen:
            batches.setdefault(row["feed"], set()).add(row["batch_id"])
        return sum(_retry_conflicts(lambda f=f, b=b: self._mark_replay(f, sorted(b)))
                   for f, b in sorted(batches.items()))

    def _mark_replay(self, feed: str, batch_ids: list[str]) -> int:
        """Rewrite the rows of dead-lettered batches with status `replay`, stamped now."""
        rows = self._select((pc.field("feed") == feed) & pc.field("batch_id").isin(batch_ids)
                            & (pc.field("status") == DEAD_LETTER))
        stamp = pa.scalar(dt.datetime.now(dt.UTC), SCHEMA.field("committed_at").type)
        for name, value in (("status", pa.scalar(REPLAY)), ("committed_at", stamp)):
            rows = rows.set_column(rows.schema.get_field_index(name), SCHEMA.field(name),
                                   pa.array([value.as_py()] * rows.num_rows, value.type))
        listed = ", ".join(f"'{_checked(b)}'" for b in batch_ids)
        write_deltalake(
            self.uri, rows, mode="overwrite", partition_by=["feed"],
            predicate=f"feed = '{_checked(feed)}' AND batch_id IN ({listed})",
            schema_mode="merge", storage_options=self.storage_options)
        return rows.num_rows

    def outstanding(self, feed: str | None = None) -> pa.Table:
        """Dead letters and archives waiting for replay (of one feed): a row per archive with
        the manifest's columns; `committed_at` is when it was dead-lettered or replay asked."""
        condition = pc.field("status").isin(list(OUTSTANDING))
        if feed:
            condition &= pc.field("feed") == feed
        return self._select(condition)

    def status_counts(self, feed: str | None = None, date: str | None = None) -> pa.Table:
        """Archives per feed and status (of one feed, one arrival date), and how many of them
        took more than one run: columns `feed`, `status`, `archives`, `retried`."""
        condition = None
        for column, value in (("feed", feed), ("arrival_date", date)):
            if value:
                term = pc.field(column) == value
                condition = term if condition is None else condition & term
        found = self._select(condition, columns=["feed", "status", "attempts"])
        retried = pc.fill_null(pc.greater(found.column("attempts"), 1), False)
        found = found.append_column("retried", pc.cast(retried, pa.int64()))
        counts = found.group_by(["feed", "status"]).aggregate(
            [("status", "count"), ("retried", "sum")])
        return pa.table({"feed": counts["feed"], "status": counts["status"],
                         "archives": counts["status_count"],
                         "retried": counts["retried_sum"]}).sort_by([("feed", "ascending"),
                                                                     ("status", "ascending")])

    def _write_batch(self, feed: str, batch_id: str, data: pa.Table,
                     properties: CommitProperties) -> None:
        """Append `data`, or replace the rows of a batch that had dead letters by it."""
        table = self._table()
        # The app transaction answers from the log: no scan of the manifest for every batch.
        replacing = table is not None and table.transaction_version(
            _dead_app_id(feed, batch_id)) is not None
        write_deltalake(
            self.uri,
            data,
            mode="overwrite" if replacing else "append",
            predicate=f"feed = '{_checked(feed)}'{_where(None, batch_id)}" if replacing else None,
            partition_by=["feed"],
            schema_mode="merge",  # a manifest written before the latest columns gains them
            storage_options=self.storage_options,
            commit_properties=properties,
        )

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
        condition = (pc.field("feed") == feed) & (pc.field("arrival_date") >= since.isoformat())
        rows = self._select(condition, ["sha256", "path", "arrival_date", "facility",
                                        "resent_of"])
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
        """Every manifest row (of one feed), for reports and tests."""
        return self._select(pc.field("feed") == feed if feed else None)

    def _select(self, condition: pc.Expression | None,
                columns: list[str] | None = None) -> pa.Table:
        """Rows matching `condition` with SCHEMA's columns (or `columns`); a column older rows
        lack reads as null."""
        table = self._table()
        wanted = columns or SCHEMA.names
        if table is None:
            return SCHEMA.empty_table().select(wanted)
        dataset = table.to_pyarrow_dataset()
        present = [c for c in wanted if c in dataset.schema.names]
        found = dataset.to_table(columns=present, filter=condition)
        for name in wanted:
            if name not in present:
                found = found.append_column(SCHEMA.field(name),
                                            pa.nulls(found.num_rows, SCHEMA.field(name).type))
        return found.select(wanted)


def _within(row: dict, replaced: tuple[str, Sequence[str] | None] | None) -> bool:
    if replaced is None:
        return False
    date, facilities = replaced
    return row["arrival_date"] == date and (facilities is None or row["facility"] in facilities)


def _app_id(feed: str, batch_id: str) -> str:
    return f"manifest/{feed}/{batch_id}"


def _dead_app_id(feed: str, batch_id: str) -> str:
    return f"dead_letter/{feed}/{batch_id}"


def _arrow(rows: Iterable[ManifestRow]) -> pa.Table:
    return pa.Table.from_pylist([asdict(r) for r in rows], schema=SCHEMA)


def _checked(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a feed name or batch id")
    return value


def _where(feed: str | None, batch_id: str | None) -> str:
    """` AND feed = '…' AND batch_id = '…'` for the arguments given."""
    parts = [f" AND {column} = '{_checked(value)}'"
             for column, value in (("feed", feed), ("batch_id", batch_id)) if value]
    return "".join(parts)


def _retry_conflicts(write: Callable[[], _T]) -> _T:
    """`write()`, run again when a concurrent commit to the manifest got in first (runs of
    other feeds append their rows all the time)."""
    for attempt in range(_COMMIT_TRIES):
        try:
            return write()
        except CommitFailedError:
            if attempt == _COMMIT_TRIES - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")
