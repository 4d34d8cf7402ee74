"""Frozen pydantic models of the metadata: feeds, tables, columns, projections and owners.

The YAML under `metadata/` is validated into these models; builders only ever read the models.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta
from typing import Annotated, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from lake_assets.catalog.formats import (
    DEFAULT_NOT_BEFORE,
    HL7,
    is_named,
    precision_column,
    strict_pattern,
)

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]
TeamName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_\-]*$", max_length=63)]

FormatKind = Literal["csv", "delimited", "hl7v2", "xml"]
ArchiveKind = Literal["zip", "gzip", "none"]
ColumnType = Literal["string", "integer", "long", "double", "boolean", "date", "timestamp"]
PhiTag = Literal["hash", "redact", "year_only", "zip3", "age"]
CdcMode = Literal["append", "scd1", "scd2"]
EvolutionMode = Literal["rescue", "fail", "add_columns"]
PartitionDim = Literal["date", "facility"]
Severity = Literal["warn", "error"]
RowAction = Literal["keep", "quarantine", "fail"]
ConflictAction = Literal["keep_latest", "quarantine_both", "fail"]
ResendAction = Literal["skip", "load"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def _parse_duration(value: object) -> object:
    """Accept `90s`, `15m`, `2h`, `1d` besides what pydantic takes for a timedelta."""
    if isinstance(value, str) and (match := _DURATION.match(value)):
        amount, unit = match.groups()
        return timedelta(**{_DURATION_UNITS[unit]: float(amount)})
    return value


def _parse_size(value: object) -> object:
    """Accept `512MB`, `40 MB`, `2GB` or a plain byte count."""
    if isinstance(value, str) and (match := _SIZE.match(value)):
        amount, unit = match.groups()
        return int(float(amount) * _SIZE_UNITS[(unit or "").upper()])
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]
ByteSize = Annotated[int, BeforeValidator(_parse_size), Field(gt=0)]


class Model(BaseModel):
    """Base for every metadata model: immutable, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Bounds(Model):
    """An inclusive numeric range; either end may be open."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class ColumnChecks(Model):
    """Row-level rules for one column, and what to do when a row breaks them."""

    range: Bounds | None = None
    allowed: tuple[str, ...] | None = None
    regex: str | None = None
    length: Bounds | None = None
    unique: bool = False
    severity: Severity = "error"
    blocking: bool = False
    action: RowAction = "quarantine"

    @model_validator(mode="after")
    def _valid_regex(self) -> ColumnChecks:
        if self.regex is not None:
            try:
                re.compile(self.regex)
                # Checks run the regex with Arrow's RE2, which lacks lookarounds and backrefs.
                pc.match_substring_regex(pa.array([""]), pattern=self.regex)
            except (re.error, pa.ArrowInvalid) as exc:
                raise ValueError(f"regex {self.regex!r} does not compile: {exc}") from exc
        return self


class Column(Model):
    """A column: its type, where it comes from in the source record, and its PHI tag."""

    name: Name
    type: ColumnType = "string"
    source: str | tuple[str, ...] | None = Field(
        default=None,
        description="CSV header, XPath relative to the record, or HL7 field path like PID-5.1 "
        "(HL7 may list several paths: the first non-empty one wins); defaults to the column name",
    )
    format: str | None = Field(
        default=None,
        description="date/timestamp format: `hl7` (DTM/TS, any precision, optional offset), "
        "`iso8601`, or strptime with fixed-width directives",
    )
    not_before: date | None = Field(
        default=None, description="earlier dates and timestamps are bad values (default 1850-01-01)"
    )
    nullable: bool = True
    description: str = ""
    phi: PhiTag | None = None
    checks: ColumnChecks = ColumnChecks()

    @model_validator(mode="after")
    def _checks_fit_type(self) -> Column:
        if self.checks.range is not None and self.type not in ("integer", "long", "double"):
            raise ValueError(f"checks.range needs type integer, long or double, not {self.type}")
        text = [k for k in ("allowed", "regex", "length") if getattr(self.checks, k) is not None]
        if text and self.type != "string":
            raise ValueError(f"checks.{text[0]} applies to string columns, not {self.type}")
        return self

    @model_validator(mode="after")
    def _format_fits_type(self) -> Column:
        temporal = self.type in ("date", "timestamp")
        for key in ("format", "not_before"):
            if getattr(self, key) is not None and not temporal:
                raise ValueError(f"{key} applies to date and timestamp columns, not {self.type}")
        if self.format is not None and not is_named(self.format):
            strict_pattern(self.format)  # raises ValueError naming an unsupported directive
        if isinstance(self.source, tuple) and not self.source:
            raise ValueError("source lists no path")
        return self

    @property
    def source_or_name(self) -> str:
        """The (first) source field, falling back to the column name."""
        return self.sources[0]

    @property
    def sources(self) -> tuple[str, ...]:
        """Every source path in order of preference; the column name when none is given."""
        if self.source is None:
            return (self.name,)
        return (self.source,) if isinstance(self.source, str) else self.source

    @property
    def floor(self) -> date:
        """The earliest date or timestamp accepted."""
        return self.not_before or DEFAULT_NOT_BEFORE

    @property
    def precision_column(self) -> str | None:
        """The sibling column keeping each value's sent precision (`hl7` format), or None."""
        return precision_column(self.name) if self.format == HL7 else None


