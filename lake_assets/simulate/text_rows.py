"""CSV and delimited files: a header of column sources, then one row per record.

A row yields one record in every table of the feed; each table reads its columns by source.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from lake_assets.catalog.models import Column, Feed
from lake_assets.simulate.units import (
    EXTRA_FIELD,
    Context,
    Damage,
    Unit,
    bad_candidates,
    one_each,
    split_counts,
)
from lake_assets.simulate.values import ColumnPlan, bad_token, fails, plan_column


@dataclass(frozen=True)
class RowLayout:
    """Column order, quoting and damages of a CSV or delimited feed."""

    feed: Feed
    sources: tuple[str, ...]
    plans: tuple[ColumnPlan, ...]
    texts: tuple[Callable[[Context, random.Random, datetime], str], ...]
    columns: dict[tuple[str, str], ColumnPlan]
    file_damages: frozenset[str]
    unit_damages: frozenset[str]
    counts: dict[str, int]
    bad: dict[str, int]
    extra: bool = False
    leading_damages: frozenset[str] = frozenset()

    def header(self) -> str:
        """The header line, or '' when the feed declares `header: false`."""
        if not self.feed.format.header:
            return ""
        names = [*self.sources, EXTRA_FIELD] if self.extra else list(self.sources)
        return self._line(names)

    def render(
        self, context: Context, rng: random.Random, now: datetime, damage: Damage | None
    ) -> Unit:
        """One row; `bad_value` spoils one field, `malformed` drops one."""
        values = [text(context, rng, now) for text in self.texts]
        if self.extra:
            values.append(f"note {rng.randrange(1000)}")
        if damage == "malformed":
            values = values[:-1] if len(values) > 1 else [*values, "x"]
            return Unit(self._line(values), {}, {self.feed.tables[0].name: 1})
        if damage == "bad_value":
            return self._bad_value(values, rng)
        return Unit(self._line(values), self.counts, self.bad)

    def for_file(self, damage: Damage, rng: random.Random) -> RowLayout:
        """A layout without one non-nullable column, or with an undeclared extra one."""
        if damage == "extra_column":
            return replace(self, extra=True)
        required = sorted({c.source_or_name for _, c in self._all() if not c.nullable})
        dropped = rng.choice([s for s in required if s in self.sources])
        keep = [i for i, s in enumerate(self.sources) if s != dropped]
        affected = {
            t.name: 1
            for t in self.feed.tables
            if any(c.source_or_name == dropped and not c.nullable for c in t.columns)
        }
        good, bad = split_counts(self.feed, affected, one_each(self.feed))
        return replace(
            self,
            sources=tuple(self.sources[i] for i in keep),
            plans=tuple(self.plans[i] for i in keep),
            texts=tuple(self.texts[i] for i in keep),
            counts=good,
            bad=bad,
            unit_damages=frozenset(),
        )

    def _bad_value(self, values: list[str], rng: random.Random) -> Unit:
        _, column = rng.choice(bad_candidates(self.feed, self.columns))
        source, token = column.source_or_name, bad_token(column)
        values[self.sources.index(source)] = token
        affected = {
            t.name: 1
            for t in self.feed.tables
            if any(c.source_or_name == source and fails(c, token) for c in t.columns)
        }
        good, bad = split_counts(self.feed, affected, self.counts)
        return Unit(self._line(values), good, bad)

    def _all(self) -> list[tuple[str, Column]]:
        return [(t.name, c) for t in self.feed.tables for c in t.columns]

    def _line(self, values: list[str]) -> str:
        delimiter = self.feed.format.delimiter or ","
        quote = self.feed.format.quote
        line = delimiter.join(values)
        clean = line.count(delimiter) == len(values) - 1 and "\n" not in line and "\r" not in line
        if self.feed.format.kind == "delimited" or not quote:
            if not clean:  # no quoting here, so separators inside values become blanks
                line = delimiter.join(_blanked(v, delimiter) for v in values)
            return line + "\n"
        if not clean or quote in line:
            line = delimiter.join(_quoted(v, delimiter, quote) for v in values)
        return line + "\r\n"


def build_row_layout(feed: Feed) -> RowLayout:
    """The layout of a CSV or delimited feed: header = union of column sources, in order."""
    columns = {(t.name, c.name): plan_column(c) for t in feed.tables for c in t.columns}
    first: dict[str, ColumnPlan] = {}
    for table in feed.tables:
        for column in table.columns:
            first.setdefault(column.source_or_name, columns[(table.name, column.name)])
    required = any(not c.nullable for t in feed.tables for c in t.columns)
    file_damages = {"extra_column"} if _rescues(feed) else set()
    if required:
        file_damages.add("missing_column")
    if not feed.format.header:
        file_damages = set()
    unit_damages = {"malformed"} | ({"bad_value"} if bad_candidates(feed, columns) else set())
    return RowLayout(
        feed=feed,
        sources=tuple(first),
        plans=tuple(first.values()),
        texts=tuple(plan.text for plan in first.values()),
        columns=columns,
        file_damages=frozenset(file_damages),
        unit_damages=frozenset(unit_damages),
        counts=one_each(feed),
        bad={},
    )


def _rescues(feed: Feed) -> bool:
    return all(t.schema_evolution != "fail" for t in feed.tables)


def _blanked(value: str, delimiter: str) -> str:
    return value.replace(delimiter, " ").replace("\r", " ").replace("\n", " ")


def _quoted(value: str, delimiter: str, quote: str) -> str:
    if delimiter in value or quote in value or "\n" in value or "\r" in value:
        return quote + value.replace(quote, quote + quote) + quote
    return value
