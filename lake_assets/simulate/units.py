"""What every format renderer shares: a rendered unit (CSV row, HL7 message, XML document)
with the rows it yields per table, the layout protocol, and the row-level damage kinds.
"""

from __future__ import annotations

import fnmatch
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from lake_assets.catalog.models import Column, Feed, Table
from lake_assets.errors import SimulationError
from lake_assets.simulate.values import ColumnPlan, can_be_bad

Context = dict[str, object]
Damage = Literal["bad_value", "malformed", "missing_column", "extra_column"]
EXTRA_FIELD = "source_system_note"


@dataclass(frozen=True)
class Unit:
    """One rendered unit and the records it yields: good per table, bad per table."""

    text: str
    good: dict[str, int]
    bad: dict[str, int] = field(default_factory=dict)


class Layout(Protocol):
    """Renders a feed's units; a file-level damage returns a variant layout for one file."""

    feed: Feed
    file_damages: frozenset[str]
    unit_damages: frozenset[str]
    leading_damages: frozenset[str]
    """Unit damages that must hit the first unit of a data file."""

    def header(self) -> str:
        """Text that starts every data file ('' when the format has none)."""
        ...

    def render(
        self, context: Context, rng: random.Random, now: datetime, damage: Damage | None
    ) -> Unit:
        """One unit of text for `context`, damaged as asked."""
        ...

    def for_file(self, damage: Damage, rng: random.Random) -> Layout:
        """A variant for one data file with a file-level damage (missing or extra column)."""
        ...


@dataclass
class Tally:
    """Good and bad rows per table, summed over units."""

    _good: Counter[str] = field(default_factory=Counter)
    bad: Counter[str] = field(default_factory=Counter)
    _shared: dict[str, int] | None = None
    _shared_units: int = 0

    def add(self, unit: Unit) -> None:
        """Count one unit; undamaged units of a layout share one counts dict, counted once."""
        if unit.bad:
            self.bad.update(unit.bad)
        elif self._shared is None:
            self._shared = unit.good
        if unit.good is self._shared:
            self._shared_units += 1
        else:
            self._good.update(unit.good)

    @property
    def good(self) -> Counter[str]:
        """Good rows per table."""
        total = Counter(self._good)
        for name, rows in (self._shared or {}).items():
            total[name] += rows * self._shared_units
        return total


def one_each(feed: Feed) -> dict[str, int]:
    """One good row in every table of the feed."""
    return {table.name: 1 for table in feed.tables}


def bad_candidates(
    feed: Feed, plans: dict[tuple[str, str], ColumnPlan], *, skip: frozenset[str] = frozenset()
) -> list[tuple[Table, Column]]:
    """Columns a bad value can go into, excluding sources in `skip`."""
    return [
        (table, column)
        for table in feed.tables
        for column in table.columns
        if can_be_bad(column)
        and column.source_or_name not in skip
        and (table.name, column.name) in plans
    ]


def split_counts(
    feed: Feed, affected: dict[str, int], totals: dict[str, int]
) -> tuple[dict[str, int], dict[str, int]]:
    """Good = totals minus affected; bad = affected, both without zero entries."""
    good = {t.name: totals.get(t.name, 0) - affected.get(t.name, 0) for t in feed.tables}
    return (
        {name: n for name, n in good.items() if n},
        {name: n for name, n in affected.items() if n},
    )


def member_name(feed: Feed, stem: str) -> str:
    """A data file name matching `format.member_pattern` (`*.txt` gives `<stem>.txt`).

    Raises SimulationError when the pattern has classes or ranges the simulator cannot fill.
    """
    pattern = feed.format.member_pattern
    if pattern.strip("*") == "":
        return f"{stem}.{_DEFAULT_EXTENSIONS[feed.format.kind]}"
    name = pattern.replace("*", stem, 1).replace("*", "").replace("?", "x")
    if not fnmatch.fnmatchcase(name, pattern):
        raise SimulationError(
            f"feed {feed.name}: cannot make a file name matching member_pattern {pattern!r}"
        )
    return name


_DEFAULT_EXTENSIONS = {"csv": "csv", "delimited": "txt", "hl7v2": "txt", "xml": "xml"}
