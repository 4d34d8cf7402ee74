"""The landing zone: where facilities drop archives, local or s3://, listed by date and hour.

Layout (docs/landing-contract.md): `<prefix><YYYY-MM-DD>/<HH>/<facility>/<archive>`. Listing an
open hour is one or two LIST calls, whatever the number of facilities.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

from lake_assets.catalog.models import Feed
from lake_assets.errors import LandingPathError
from lake_assets.ingest.facility import locate_archive
from lake_assets.storage.delta import lake_root

__all__ = ["LandedArchive", "LandingPathError", "LandingZone", "landing_root", "locate",
           "open_landing"]

LANDING_VARIABLE = "LANDING_ROOT"

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOUR = re.compile(r"^\d{2}$")


@dataclass(frozen=True, order=True)
class LandedArchive:
    """One archive in the landing zone; `path` is relative to the landing root."""

    path: str
    size: int
    facility: str
    arrival_date: str
    arrival_hour: str


def landing_root() -> str:
    """Where facilities drop archives: $LANDING_ROOT, default `<lake root>/landing`."""
    return os.environ.get(LANDING_VARIABLE, f"{lake_root()}/landing").rstrip("/")


def open_landing(root: str, *, storage_options: dict[str, Any] | None = None) -> LandingZone:
    """A LandingZone over `root` (local folder or s3://bucket/prefix)."""
    fs, base = fsspec.core.url_to_fs(root, **(storage_options or {}))
    return LandingZone(fs=fs, base=base.rstrip("/"), root=root.rstrip("/"))


def locate(feed: Feed, path: str) -> tuple[str, str, str]:
    """(arrival date, hour, facility) of a landing path; raises LandingPathError naming it."""
    where = locate_archive(feed, path)
    return where.arrival_date.isoformat(), f"{where.arrival_hour:02d}", where.facility_id


@dataclass(frozen=True)
class LandingZone:
    """Lists a feed's archives by arrival date and hour."""

    fs: AbstractFileSystem
    base: str
    root: str

    def dates(self, feed: Feed) -> list[str]:
        """Arrival dates that have a folder under the feed's prefix, oldest first."""
        return sorted(name for name in self._children(feed.landing.prefix) if _DATE.match(name))

    def hours(self, feed: Feed, date: str) -> list[str]:
        """Hour folders (`00`-`23`) of one arrival date, oldest first."""
        names = self._children(f"{feed.landing.prefix}{date}/")
        return sorted(name for name in names if _HOUR.match(name))

    def archives(self, feed: Feed, date: str, hour: str | None = None) -> list[LandedArchive]:
        """Every archive of one arrival date (or one hour of it), sorted by path."""
        folder = f"{feed.landing.prefix}{date}/" + (f"{hour}/" if hour else "")
        found = self._find(folder)
        archives = []
        for path, size in found:
            day, hh, facility = locate(feed, path)
            archives.append(LandedArchive(path, size, facility, day, hh))
        return sorted(archives)

    def url(self, path: str) -> str:
        """Full URL (or local path) of a landing-relative path."""
        return f"{self.root}/{path}"

    def read(self, path: str) -> bytes:
        """The bytes of one landed archive."""
        return self.fs.cat_file(f"{self.base}/{path}")

    def _children(self, relative: str) -> list[str]:
        target = f"{self.base}/{relative}".rstrip("/")
        if not self.fs.exists(target):
            return []
        entries = self.fs.ls(target, detail=True)
        folders = [e["name"].rstrip("/") for e in entries if e["type"] == "directory"]
        return [name.rsplit("/", 1)[-1] for name in folders]

    def _find(self, relative: str) -> list[tuple[str, int]]:
        target = f"{self.base}/{relative}".rstrip("/")
        if not self.fs.exists(target):
            return []
        entries = self.fs.find(target, detail=True)
        prefix = f"{self.base}/"
        return [
            (name[len(prefix) :], int(info.get("size") or 0))
            for name, info in entries.items()
            if info.get("type") == "file" and not name.rsplit("/", 1)[-1].startswith(".")
        ]