class Reference(Model):
    """Referential integrity: values of `column` must exist in `table`.`to_column`."""

    column: str
    table: str = Field(description="a table name in any feed (its silver table)")
    to_column: str


class RowCountCheck(Model):
    """Flag a partition whose row count strays from the trailing average."""

    lookback_days: int = Field(default=7, ge=1, le=90)
    min_ratio: float = Field(default=0.5, ge=0)
    max_ratio: float = Field(default=2.0, gt=0)


class TableChecks(Model):
    """Table-level rules."""

    row_count: RowCountCheck | None = None
    references: tuple[Reference, ...] = ()
    on_conflict: ConflictAction = Field(
        default="keep_latest",
        description="records sharing a key (and sequence_by) with different content: keep the "
        "latest and report, quarantine both, or fail the run",
    )
    severity: Severity = "warn"
    blocking: bool = False


class DeleteSignal(Model):
    """Rows whose `column` holds one of `values` delete the key in silver (e.g. HL7 A23)."""

    column: str
    values: tuple[str, ...] = Field(min_length=1)


class Table(Model):
    """A table produced from a feed: how records are selected, keyed, and merged into silver."""

    name: Name
    description: str = ""
    selector: str | None = Field(
        default=None, description="XPath of the record element (XML) or segment id (HL7)"
    )
    member_pattern: str | None = Field(
        default=None, description="glob of the archive members this table reads (default: the "
        "feed's format.member_pattern); lets one archive carry files of several tables",
    )
    keys: tuple[str, ...] = ()
    sequence_by: str | None = None
    cdc: CdcMode = "append"
    schema_evolution: EvolutionMode = "rescue"
    deletes: DeleteSignal | None = None
    checks: TableChecks = TableChecks()
    columns: tuple[Column, ...] = Field(min_length=1)

    def column(self, name: str) -> Column | None:
        """The column called `name`, or None."""
        return next((c for c in self.columns if c.name == name), None)


class FileFormat(Model):
    """How data files inside an archive are laid out."""

    kind: FormatKind
    delimiter: str | None = None
    header: bool = True
    quote: str | None = '"'
    member_pattern: str = Field(default="*", description="glob for data members in the archive")

    @model_validator(mode="after")
    def _delimiter_fits_kind(self) -> FileFormat:
        if self.kind == "delimited" and not self.delimiter:
            raise ValueError("a delimited format needs a delimiter, e.g. '|'")
        if self.kind in ("hl7v2", "xml") and self.delimiter:
            raise ValueError(f"format {self.kind} takes no delimiter")
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise ValueError(f"delimiter must be one character, got {self.delimiter!r}")
        return self


class Archive(Model):
    """How archives are packed; zip passwords come from a named secret, never from metadata."""

    kind: ArchiveKind = "zip"
    password_secret: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*$")
    max_uncompressed: ByteSize = 2 * 10**9
    max_ratio: float = Field(default=200.0, gt=1)
    max_members: int = Field(default=10_000, ge=1)

    @model_validator(mode="after")
    def _password_only_for_zip(self) -> Archive:
        if self.password_secret and self.kind != "zip":
            raise ValueError(f"archive kind {self.kind} cannot carry a password_secret")
        return self


