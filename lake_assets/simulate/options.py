"""What a simulation run is asked to do, how it is checked, and what it reports back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.models import Feed
from lake_assets.errors import SimulationOptionError
from lake_assets.simulate.faults import FAULT_KINDS

Encryption = Literal["mix", "aes", "zipcrypto"]
ENCRYPTIONS: tuple[str, ...] = ("mix", "aes", "zipcrypto")
MAX_FACILITIES = 99_999  # facility ids are FAC + 5 digits


def today_utc() -> datetime:
    """Midnight UTC of the current day, the default first simulated hour."""
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class SimulationOptions:
    """Options of one run; `out` and `truth` are local paths or s3:// URLs."""

    out: str
    truth: str
    facilities: int = 8_000
    hours: float = 1.0
    rate: float = 3_500.0
    faults: float = 0.01
    fault_kinds: tuple[str, ...] | None = None
    seed: int = 0
    feeds: tuple[str, ...] | None = None
    size_scale: float = 1.0
    encryption: Encryption = "mix"
    start: datetime = field(default_factory=today_utc)
    live: bool = False
    resend_rate: float = 0.01
    late_rate: float = 0.03

    def selected_feeds(self, catalog: Catalog) -> tuple[Feed, ...]:
        """The feeds to simulate, in catalog order."""
        if self.feeds is None:
            return catalog.feeds
        return tuple(f for f in catalog.feeds if f.name in self.feeds)

    def archive_count(self) -> int:
        """How many archives the run writes: rate x hours, at least one."""
        return max(1, round(self.rate * self.hours))


def validate_options(options: SimulationOptions, catalog: Catalog) -> None:
    """Check every option against its allowed range.

    Raises SimulationOptionError naming the first option out of range and what is allowed.
    """
    _within("facilities", options.facilities, 1, MAX_FACILITIES)
    _positive("hours", options.hours)
    _positive("rate", options.rate)
    _positive("size-scale", options.size_scale)
    _within("faults", options.faults, 0.0, 1.0)
    _within("resend-rate", options.resend_rate, 0.0, 1.0)
    _within("late-rate", options.late_rate, 0.0, 1.0)
    if options.encryption not in ENCRYPTIONS:
        raise SimulationOptionError(
            "encryption", f"{options.encryption!r} is not one of {', '.join(ENCRYPTIONS)}"
        )
    known = [f.name for f in catalog.feeds]
    _members("feeds", options.feeds, known)
    _members("fault-kinds", options.fault_kinds, list(FAULT_KINDS))
    if options.feeds is not None and not options.feeds:
        raise SimulationOptionError("feeds", f"name at least one feed of: {', '.join(known)}")
    if options.start.tzinfo is None:
        raise SimulationOptionError("start", "must carry a timezone (naive times are not UTC)")
    if options.archive_count() > 10_000_000:
        raise SimulationOptionError("rate", "rate x hours is over 10,000,000 archives")


def _within(option: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise SimulationOptionError(option, f"{value} is out of range: allowed {low}..{high}")


def _positive(option: str, value: float) -> None:
    if not value > 0:
        raise SimulationOptionError(option, f"{value} is out of range: must be greater than 0")


def _members(option: str, values: tuple[str, ...] | None, known: list[str]) -> None:
    unknown = [v for v in values or () if v not in known]
    if unknown:
        raise SimulationOptionError(
            option, f"unknown {', '.join(map(repr, unknown))}; allowed: {', '.join(known)}"
        )


@dataclass
class SimulationSummary:
    """Counts of one run. Holds no record values, so it is safe to print or log."""

    seed: int
    truth: str
    archives: int = 0
    data_files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    quarantined: int = 0
    resent: int = 0
    interrupted: bool = False
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    bad_rows: dict[str, dict[str, int]] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)

    def total_rows(self) -> int:
        """Good rows over every feed and table."""
        return sum(n for tables in self.rows.values() for n in tables.values())
