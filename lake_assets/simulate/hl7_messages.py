"""HL7 v2.5.1 messages built from column sources like `PID-5.1`.

Every segment a column or selector names appears once per message, so each table gets one
record per message. Segments are separated by `\\r` and a message ends with `\\r\\n`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lake_assets.catalog.models import Column, Feed
from lake_assets.errors import SimulationError
from lake_assets.simulate.units import (
    Context,
    Damage,
    Unit,
    bad_candidates,
    one_each,
    split_counts,
)
from lake_assets.simulate.values import ColumnPlan, bad_token, fails, plan_column

Slot = tuple[str, int, int]
_SOURCE = re.compile(r"^([A-Z][A-Z0-9]{2})-(\d+)(?:\.(\d+))?$")
_STRIP = str.maketrans({c: " " for c in "|^~\\&\r\n"})
_FIRST_SEGMENTS = ("MSH", "EVN", "PID", "PV1")  # the usual ADT order; others follow by name
_GARBLED_MSH = ("MHS", "MS#", "M5H", "XSH")
_TS = "%Y%m%d%H%M%S"
# Standard fields no column maps: sending/receiving application, message type, version.
_FIXED: dict[Slot, str] = {
    ("MSH", 3, 1): "LAKESIM", ("MSH", 5, 1): "LAKEHOUSE", ("MSH", 9, 1): "ADT",
    ("MSH", 11, 1): "P", ("MSH", 12, 1): "2.5.1", ("PID", 1, 1): "1", ("PV1", 1, 1): "1",
}  # fmt: skip
_FROM_CONTEXT: dict[Slot, str] = {
    ("MSH", 7, 1): "event_time", ("MSH", 9, 2): "event_type", ("MSH", 10, 1): "message_id",
    ("EVN", 1, 1): "event_type", ("EVN", 2, 1): "event_time",
}  # fmt: skip


def parse_source(source: str) -> Slot:
    """(segment, field, component) of an HL7 source like `PID-5.1`; component defaults to 1.

    Raises ValueError when the source is not of that form.
    """
    match = _SOURCE.match(source)
    if not match:
        raise ValueError(f"{source!r} is not an HL7 field path like PID-5.1")
    segment, field_no, component = match.groups()
    return segment, int(field_no), int(component or 1)


@dataclass(frozen=True)
class Hl7Layout:
    """A feed's message template: literal separators and one cell per filled component."""

    feed: Feed
    columns: dict[tuple[str, str], ColumnPlan]
    counts: dict[str, int]
    template: tuple[str, ...]
    cells: dict[Slot, int]
    texts: tuple[tuple[int, Callable[[Context, random.Random, datetime], str]], ...]
    from_context: tuple[tuple[int, str], ...]
    file_damages: frozenset[str] = frozenset()
    unit_damages: frozenset[str] = frozenset({"malformed", "bad_value"})
    # A garbled MSH opens its file, so a reader that splits messages at `\r\n` and one that
    # splits at each MSH agree that it is one malformed message.
    leading_damages: frozenset[str] = frozenset({"malformed"})

    def header(self) -> str:
        """HL7 files have no header."""
        return ""

    def for_file(self, damage: Damage, rng: random.Random) -> Hl7Layout:
        """HL7 has no file-level damage; the layout is returned unchanged."""
        return self

    def render(
        self, context: Context, rng: random.Random, now: datetime, damage: Damage | None
    ) -> Unit:
        """One message; `malformed` garbles its MSH, `bad_value` spoils one field."""
        parts = list(self.template)
        for cell, text in self.texts:
            parts[cell] = text(context, rng, now).translate(_STRIP)
        for cell, key in self.from_context:
            parts[cell] = _context_text(context.get(key))
        good, bad = self.counts, {}
        if damage == "bad_value":
            _, column = rng.choice(bad_candidates(self.feed, self.columns, skip=_SKIP))
            token = bad_token(column)
            # Every path of the column, so a fallback path cannot repair it.
            spoiled = {slot for slot in map(parse_source, column.sources) if slot in self.cells}
            for slot in spoiled:
                parts[self.cells[slot]] = token
            affected = {
                t.name: 1
                for t in self.feed.tables
                if any(_spoiled(c, spoiled, token, self.cells) and fails(c, token)
                       for c in t.columns)
            }
            good, bad = split_counts(self.feed, affected, self.counts)
        text = "".join(parts)
        if damage == "malformed":
            text = rng.choice(_GARBLED_MSH) + text[3:]
            good, bad = {}, {self.feed.tables[0].name: 1}
        return Unit(text, good, bad)


