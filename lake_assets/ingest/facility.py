"""Facility id and arrival date and hour of a landed archive, from its path and the feed's rules.

Layout (docs/landing-contract.md): `<prefix><YYYY-MM-DD>/<HH>/<facility>/<archive>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import NoReturn

from lake_assets.catalog.models import Feed
from lake_assets.errors import LandingPathError

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOUR = re.compile(r"^([01]\d|2[0-3])$")
_FACILITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class ArchiveLocation:
    """Where an archive came from: facility id, arrival date (the bronze partition) and hour."""

    facility_id: str
    arrival_date: date
    arrival_hour: int


def locate_archive(feed: Feed, path: str) -> ArchiveLocation:
    """Facility, arrival date and hour of `path`, relative to the landing root or a full path or
    URL that contains the feed's prefix after a `/`.

    Raises LandingPathError naming the path and the feed when the path does not fit the layout.
    """
    segments = _after_prefix(feed, path)
    if len(segments) < 3 or not _DATE.match(segments[0]) or not _HOUR.match(segments[1]):
        _fail(feed, path, "expected <prefix><YYYY-MM-DD>/<HH>/<facility>/<archive>")
    try:
        arrival = date.fromisoformat(segments[0])
    except ValueError:
        _fail(feed, path, f"{segments[0]} is not a calendar date")
    facility = _facility(feed, path, segments)
    if not _FACILITY.match(facility):
        _fail(feed, path, "the facility id must be letters, digits, '_', '-' or '.'")
    return ArchiveLocation(facility, arrival, int(segments[1]))


def _after_prefix(feed: Feed, path: str) -> list[str]:
    prefix = feed.landing.prefix
    if path.startswith(prefix):
        rest = path[len(prefix) :]
    else:
        marker = path.rfind(f"/{prefix}")
        if marker < 0:
            _fail(feed, path, f"not under the feed's prefix {prefix}")
        rest = path[marker + 1 + len(prefix) :]
    return rest.split("/")


def _facility(feed: Feed, path: str, segments: list[str]) -> str:
    rule = feed.landing.facility
    if rule.path_segment is not None:
        if rule.path_segment >= len(segments) - 1:
            _fail(feed, path, f"no folder at path segment {rule.path_segment} for the facility")
        return segments[rule.path_segment]
    match = re.search(rule.filename_pattern or "", segments[-1])
    if not match or not match.group("facility"):
        _fail(feed, path, "the file name does not match the feed's facility filename_pattern")
    return match.group("facility")


def _fail(feed: Feed, path: str, problem: str) -> NoReturn:
    raise LandingPathError(f"{path}: feed {feed.name}: {problem}")