class FacilityRule(Model):
    """Where the facility id comes from: a landing path segment or a filename pattern."""

    path_segment: int | None = Field(default=None, ge=0, description="0 = first after prefix")
    filename_pattern: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> FacilityRule:
        if (self.path_segment is None) == (self.filename_pattern is None):
            raise ValueError("set exactly one of path_segment or filename_pattern")
        if self.filename_pattern is not None:
            try:
                groups = re.compile(self.filename_pattern).groupindex
            except re.error as exc:
                raise ValueError(f"filename_pattern does not compile: {exc}") from exc
            if "facility" not in groups:
                raise ValueError("filename_pattern needs a named group (?P<facility>...)")
        return self


class Landing(Model):
    """Where a feed's archives land, relative to LANDING_ROOT."""

    prefix: str = Field(pattern=r"^[A-Za-z0-9_\-/]+/$")
    facility: FacilityRule = FacilityRule(path_segment=0)


class BatchLimits(Model):
    """Caps for one run's batch of archives."""

    max_archives: int = Field(default=500, ge=1)
    max_bytes: ByteSize = 1_000_000_000


class Resend(Model):
    """What to do with an archive whose bytes (SHA-256) match an archive already committed."""

    action: ResendAction = Field(
        default="skip", description="skip: record it as resent_of the original, load nothing"
    )
    within: Duration = Field(
        default=timedelta(days=30), description="how far back committed archives are compared"
    )

class RetryPolicy(Model):
    """How a batch whose run failed for a reason other than its data is tried again.

    A batch is tried `max_attempts` times in all, waiting `backoff` after the first failure and
    twice as long after each next one (at most `max_backoff`); then its archives are
    dead-lettered and the feed's owners alerted. A data error (a `fail` rule) is not retried.
    A run still going after `run_timeout` is stopped by Dagster's run monitoring.
    """

    max_attempts: int = Field(default=3, ge=1, le=20)
    backoff: Duration = timedelta(seconds=30)
    max_backoff: Duration = timedelta(minutes=15)
    run_timeout: Duration = Field(
        default=timedelta(hours=2),
        description="a run still going after this is stopped, and counts as a failed attempt",
    )

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.backoff <= timedelta(0) or self.run_timeout <= timedelta(0):
            raise ValueError("backoff and run_timeout must be longer than 0 s")
        if self.max_backoff < self.backoff:
            raise ValueError("max_backoff must not be shorter than backoff")
        return self

    def wait(self, failures: int) -> timedelta:
        """How long to wait before the next attempt after `failures` failed ones (1 or more)."""
        return min(self.backoff * 2 ** max(failures - 1, 0), self.max_backoff)


class Freshness(Model):
    """SLA windows: warn after one, fail after the other."""

    warn_after: Duration
    fail_after: Duration

    @model_validator(mode="after")
    def _ordered(self) -> Freshness:
        if self.warn_after > self.fail_after:
            raise ValueError("warn_after must not be longer than fail_after")
        return self