_SKIP = frozenset({"MSH-1", "MSH-2"})


def _spoiled(column: Column, spoiled: set[Slot], token: str, cells: dict[Slot, int]) -> bool:
    """Whether `column` reads the spoiled value: its first path carrying a value is spoiled
    (an empty token lets the reader fall back to the next path; paths no message fills are
    empty)."""
    for source in column.sources:
        slot = parse_source(source)
        if slot in spoiled:
            if token:
                return True
        elif slot in cells:
            return False
    return True


def _context_text(value: object) -> str:
    if isinstance(value, datetime):
        fraction = f".{value.microsecond // 100:04d}" if value.microsecond else ""
        return value.strftime(_TS) + fraction
    return "" if value is None else str(value)


def build_hl7_layout(feed: Feed) -> Hl7Layout:
    """The layout of an HL7 feed; raises SimulationError naming a source it cannot place."""
    columns = {(t.name, c.name): plan_column(c) for t in feed.tables for c in t.columns}
    slots: dict[Slot, ColumnPlan] = {}
    names = {"MSH"} | {t.selector for t in feed.tables if t.selector}
    for table in feed.tables:
        for column in table.columns:
            try:
                slot = parse_source(column.source_or_name)
            except ValueError as exc:
                raise SimulationError(
                    f"feed {feed.name}: table {table.name} column {column.name}: {exc}"
                ) from exc
            slots.setdefault(slot, columns[(table.name, column.name)])
            names.add(slot[0])
    order = [s for s in _FIRST_SEGMENTS if s in names]
    order += sorted(names - set(order))
    context_slots = {
        slot: key for slot, key in _FROM_CONTEXT.items() if slot not in slots and slot[0] in names
    }
    fixed = {slot: text for slot, text in _FIXED.items() if slot[0] in names}
    template, cells = _template(order, [*slots, *fixed, *context_slots])
    for slot, text in fixed.items():
        template[cells[slot]] = text
    return Hl7Layout(
        feed=feed,
        columns=columns,
        counts=one_each(feed),
        template=tuple(template),
        cells=cells,
        texts=tuple((cells[slot], plan.text) for slot, plan in slots.items()),
        from_context=tuple((cells[slot], key) for slot, key in context_slots.items()),
    )


def _template(order: list[str], filled: list[Slot]) -> tuple[list[str], dict[Slot, int]]:
    """Message pieces: separators as literals and an empty cell per filled component."""
    width: dict[tuple[str, int], int] = {}
    for segment, field_no, component in filled:
        width[(segment, field_no)] = max(width.get((segment, field_no), 1), component)
    parts: list[str] = []
    cells: dict[Slot, int] = {}
    for index, segment in enumerate(order):
        parts.append(("\r" if index else "") + ("MSH|^~\\&" if segment == "MSH" else segment))
        first = 3 if segment == "MSH" else 1  # MSH-1 and MSH-2 are the separators themselves
        last = max([first - 1] + [f for s, f in width if s == segment])
        for field_no in range(first, last + 1):
            parts.append("|")
            for component in range(1, width.get((segment, field_no), 0) + 1):
                if component > 1:
                    parts.append("^")
                cells[(segment, field_no, component)] = len(parts)
                parts.append("")
    parts.append("\r\n")
    return parts, cells
