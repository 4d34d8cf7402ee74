"""Ground truth: one JSON line per archive saying what the ingest should make of it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Literal

import fsspec

Status = Literal["good", "quarantine", "resent"]


@dataclass(frozen=True)
class TruthRecord:
    """Expected outcome of one archive; `archive` is relative to the landing root."""

    archive: str
    feed: str
    facility: str
    status: Status
    reason: str | None
    rows: dict[str, int]
    bad_rows: dict[str, int]
    fault: str | None
    resent_of: str | None = None
    data_files: int = field(default=0, compare=False)

    def to_json(self) -> str:
        """The record as one JSON line (without the newline)."""
        return json.dumps(asdict(self), sort_keys=False)

    def resent_as(self, archive: str, *, loaded: bool) -> TruthRecord:
        """The expectation for a byte-identical copy re-sent under another name: the same as
        the original's when the feed loads re-sends (`resend.action: load`), else nothing
        loaded and status `resent`."""
        copy = replace(self, archive=archive, resent_of=self.archive)
        if loaded:
            return copy
        return replace(copy, status="resent", reason="resent", rows=dict.fromkeys(self.rows, 0),
                       bad_rows=dict.fromkeys(self.bad_rows, 0))


def read_truth(path: str | Path) -> list[TruthRecord]:
    """Every record of a truth file, local or s3://. Raises FileNotFoundError if absent."""
    with fsspec.open(str(path), "rt", encoding="utf-8") as handle:
        return [TruthRecord(**json.loads(line)) for line in handle if line.strip()]


@dataclass
class TruthWriter:
    """Writes truth lines as archives land: appended and flushed locally, so a live run can
    be read while it goes; buffered and written at close for object stores."""

    path: str
    _handle: IO[str] | None = None
    _buffer: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if _is_local(self.path):
            target = Path(self.path.removeprefix("file://"))
            target.parent.mkdir(parents=True, exist_ok=True)
            self._handle = target.open("w", encoding="utf-8")

    def write(self, record: TruthRecord) -> None:
        """Add one record."""
        line = record.to_json() + "\n"
        if self._handle is not None:
            self._handle.write(line)
            self._handle.flush()
        else:
            self._buffer.append(line)

    def close(self) -> None:
        """Flush and close; for object stores this is when the file is written."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            return
        with fsspec.open(self.path, "wt", encoding="utf-8") as handle:
            handle.write("".join(self._buffer))


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")