class Maintenance(Model):
    """How the lake keeps a feed's or projection's tables fast as they age (on by default).

    Sealed daily partitions are compacted (Z-ordered by `zorder_by`), logs are checkpointed, and
    files no version needs are vacuumed after `vacuum_after`, never before the `time_travel`
    window readers are promised.
    """

    enabled: bool = True
    time_travel: Duration = timedelta(days=7)
    vacuum_after: Duration | None = Field(default=None, description="default: time_travel")
    zorder_by: tuple[str, ...] | None = Field(
        default=None, description="default: _facility_id for feeds, none for projections")

    @model_validator(mode="after")
    def _keeps_time_travel(self) -> Maintenance:
        if self.time_travel < timedelta(hours=1):
            raise ValueError("time_travel must be at least 1h")
        if self.vacuum_after is not None and self.vacuum_after < self.time_travel:
            raise ValueError(f"vacuum_after ({self.vacuum_after}) is shorter than time_travel "
                             f"({self.time_travel}): it would break the promised time travel")
        return self

    @property
    def vacuum_hours(self) -> int:
        """Hours of removed files vacuum keeps."""
        return int((self.vacuum_after or self.time_travel).total_seconds() // 3600)


class Acknowledgement(Model):
    """A breaking change accepted in the change itself: its id as `lakehouse plan` prints it
    (`silver/labs:column_removed:unit`), and why it is safe."""

    change: str = Field(min_length=3)
    reason: str = Field(min_length=3)


# Fields that are bookkeeping, not shape: they never change an asset's code version.
UNVERSIONED = {"acknowledge", "maintenance", "retry", "start_date"}


class Feed(Model):
    """A facility feed: how its archives are packed and parsed, and the tables it fills."""

    name: Name
    description: str = ""
    owners: tuple[str, ...] = Field(min_length=1)
    subscribers: tuple[str, ...] = ()
    format: FileFormat
    archive: Archive = Archive()
    encoding: str = "utf-8"
    landing: Landing
    batch: BatchLimits = BatchLimits()
    resend: Resend = Resend()
    retry: RetryPolicy = RetryPolicy()
    partitions: tuple[PartitionDim, ...] = ("date",)
    start_date: date | None = Field(
        default=None, description="the first arrival date partitions cover (default: the "
        "first arrival found in the landing zone when the definitions load)")
    freshness: Freshness
    silence_after: Duration | None = Field(
        default=None, description="report a facility that sent nothing for this long"
    )
    tables: tuple[Table, ...] = Field(min_length=1)
    maintenance: Maintenance = Maintenance()
    acknowledge: tuple[Acknowledgement, ...] = ()

    @model_validator(mode="after")
    def _partitions_shape(self) -> Feed:
        if self.partitions not in (("date",), ("date", "facility")):
            raise ValueError("partitions must be [date] or [date, facility]")
        return self

    def table(self, name: str) -> Table | None:
        """The table called `name`, or None."""
        return next((t for t in self.tables if t.name == name), None)

    def fingerprint(self, table: Table) -> str:
        """A short hash of what shapes `table`'s bronze asset, used as its code_version."""
        feed_part = self.model_dump_json(
            exclude={"tables", "description", "subscribers", *UNVERSIONED})
        return hashlib.sha256((feed_part + table.model_dump_json()).encode()).hexdigest()[:16]


class ProjectionChecks(Model):
    """Rules over a projection's output, checked after each write: one asset check (`rules`)
    whose metadata holds each rule's failing rows."""

    columns: dict[str, ColumnChecks] = Field(
        default_factory=dict,
        description="per output column: range, allowed, regex, length, unique (`action` unused)")
    not_null: tuple[str, ...] = ()
    unique: tuple[str, ...] = Field(default=(), description="columns unique together")
    severity: Severity = "error"
    blocking: bool = False

    def named_columns(self) -> list[str]:
        """Every output column a rule names."""
        return list(dict.fromkeys([*self.columns, *self.not_null, *self.unique]))


class Projection(Model):
    """A gold table: a Spark SQL file over silver and gold tables."""

    name: Name
    description: str = ""
    owners: tuple[str, ...] = Field(min_length=1)
    subscribers: tuple[str, ...] = ()
    sql: str = Field(pattern=r"^[A-Za-z0-9_\-/.]+\.sql$")
    freshness: Freshness
    partitions: tuple[Literal["date"], ...] = ()
    partition_column: str | None = None
    lookback_days: int = Field(default=0, ge=0, le=365)
    maintenance: Maintenance = Maintenance()
    acknowledge: tuple[Acknowledgement, ...] = ()
    checks: ProjectionChecks | None = None

    @model_validator(mode="after")
    def _partition_column(self) -> Projection:
        if self.partitions and not self.partition_column:
            raise ValueError("a date-partitioned projection needs partition_column")
        return self


class Team(Model):
    """A team that owns or subscribes to data, and how to reach it."""

    description: str = ""
    email: tuple[str, ...] = ()
    slack_webhook_secret: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*$")
    pagerduty_routing_key_secret: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*$")
    webhook_url: str | None = Field(default=None, pattern=r"^https?://")

    @model_validator(mode="after")
    def _reachable(self) -> Team:
        if not (
            self.email
            or self.slack_webhook_secret
            or self.pagerduty_routing_key_secret
            or self.webhook_url
        ):
            raise ValueError("a team needs at least one channel")
        for address in self.email:
            if "@" not in address:
                raise ValueError(f"{address!r} is not an email address")
        return self


class Owners(Model):
    """The contents of `metadata/owners.yaml`."""

    teams: dict[TeamName, Team] = Field(min_length=1)
