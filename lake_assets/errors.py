"""Every exception the lakehouse raises on purpose, in one place.

Each message names what a data owner needs to act: the file, feed, facility, archive or column.
"""

from __future__ import annotations

from dataclasses import dataclass


class LakehouseError(Exception):
    """Base class for errors the lakehouse raises deliberately."""


@dataclass(frozen=True)
class MetadataProblem:
    """One problem in the metadata: the file, the key path inside it, and what was expected."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: {self.message}"


class MetadataError(LakehouseError):
    """The metadata under `metadata/` is invalid; carries every problem found, not the first."""

    def __init__(self, problems: list[MetadataProblem]) -> None:
        self.problems = problems
        count = len(problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{count} metadata problem{'s' if count != 1 else ''}:\n{lines}")


class SimulationError(LakehouseError):
    """A simulator option is out of range or the output location cannot be written."""


class SecretNotFoundError(LakehouseError):
    """A secret named in metadata is neither in the environment nor in the secrets file."""


class DeltaStorageError(LakehouseError):
    """A Delta table could not be read or written; the message names the table."""


class NotADeltaTableError(DeltaStorageError):
    """The location holds no Delta log, or holds other files where a new table would go."""


class DeltaSchemaError(DeltaStorageError):
    """Incoming columns do not fit the table schema; names the table and the column."""


class DeltaPredicateError(DeltaStorageError):
    """A predicate names an unknown column or an unsupported operator, or rows fall outside it."""


class DeltaConflictError(DeltaStorageError):
    """A concurrent commit changed the files this operation read; rerun the operation."""


class SchemaVersionError(DeltaStorageError):
    """A schema version that the table never had."""


class DeltaMaintenanceError(DeltaStorageError):
    """A maintenance request would break time travel or names an unknown column."""


class SparkConfigError(LakehouseError):
    """The Spark master or remote URL is not one the lakehouse can use."""


class ArchiveRejected(LakehouseError):
    """An archive cannot be loaded and is quarantined whole; `reason` is a contract reason code.

    Codes (docs/landing-contract.md): corrupt, truncated, empty, wrong_password, too_large,
    bad_encoding. The message names the feed and the archive, never a patient value.
    """

    def __init__(self, reason: str, message: str, *, path: str, feed: str) -> None:
        self.reason = reason
        self.detail = message
        self.path = path
        self.feed = feed
        super().__init__(f"feed {feed}: archive {path} quarantined ({reason}): {message}")

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments: rebuild explicitly so the error survives pickling to the driver.
        return (_rebuild_archive_rejected, (self.reason, self.detail, self.path, self.feed))


def _rebuild_archive_rejected(reason: str, message: str, path: str, feed: str) -> ArchiveRejected:
    return ArchiveRejected(reason, message, path=path, feed=feed)


class ColumnSourceError(LakehouseError):
    """A table's selector or a column's source cannot be used by the feed's format parser."""


class LandingPathError(LakehouseError):
    """A landed file's path does not follow the feed's landing rules; names the path and feed."""


class SimulationOptionError(SimulationError):
    """One simulator option is out of range; `option` names it as on the command line."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(f"--{option}: {message}")


class AlertDeliveryError(LakehouseError):
    """One alert channel failed to deliver; names the team and channel, never a URL or key.

    `retryable` is False when repeating the request cannot help (a 4xx answer, a refused address).
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        self.retryable = retryable
        super().__init__(message)


class AlertCursorError(LakehouseError):
    """The alert sensor cursor is unreadable; reset the cursor of sensor lake_alerts in the UI."""


class LakeQueryError(LakehouseError):
    """SQL over the lake names an unknown table or does not parse; lists the known tables."""


class ProjectionError(LakehouseError):
    """A projection cannot be computed: an input table is missing or its SQL lacks the
    partition column; names the projection and its SQL file."""


class PlanBaseError(LakehouseError):
    """The base metadata of `lakehouse plan` cannot be read: not a git checkout, or an unknown
    ref; names the folder and the ref."""


class BronzeRunError(LakehouseError):
    """A bronze run was asked for partitions it cannot load together; names the feed."""


class CheckEvaluationError(LakehouseError):
    """Pandera reported a failure that no rule of the table explains: a bug in the check engine,
    not bad data; names the table, column and Pandera check."""


class AccessDeniedError(LakehouseError):
    """The access policy (metadata/access.yaml) does not let a user read a table or run a
    statement; names the user, role and table, never a value."""


class ServeError(LakehouseError):
    """The SQL endpoint cannot start: a TLS file or a user's password secret is missing."""


class InstanceStorageError(LakehouseError):
    """The Dagster instance storage cannot be set up as configured (e.g. a Postgres URL)."""


class SandboxError(LakehouseError):
    """A sandbox cannot be made, found or removed: names the sandbox and the reason."""
