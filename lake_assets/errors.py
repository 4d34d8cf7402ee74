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
    """The metadata under `metadata/` is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[MetadataProblem]) -> None:
        self.problems = problems
        count = len(problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{count} metadata problem{'s' if count != 1 else ''}:\n{lines}")


class SimulationError(LakehouseError):
    """A simulator option is out of range or the output location cannot be written."""


class SecretNotFoundError(LakehouseError):
    """A secret named in metadata is neither in the environment nor in the secrets file."""
