"""Schema history `_lake/schema_versions`: one row per table per schema it has had, forever.

A table's schema version is 1 for its first schema and goes up by one each time a write changes
it (a column added, a type widened). Each row keeps the Delta version where the schema took
effect, the asset's `code_version` that wrote it, the time and the schema itself. The table's
own Delta log could tell the same, but log cleanup removes old commits, and history is unlimited.

Every materialization records its table's schema (`SchemaHistory.record`); a write that left the
schema unchanged adds nothing. Runs of one table are serialized (one run per feed, one silver and
gold run at a time), so two runs never add the same version; reads drop a repeated fingerprint
all the same.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from lake_assets.errors import SchemaVersionError

SCHEMA_HISTORY_TABLE = "_lake/schema_versions"
SCHEMA = pa.schema([
    ("table", pa.string()),  # the table's name: bronze/<feed>/<table>, silver/<t>, gold/<p>
    ("schema_version", pa.int64()),
    ("delta_version", pa.int64()),  # the table's first Delta version with this schema
    ("code_version", pa.string()),
    ("effective_at", pa.timestamp("us", tz="UTC")),
    ("fingerprint", pa.string()),
    ("columns", pa.int64()),
    ("schema_json", pa.string()),  # Delta's schema JSON
])


# The latest version seen per (history, table) in this process: a run that writes a table
# many times reads its history once. A stale entry only costs a read (fingerprints differ).
_LATEST: dict[tuple[str, str], SchemaVersion] = {}


@dataclass(frozen=True)
class SchemaVersion:
    """One schema a table has had, and from which Delta version."""

    table: str
    schema_version: int
    delta_version: int
    code_version: str | None
    effective_at: dt.datetime
    fingerprint: str
    columns: int
    schema_json: str

    def column_names(self) -> list[str]:
        """The schema's top-level column names, in order."""
        return [f["name"] for f in json.loads(self.schema_json)["fields"]]


def fingerprint(schema_json: str) -> str:
    """A short hash of a Delta schema (names, types, nullability, in order)."""
    fields = [(f["name"], json.dumps(f["type"], sort_keys=True), f.get("nullable", True))
              for f in json.loads(schema_json)["fields"]]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:16]


@dataclass
class SchemaHistory:
    """Reads and appends to the schema history Delta table at `uri`."""

    uri: str
    storage_options: dict[str, str] | None = None

    def versions(self, table: str | None = None) -> list[SchemaVersion]:
        """Every schema version of `table` (of every table when None), oldest first."""
        try:
            delta = DeltaTable(self.uri, storage_options=self.storage_options)
        except TableNotFoundError:
            return []
        rows = delta.to_pyarrow_table()
        if table is not None:
            rows = rows.filter(pc.equal(rows["table"], table))
        seen: set[tuple[str, str]] = set()
        out = []
        for row in rows.sort_by([("table", "ascending"), ("schema_version", "ascending")]) \
                .to_pylist():
            if (row["table"], row["fingerprint"]) not in seen:
                seen.add((row["table"], row["fingerprint"]))
                out.append(SchemaVersion(**row))
        return out

    def record(self, table: str, *, latest: int, schema_at: Callable[[int], str],
               code_version: str | None) -> SchemaVersion:
        """The table's schema version at Delta version `latest`: the last one recorded when the
        schema is unchanged, else a new one, appended. `schema_at(v)` is the schema JSON at
        version v; a new schema takes effect at the first version after the last recorded one
        that has it (a schema-evolving write commits its schema change first)."""
        schema_json = schema_at(latest)
        found = fingerprint(schema_json)
        seen = _LATEST.get((self.uri, table))
        if seen is not None and seen.fingerprint == found:
            return seen  # unchanged since this process last looked: no read of the history
        known = self.versions(table)
        if known and known[-1].fingerprint == found:
            _LATEST[(self.uri, table)] = known[-1]
            return known[-1]
        first = latest
        floor = known[-1].delta_version if known else -1
        while first - 1 > floor and fingerprint(schema_at(first - 1)) == found:
            first -= 1
        version = SchemaVersion(
            table=table, schema_version=len(known) + 1, delta_version=first,
            code_version=code_version, effective_at=dt.datetime.now(dt.UTC),
            fingerprint=found, columns=len(json.loads(schema_json)["fields"]),
            schema_json=schema_json)
        write_deltalake(self.uri, pa.Table.from_pylist([version.__dict__], schema=SCHEMA),
                        mode="append", storage_options=self.storage_options)
        _LATEST[(self.uri, table)] = version
        return version

    def delta_version_of(self, table: str, schema_version: int, latest: int) -> int:
        """The last Delta version of `table` (its latest is `latest`) with `schema_version`."""
        known = self.versions(table)
        if not 1 <= schema_version <= len(known):
            have = f"1 to {len(known)}" if known else "none recorded"
            raise SchemaVersionError(
                f"table {table} has no schema version {schema_version} (it has {have})")
        if schema_version == len(known):
            return latest
        return known[schema_version].delta_version - 1
