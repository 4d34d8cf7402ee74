"""A batch of archives through Spark: executors fetch, decrypt, parse and write Parquet.

`load_batch` runs one Spark job over the batch. Each task reads its share of the archives and
writes every table's good rows (bronze) and bad rows (quarantine) straight to Parquet files
through the Delta package's `TableWriter`; it returns only file descriptions and one summary
per archive. Rows never cross into the JVM or onto the driver, and the driver commits each
table's files in one Delta transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from typing import NamedTuple

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import SparkSession

from lake_assets.catalog.models import Feed
from lake_assets.checks import CheckTally, compile_rules, evaluate_rows
from lake_assets.ingest.conform import RESCUED, SOURCE_MEMBER
from lake_assets.ingest.read import ArchiveResult, quarantined, read_archives
from lake_assets.ingest.schema import LINEAGE, arrow_schema, quarantine_schema
from lake_assets.storage.delta import DataFile, TableWriter, WriteSpec, align_batch
from lake_assets.storage.spark import default_parallelism

ARRIVAL = "_arrival_date"
ARCHIVE = "_source_archive"
LAYERS = ("bronze", "quarantine")
FLUSH_ROWS = 100_000  # rows a task buffers per table before writing them as one row group
READ_TOGETHER = 8  # archives a task parses in one pass (`read.read_archives`)...
READ_TOGETHER_BYTES = 4 << 20  # ...unless they are this large: their text is held meanwhile

Output = tuple[str, str]  # (layer, table)

# What a task returns: one row per archive summary, per file written, per column added.
_RESULT_FIELDS = ("kind", "layer", "tbl", "payload")
_RESULT_SCHEMA = ", ".join(f"{name} string" for name in _RESULT_FIELDS)


@dataclass(frozen=True)
class BatchArchive:
    """One archive of the batch: landing-relative path, size and where it came from."""

    path: str
    size: int
    facility: str
    arrival_date: str


@dataclass(frozen=True)
class BatchSpec:
    """Everything executors need to read a batch; pickled into the Spark tasks."""

    feed: Feed
    batch_id: str
    archives: tuple[BatchArchive, ...]
    landing_root: str
    quarantine_root: str
    password: str | None
    ingested_at: datetime
    committed: Mapping[str, str] = field(default_factory=dict)
    """SHA-256 -> path of archives the manifest already holds, for `feed.resend`."""


@dataclass
class BatchOutcome:
    """What the tasks wrote (files per output, columns they added) and one summary per archive.

    `bad_reasons` counts bad rows by (table, reason); `checks` holds each table's row checks
    merged over the tasks, and `failed_rules` the rules with action `fail` that rows broke.
    """

    files: dict[Output, list[DataFile]] = field(default_factory=dict)
    added_columns: dict[Output, list[str]] = field(default_factory=dict)
    archives: list[dict] = field(default_factory=list)
    bad_reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    checks: dict[str, CheckTally] = field(default_factory=dict)
    failed_rules: dict[str, set[str]] = field(default_factory=dict)

    def all_files(self) -> list[tuple[Output, DataFile]]:
        """Every file written, with its output."""
        return [(output, f) for output, files in self.files.items() for f in files]


def bronze_row_schema(feed: Feed, table: str) -> pa.Schema:
    """Bronze rows as written: `arrow_schema` plus the `_arrival_date` partition column."""
    found = feed.table(table)
    assert found is not None
    return arrow_schema(found).append(pa.field(ARRIVAL, pa.date32()))


def quarantine_row_schema() -> pa.Schema:
    """Quarantined rows as written: `quarantine_schema` plus table and arrival date."""
    return (
        quarantine_schema()
        .append(pa.field("_table", pa.string()))
        .append(pa.field(ARRIVAL, pa.date32()))
    )


def load_batch(
    spark: SparkSession, spec: BatchSpec, writes: Mapping[Output, WriteSpec]
) -> BatchOutcome:
    """Read every archive of the batch on executors and write `writes` (per layer and table).

    The files are written but not committed: the caller commits them (or discards them). A
    failing task deletes the files it wrote before the error propagates.
    """
    tasks = max(1, min(len(spec.archives), default_parallelism(spark) * 2))
    shares = deal(spec.archives, tasks)
    # One id per partition: task k reads shares[k].
    ids = spark.range(0, tasks, numPartitions=tasks)
    # Bounded: a row per archive, per file written and per table tally, never data rows.
    rows = ids.mapInArrow(_task(spec, shares, dict(writes)), _RESULT_SCHEMA).collect()
    return _outcome(rows)


def task_without_spark(spec: BatchSpec, share: Sequence[int], *, files_under: str | None = None
                       ) -> list[dict]:
    """What one task of `load_batch` does for the archives `share` indexes, with no Spark:
    fetch, decrypt, parse, conform, check and quarantine, in the same groups. With
    `files_under`, it also writes the Parquet files a task writes (`<layer>/<table>` below it,
    partitioned by arrival date), never committed; without, nothing is written. The ingest
    benchmark's floors run this; it returns each archive's manifest summary."""
    outputs = {(layer, t.name): WriteSpec(uri=f"{files_under}/{layer}/{t.name}" if files_under
                                          else "", table=t.name, schema=schema,
                                          partition_by=(ARRIVAL,))
               for t in spec.feed.tables
               for layer, schema in (("bronze", bronze_row_schema(spec.feed, t.name)),
                                     ("quarantine", quarantine_row_schema()))}
    sink = _Sink(spec.feed, outputs, write=files_under is not None)
    loaded = _load_archives(spec, [spec.archives[i] for i in share], sink)
    sink.close()
    return [one.summary(sink.held) for one in loaded]


def deal(archives: Sequence[BatchArchive], tasks: int) -> list[list[int]]:
    """Archive indexes per task: largest first, dealt round-robin so no task gets all the big
    archives. Archives of the same known size go to the same task, in path order: only they
    can be byte-identical, and the task that reads them all sees a re-send within the batch."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, archive in enumerate(archives):
        key = (archive.size, 0) if archive.size else (0, index + 1)
        groups.setdefault(key, []).append(index)
    ordered = sorted(groups.values(), key=lambda g: (-archives[g[0]].size, archives[g[0]].path))
    shares: list[list[int]] = [[] for _ in range(tasks)]
    for position, group in enumerate(ordered):
        shares[position % tasks] += sorted(group, key=lambda i: archives[i].path)
    return shares


