"""The audit log `_lake/audit`: one row per query and per denied attempt, on every read path.

Who (principal, role, client address), when, what (SQL text with its literals masked, the tables
and columns touched), the outcome (allowed or denied and why, rows returned) and the duration.
It serves HIPAA's audit-controls requirement: `lakehouse audit` answers "who read
silver.patients this week". Rows are buffered and committed together (a Delta commit costs
7-14 ms, too much per query); `AuditWriter.flush` commits what is buffered.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

AUDIT_TABLE = "_lake/audit"
SCHEMA = pa.schema([
    ("at", pa.timestamp("us", tz="UTC")),
    ("day", pa.string()),
    ("principal", pa.string()),
    ("role", pa.string()),
    ("client", pa.string()),
    ("path", pa.string()),  # serve | sql | api | trino
    ("sql", pa.string()),  # literals masked
    ("tables", pa.list_(pa.string())),
    ("columns", pa.list_(pa.string())),
    ("rows", pa.int64()),
    ("allowed", pa.bool_()),
    ("reason", pa.string()),
    ("duration_ms", pa.float64()),
])


@dataclass(frozen=True)
class AuditRecord:
    """One query or denied attempt. `sql` must already have its literals masked."""

    principal: str
    role: str | None
    client: str
    path: str
    sql: str
    tables: Sequence[str] = ()
    columns: Sequence[str] = ()
    rows: int | None = None
    allowed: bool = True
    reason: str | None = None
    duration_ms: float = 0.0
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


@dataclass
class AuditLog:
    """Appends to and reads the audit Delta table at `uri`."""

    uri: str
    storage_options: dict[str, str] | None = None

    def append(self, records: Sequence[AuditRecord]) -> None:
        """Commit `records` in one transaction (nothing for an empty list)."""
        if not records:
            return
        rows = [asdict(r) | {"day": r.at.date().isoformat(), "tables": list(r.tables),
                             "columns": list(r.columns)} for r in records]
        write_deltalake(self.uri, pa.Table.from_pylist(rows, schema=SCHEMA), mode="append",
                        partition_by=["day"], storage_options=self.storage_options)

    def read(self, *, since: dt.datetime | None = None, table: str | None = None,
             principal: str | None = None) -> pa.Table:
        """Audit rows since `since`, touching `table`, by `principal`; oldest first."""
        try:
            delta = DeltaTable(self.uri, storage_options=self.storage_options)
        except TableNotFoundError:
            return SCHEMA.empty_table()
        filters = [("day", ">=", since.date().isoformat())] if since else None
        rows = delta.to_pyarrow_table(filters=filters)
        if since is not None:
            rows = rows.filter(pc.greater_equal(rows["at"], pa.scalar(since, SCHEMA.field("at")
                                                                      .type)))
        if principal is not None:
            rows = rows.filter(pc.equal(rows["principal"], principal))
        if table is not None:
            rows = rows.filter(_has(rows["tables"], table))
        return rows.sort_by("at")


def _has(lists: pa.ChunkedArray, value: str) -> pa.Array:
    """Whether each list holds `value`."""
    return pa.array([value in (v or ()) for v in lists.to_pylist()], pa.bool_())


class AuditWriter:
    """Buffers audit records and commits them every `interval` seconds, and on `flush`/`close`."""

    def __init__(self, log: AuditLog, *, interval: float = 1.0) -> None:
        self.log = log
        self.interval = interval
        self._pending: list[AuditRecord] = []
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def record(self, record: AuditRecord) -> None:
        """Buffer `record` for the next commit."""
        with self._lock:
            self._pending.append(record)

    def flush(self) -> None:
        """Commit every buffered record now."""
        with self._commit_lock:
            with self._lock:
                pending, self._pending = self._pending, []
            self.log.append(pending)

    def close(self) -> None:
        """Stop the background commits and commit what is left."""
        self._stop.set()
        self._thread.join()
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()
