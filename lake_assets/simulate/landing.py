"""Where archives go: a local folder or an s3:// prefix, written so a sensor never sees a
half-written file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec

from lake_assets.errors import SimulationError

STAGING = ".simulate-staging"  # a dot folder can never be a feed prefix


@dataclass
class LandingWriter:
    """Puts archives under a landing root."""

    root: str
    _fs: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.root = self.root.rstrip("/")
        if "://" in self.root and not self.root.startswith("file://"):
            self._fs, _ = fsspec.core.url_to_fs(self.root)
        else:
            self.root = self.root.removeprefix("file://")

    def put(self, relative: str, data: bytes) -> None:
        """Write `data` at `<root>/<relative>`; local writes land by an atomic rename.

        Raises SimulationError naming the path when it cannot be written.
        """
        target = f"{self.root}/{relative}"
        try:
            if self._fs is not None:
                self._fs.pipe_file(target, data)
                return
            staging = Path(self.root) / STAGING / relative.replace("/", "__")
            staging.parent.mkdir(parents=True, exist_ok=True)
            staging.write_bytes(data)
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, target)
        except OSError as exc:
            raise SimulationError(f"cannot write archive {target}: {exc}") from exc

    def close(self) -> None:
        """Remove the local staging folder when it is empty."""
        if self._fs is None:
            staging = Path(self.root) / STAGING
            if staging.is_dir() and not any(staging.iterdir()):
                staging.rmdir()