def _task(
    spec: BatchSpec, shares: list[list[int]], writes: dict[Output, WriteSpec]
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        sink = _Sink(spec.feed, writes)
        loaded: list[_Loaded] = []
        try:
            for batch in batches:
                for task in batch.column(0).to_pylist():
                    loaded += _load_archives(spec, [spec.archives[i] for i in shares[task]],
                                             sink)
            found = sink.close()
        except BaseException:
            sink.abandon()
            raise
        results = [("archive", None, None, json.dumps(one.summary(sink.held))) for one in loaded]
        results += [("file", layer, tbl, json.dumps(asdict(f))) for (layer, tbl), f in found]
        results += [("column", layer, tbl, name) for (layer, tbl), name in sink.added()]
        results += [("checks", "bronze", tbl, t.to_json()) for tbl, t in sink.tallies.items()]
        results += [("failed", "bronze", tbl, rule) for tbl, rule in sorted(sink.failed)]
        columns = [pa.array(list(c), pa.string()) for c in zip(*results, strict=True)]
        yield pa.RecordBatch.from_arrays(columns or [pa.array([], pa.string())] * 4,
                                         names=list(_RESULT_FIELDS))

    return run


class _Sink:
    """Per output: rows buffered into large row groups, then written by a TableWriter.

    Good rows are checked a buffer at a time, just before they are written: one evaluation
    over many archives instead of one per archive and table, which cost as much as parsing
    small archives. Rows that break a `quarantine` rule move to the table's quarantine output
    and are counted against their archive in `held`.

    Tables with `schema_evolution: add_columns` take new columns: the writer's open files are
    finished and later files carry the wider schema, which the commit adds to the table.
    """

    def __init__(self, feed: Feed, writes: dict[Output, WriteSpec], *, write: bool = True
                 ) -> None:
        self.write = write  # False: rows are checked and counted, never written
        self.specs = dict(writes)
        self.evolving = {
            output for output in writes
            if output[0] == "bronze" and _evolves(feed, output[1])
        }
        self.writers: dict[Output, list[TableWriter]] = {o: [] for o in writes}
        self.buffers: dict[Output, list[pa.Table]] = {o: [] for o in writes}
        self.buffered: Counter[Output] = Counter()
        self.new_columns: dict[Output, list[str]] = {o: [] for o in writes}
        self.rules = {table.name: compile_rules(table) for table in feed.tables}
        self.tallies: dict[str, CheckTally] = {}
        self.failed: set[tuple[str, str]] = set()
        self.held: Counter[tuple[str, str]] = Counter()  # (archive path, table) -> rows moved

    def _checked(self, table: str, rows: pa.Table) -> pa.Table:
        """Run `table`'s row checks on good `rows`; returns the rows to keep.

        Rows that break a rule whose action is `quarantine` go to quarantine with reason
        `check_failed` and the rules in `_error`; the counts go into the table's tally.
        Repeated keys are judged within each archive, as if it were checked on its own.
        """
        verdict = evaluate_rows(self.rules[table], rows, within=(ARCHIVE,))
        known = self.tallies.get(table)
        self.tallies[table] = verdict.tally if known is None else known.merge(verdict.tally)
        self.failed.update((table, rule) for rule in verdict.failed)
        held = verdict.reasons.is_valid()
        if not pc.any(held).as_py():
            return rows
        moved = rows.filter(held)
        for path, count in Counter(moved.column(ARCHIVE).to_pylist()).items():
            self.held[(path, table)] += count
        self.add(("quarantine", table), _as_quarantined(moved, verdict.reasons.filter(held),
                                                        table))
        return rows.filter(pc.invert(held))

    def add(self, output: Output, rows: pa.Table) -> None:
        spec = self.specs[output]
        extra = [f.name for f in rows.schema if spec.schema.get_field_index(f.name) < 0]
        if extra and output in self.evolving:
            self._flush(output)
            wider = spec.schema
            for name in extra:
                wider = wider.append(pa.field(name, pa.string()))
                self.new_columns[output].append(name)
            self.specs[output] = spec = replace(spec, schema=wider)
            if self.write:
                self.writers[output].append(TableWriter(spec))
        self.buffers[output].append(align_batch(rows, spec.schema, table=spec.table))
        self.buffered[output] += rows.num_rows
        if self.buffered[output] >= FLUSH_ROWS:
            self._flush(output)

    def _flush(self, output: Output) -> None:
        if not self.buffers[output]:
            return
        rows = pa.concat_tables(self.buffers[output])
        self.buffers[output] = []
        self.buffered[output] = 0
        if output[0] == "bronze":
            rows = self._checked(output[1], rows)
        if not self.write:
            return
        if not self.writers[output]:
            self.writers[output].append(TableWriter(self.specs[output]))
        self.writers[output][-1].write(rows)

    def close(self) -> list[tuple[Output, DataFile]]:
        """Flush every buffer (bronze first: its checks may add quarantine rows) and finish
        the files; returns every file written."""
        for output in sorted(self.specs, key=lambda o: o[0] != "bronze"):
            self._flush(output)
        return [(o, f) for o, writers in self.writers.items() for w in writers for f in w.close()]

    def added(self) -> list[tuple[Output, str]]:
        return [(o, name) for o, names in self.new_columns.items() for name in names]

    def abandon(self) -> None:
        for writers in self.writers.values():
            for writer in writers:
                writer.abandon()


def _evolves(feed: Feed, table: str) -> bool:
    found = feed.table(table)
    return found is not None and found.schema_evolution == "add_columns"


def _outcome(rows: list) -> BatchOutcome:
    outcome = BatchOutcome()
    for row in rows:
        if row.kind == "archive":
            summary = json.loads(row.payload)
            for table, reasons in summary.pop("bad_by_table").items():
                outcome.bad_reasons.update({(table, r): n for r, n in reasons.items()})
            outcome.archives.append(summary)
        elif row.kind == "file":
            outcome.files.setdefault((row.layer, row.tbl), []).append(
                DataFile(**json.loads(row.payload)))
        elif row.kind == "checks":
            tally = CheckTally.from_json(row.payload)
            known = outcome.checks.get(row.tbl)
            outcome.checks[row.tbl] = tally if known is None else known.merge(tally)
        elif row.kind == "failed":
            outcome.failed_rules.setdefault(row.tbl, set()).add(row.payload)
        else:
            outcome.added_columns.setdefault((row.layer, row.tbl), []).append(row.payload)
    return outcome


@dataclass(frozen=True)
class _Loaded:
    """One archive read into the sink: what its summary needs once its rows are checked.

    `result` has no rows (they are in the sink); `counts` holds each table's good rows and
    bad rows by reason as read.
    """

    archive: BatchArchive
    size: int
    sha256: str
    result: ArchiveResult
    counts: dict[str, tuple[int, Counter[str]]]
    resent_of: str | None = None

    def summary(self, held: Counter[tuple[str, str]]) -> dict:
        """The archive's manifest summary, given the rows the checks moved to quarantine."""
        counts = {}
        for name, (good, bad) in self.counts.items():
            moved = held[(self.archive.path, name)]
            counts[name] = (good - moved, bad + Counter({"check_failed": moved}))
        found = _summary(self.archive, self.size, self.sha256, self.result, counts)
        return found | {"resent_of": self.resent_of}


def _load_archives(spec: BatchSpec, archives: list[BatchArchive], sink: _Sink) -> list[_Loaded]:
    """Read archives into the sink, a few at a time (`read_archives`): up to READ_TOGETHER
    archives or READ_TOGETHER_BYTES of them, whichever comes first. An archive whose bytes
    match a committed archive, or one read before it in this task, is a re-send: recorded as
    such and, unless the feed loads re-sends, not read."""
    loaded: list[_Loaded] = []
    group: list[_Fetched] = []
    seen = dict(spec.committed)
    size = 0
    for archive in archives:
        data = _fetch(spec.landing_root, archive.path)
        if data is None:
            result = quarantined(spec.feed, reason="missing",
                                 message="archive vanished before read")
            loaded.append(_into_sink(spec, _Fetched(archive, None, "", None), result, sink))
            continue
        sha256 = hashlib.sha256(data).hexdigest()
        original = seen.setdefault(sha256, archive.path)
        resent_of = original if original != archive.path else None
        if resent_of is not None and spec.feed.resend.action == "skip":
            loaded.append(_resent(spec, archive, len(data), sha256, resent_of))
            continue
        group.append(_Fetched(archive, data, sha256, resent_of))
        size += len(data)
        if len(group) >= READ_TOGETHER or size >= READ_TOGETHER_BYTES:
            loaded += _read_group(spec, group, sink)
            group, size = [], 0
    return loaded + _read_group(spec, group, sink)


def _resent(spec: BatchSpec, archive: BatchArchive, size: int, sha256: str,
            original: str) -> _Loaded:
    """A re-sent archive, not read: status `resent`, naming the archive it repeats."""
    result = quarantined(spec.feed, reason="resent",
                         message=f"the same bytes as {original}, already committed or read")
    result = replace(result, status="resent", tables={})
    return _Loaded(archive, size, sha256, result, {}, resent_of=original)


class _Fetched(NamedTuple):
    """An archive's bytes (None when it vanished), their SHA-256, and the archive it repeats."""

    archive: BatchArchive
    data: bytes | None
    sha256: str
    resent_of: str | None


def _read_group(spec: BatchSpec, group: list[_Fetched], sink: _Sink) -> list[_Loaded]:
    if not group:
        return []
    results = read_archives(spec.feed, [(f.archive.path, f.data or b"") for f in group],
                            password=spec.password)
    return [_into_sink(spec, fetched, result, sink)
            for fetched, result in zip(group, results, strict=True)]


def _into_sink(spec: BatchSpec, fetched: _Fetched, result: ArchiveResult, sink: _Sink
               ) -> _Loaded:
    """One archive's rows into the sink with their lineage; the bytes of an archive quarantined
    whole or in part (a corrupt member) are kept."""
    archive, data, sha256 = fetched.archive, fetched.data, fetched.sha256
    if data is not None and (result.status == "quarantined" or result.corrupt_members):
        _keep_original(spec, archive, data)
    lineage = _lineage(spec, archive, sha256)
    for name, rows in result.tables.items():
        if rows.good.num_rows:
            sink.add(("bronze", name), _with(rows.good, lineage))
        if rows.bad.num_rows:
            sink.add(("quarantine", name), _with(rows.bad, lineage | {"_table": (pa.string(),
                                                                                 name)}))
    counts = {name: (rows.good.num_rows, Counter(rows.bad.column("_reason").to_pylist()))
              for name, rows in result.tables.items()}
    size = len(data) if data is not None else 0
    return _Loaded(archive, size, sha256, replace(result, tables={}), counts,
                   resent_of=fetched.resent_of)


def _as_quarantined(rows: pa.Table, errors: pa.Array, table: str) -> pa.Table:
    """Good rows that failed checks, as quarantine rows with their lineage: reason
    `check_failed`, the broken rules in `_error`, the declared values as JSON in `_raw`."""
    kept = [f.name for f in LINEAGE] + [ARRIVAL]
    envelope = set(kept) | {RESCUED, SOURCE_MEMBER}
    values = rows.select([n for n in rows.column_names if n not in envelope]).to_pylist()
    return pa.table({
        "_source_member": rows.column(SOURCE_MEMBER),
        "_reason": pa.array(["check_failed"] * rows.num_rows, pa.string()),
        "_error": errors.cast(pa.string()),
        "_raw": pa.array([json.dumps(v, default=str) for v in values], pa.string()),
        **{name: rows.column(name) for name in kept},
        "_table": pa.array([table] * rows.num_rows, pa.string()),
    })


def _fetch(root: str, path: str) -> bytes | None:
    """The archive's bytes, or None when it was removed after the sensor listed it."""
    try:
        with fsspec.open(f"{root}/{path}", "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _keep_original(spec: BatchSpec, archive: BatchArchive, data: bytes) -> None:
    """Keep a quarantined archive's original bytes next to its reason, for replay."""
    target = f"{spec.quarantine_root}/_archives/{spec.feed.name}/{archive.path}"
    fs, path = fsspec.core.url_to_fs(target)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as handle:
        handle.write(data)


def _lineage(spec: BatchSpec, archive: BatchArchive, sha256: str) -> dict[str, tuple]:
    return {
        "_facility_id": (pa.string(), archive.facility),
        ARCHIVE: (pa.string(), archive.path),
        "_archive_sha256": (pa.string(), sha256),
        "_ingested_at": (pa.timestamp("us", tz="UTC"), spec.ingested_at),
        "_batch_id": (pa.string(), spec.batch_id),
        ARRIVAL: (pa.date32(), date.fromisoformat(archive.arrival_date)),
    }


def _with(rows: pa.Table, columns: dict[str, tuple]) -> pa.Table:
    for name, (kind, value) in columns.items():
        if name in rows.column_names:
            rows = rows.drop_columns([name])
        rows = rows.append_column(name, pa.repeat(pa.scalar(value, kind), rows.num_rows))
    return rows


def _summary(
    archive: BatchArchive, size: int, sha256: str, result: ArchiveResult,
    counts: dict[str, tuple[int, Counter[str]]],
) -> dict:
    """The archive's manifest summary; `counts` holds each table's good rows and bad rows by
    reason after the row checks."""
    reasons = sum((bad for _, bad in counts.values()), Counter())
    return {
        "path": archive.path,
        "size": size,
        "sha256": sha256,
        "facility": archive.facility,
        "arrival_date": archive.arrival_date,
        "status": result.status,
        "reason": result.reason,
        "message": result.message,
        "members": result.members,
        "uncompressed_bytes": result.uncompressed_bytes,
        "rows": sum(good for good, _ in counts.values()),
        "bad_rows": sum(reasons.values()),
        "rows_by_table": json.dumps({n: good for n, (good, _) in counts.items()}),
        "bad_by_reason": json.dumps(dict(reasons)),
        "bad_by_table": {n: dict(bad) for n, (_, bad) in counts.items() if bad},
        "members_loaded": result.members - result.corrupt_members,
        "members_skipped": len(result.skipped),
        "skipped_members": json.dumps([{"name": m.name, "reason": m.reason}
                                       for m in result.skipped]),
        "members_quarantined": result.corrupt_members,
        "schema_drift": json.dumps(result.drift) if result.drift else None,
    }
