"""Render an archive's data files: how many, how big, and where a row-level fault lands."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from lake_assets.catalog.models import Feed
from lake_assets.simulate.facilities import Context, Facility
from lake_assets.simulate.plan import xml_file_count
from lake_assets.simulate.streams import Stream, StreamRequest
from lake_assets.simulate.units import Damage, Layout, Tally

HL7_MESSAGES_PER_FILE = 10  # about 100 files per ADT zip, towards the 200 files per zip at peak
MAX_DAMAGED_UNITS = 3
CHUNK_UNITS = 4096


@dataclass
class FeedStats:
    """Running estimates that turn a compressed size target into records to render."""

    ratio: float = 5.0
    unit_bytes: float = 400.0

    def learn(self, text_chars: int, archive_bytes: int, units: int) -> None:
        """Blend in what the last archive of the feed measured."""
        if archive_bytes and units:
            self.ratio = 0.7 * self.ratio + 0.3 * (text_chars / archive_bytes)
            self.unit_bytes = 0.7 * self.unit_bytes + 0.3 * (text_chars / units)


@dataclass
class Rendered:
    """Data file texts of one archive, and the rows they hold."""

    texts: list[str]
    tally: Tally
    units: int


@dataclass(frozen=True)
class RenderRequest:
    """Everything rendering one archive needs."""

    feed: Feed
    layout: Layout
    stream: Stream
    facility: Facility
    now: datetime
    target_bytes: int
    damage: Damage | None
    late_rate: float
    size_scale: float


def render_files(request: RenderRequest, stats: FeedStats, rng: random.Random) -> Rendered:
    """Render data files until the archive's size target; one fault damage if asked."""
    budgets = _budgets(request, stats, rng)
    expected = sum(b or stats.unit_bytes for b in budgets) / stats.unit_bytes
    contexts = _flatten(
        request.stream(
            StreamRequest(
                request.feed.name,
                request.facility,
                rng,
                request.now,
                max(1, round(expected)),
                request.late_rate,
            )
        )
    )
    layouts, positions = _place_damage(request, budgets, stats, rng)
    rendered = Rendered([], Tally(), 0)
    for index, budget in enumerate(budgets):
        text, units = _render_file(
            layouts.get(index, request.layout),
            contexts,
            budget,
            positions.get(index, set()),
            request.damage,
            rng,
            request.now,
            rendered.tally,
        )
        rendered.texts.append(text)
        rendered.units += units
    return rendered


def _budgets(request: RenderRequest, stats: FeedStats, rng: random.Random) -> list[float | None]:
    """Per data file: a text size to reach, or None for one document per file (XML)."""
    kind, zipped = request.feed.format.kind, request.feed.archive.kind == "zip"
    if kind == "xml":
        return [None] * (xml_file_count(rng, request.size_scale) if zipped else 1)
    text = request.target_bytes * stats.ratio
    if not zipped:
        return [text]
    if kind == "hl7v2":
        count = max(1, round(text / (stats.unit_bytes * HL7_MESSAGES_PER_FILE)))
    else:
        count = rng.randint(1, 3)
    return [text / count * rng.uniform(0.5, 1.5) for _ in range(count)]


def _place_damage(
    request: RenderRequest, budgets: list[float | None], stats: FeedStats, rng: random.Random
) -> tuple[dict[int, Layout], dict[int, set[int]]]:
    """File-level damage: a layout variant for one file. Unit damage: unit positions."""
    damage, layout = request.damage, request.layout
    if damage is None:
        return {}, {}
    if damage in layout.file_damages:
        index = rng.randrange(len(budgets))
        return {index: layout.for_file(damage, rng)}, {}
    count = rng.randint(1, MAX_DAMAGED_UNITS)
    if budgets[0] is None or damage in layout.leading_damages:  # first unit of some files
        chosen = rng.sample(range(len(budgets)), min(count, len(budgets)))
        return {}, {index: {0} for index in chosen}
    index = rng.randrange(len(budgets))
    estimate = max(1, int((budgets[index] or 0) / stats.unit_bytes * 0.8))
    return {}, {index: set(rng.sample(range(estimate), min(count, estimate)))}


def _render_file(
    layout: Layout,
    contexts: Iterator[Context],
    budget: float | None,
    positions: set[int],
    damage: Damage | None,
    rng: random.Random,
    now: datetime,
    tally: Tally,
) -> tuple[str, int]:
    chunks: list[str] = []
    parts = [layout.header()]
    size, index, last = len(parts[0]), 0, max(positions, default=-1)
    while index == 0 or (budget is not None and (size < budget or index <= last)):
        unit = layout.render(next(contexts), rng, now, damage if index in positions else None)
        tally.add(unit)
        parts.append(unit.text)
        size += len(unit.text)
        index += 1
        if len(parts) == CHUNK_UNITS:  # millions of small strings cost more than their text
            chunks.append("".join(parts))
            parts = []
    chunks.append("".join(parts))
    return "".join(chunks), index


def _flatten(batches: Iterator[list[Context]]) -> Iterator[Context]:
    return itertools.chain.from_iterable(batches)
