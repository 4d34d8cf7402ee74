"""XML documents, one per file, built from table selectors and relative column XPaths.

The shallowest selector is the document's record; deeper selectors under it become child
records (e.g. /Encounter/Diagnoses/Diagnosis). A source like `../../EncounterId` reuses the
parent's element, so parent and child records agree.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from lake_assets.catalog.models import Column, Feed, Table
from lake_assets.errors import SimulationError
from lake_assets.simulate.units import (
    EXTRA_FIELD,
    Context,
    Damage,
    Unit,
    bad_candidates,
    split_counts,
)
from lake_assets.simulate.values import ColumnPlan, bad_token, fails, plan_column

_STEP = re.compile(r"^(\.\.|\.|[A-Za-z_][\w.-]*)$")
_SELECTOR = re.compile(r"^(/[A-Za-z_][\w.-]*)+$")
Records = dict[str, list[etree._Element]]


@dataclass(frozen=True)
class XmlLayout:
    """Record paths, column plans and damages of an XML feed."""

    feed: Feed
    root_path: tuple[str, ...]
    children: tuple[tuple[Table, tuple[str, ...]], ...]
    columns: dict[tuple[str, str], ColumnPlan]
    declaration: str
    file_damages: frozenset[str] = frozenset()
    unit_damages: frozenset[str] = frozenset()
    leading_damages: frozenset[str] = frozenset()

    def header(self) -> str:
        """Each XML file holds one document, so there is no shared header."""
        return ""

    def for_file(self, damage: Damage, rng: random.Random) -> XmlLayout:
        """Damage in XML is per document; the layout is returned unchanged."""
        return self

    def render(
        self, context: Context, rng: random.Random, now: datetime, damage: Damage | None
    ) -> Unit:
        """One document; damages spoil one element, add one, or cut the document short."""
        top, records = self._build(context, rng, now)
        totals = {name: len(found) for name, found in records.items()}
        good, bad = {k: v for k, v in totals.items() if v}, {}
        if damage in ("missing_column", "bad_value"):
            good, bad = self._spoil(records, totals, rng, damage)
        elif damage == "extra_column":
            etree.SubElement(records[self.feed.tables[0].name][0], _camel(EXTRA_FIELD)).text = "x"
        text = self.declaration + etree.tostring(top, encoding="unicode") + "\n"
        if damage == "malformed":
            text = text[: rng.randint(len(text) // 3, len(text) - 3)]
            good, bad = {}, {self.feed.tables[0].name: 1}
        return Unit(text, good, bad)

    def _build(
        self, context: Context, rng: random.Random, now: datetime
    ) -> tuple[etree._Element, Records]:
        top = etree.Element(self.root_path[0])
        record = top
        for step in self.root_path[1:]:
            record = etree.SubElement(record, step)
        records: Records = {}
        child_names = {t.name for t, _ in self.children}
        for table in self.feed.tables:
            if table.name not in child_names:
                self._fill(record, table, context, rng, now)
                records[table.name] = [record]
        for table, path in self.children:
            holder = record
            for step in path[:-1]:
                holder = _child(holder, step)
            kids = context.get("children")
            contexts = kids if isinstance(kids, list) else [{} for _ in range(rng.randint(1, 3))]
            records[table.name] = []
            for kid in contexts:
                element = etree.SubElement(holder, path[-1])
                self._fill(element, table, {**context, **kid}, rng, now)
                records[table.name].append(element)
        return top, records

    def _fill(
        self,
        record: etree._Element,
        table: Table,
        context: Context,
        rng: random.Random,
        now: datetime,
    ) -> None:
        for column in table.columns:
            text = self.columns[(table.name, column.name)].text(context, rng, now)
            element = _place(record, column.source_or_name)
            if element.text is None and len(element) == 0:
                element.text = text or None

    def _spoil(
        self, records: Records, totals: dict[str, int], rng: random.Random, damage: Damage
    ) -> tuple[dict[str, int], dict[str, int]]:
        if damage == "missing_column":
            options = [(t, c) for t in self.feed.tables for c in t.columns if not c.nullable]
        else:
            options = bad_candidates(self.feed, self.columns)
        table, column = rng.choice([(t, c) for t, c in options if records[t.name]])
        target = _find(rng.choice(records[table.name]), column.source_or_name)
        if damage == "missing_column":
            failing: Callable[[Column], bool] = lambda c: not c.nullable  # noqa: E731
        else:
            token = bad_token(column)
            failing = lambda c: fails(c, token)  # noqa: E731
        affected = {
            t.name: sum(
                any(failing(c) and _find(r, c.source_or_name) is target for c in t.columns)
                for r in records[t.name]
            )
            for t in self.feed.tables
        }
        if damage == "missing_column":
            target.getparent().remove(target)
        else:
            target.text = token or None
        return split_counts(self.feed, affected, totals)


def _place(record: etree._Element, source: str) -> etree._Element:
    element = record
    for step in source.split("/"):
        if step == "..":
            element = element.getparent()
        elif step != ".":
            element = _child(element, step)
    return element


def _find(record: etree._Element, source: str) -> etree._Element | None:
    element: etree._Element | None = record
    for step in source.split("/"):
        if element is None:
            return None
        if step == "..":
            element = element.getparent()
        elif step != ".":
            element = element.find(step)
    return element


def _child(element: etree._Element, tag: str) -> etree._Element:
    found = element.find(tag)
    return found if found is not None else etree.SubElement(element, tag)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def build_xml_layout(feed: Feed) -> XmlLayout:
    """The layout of an XML feed; raises SimulationError naming a selector or source it
    cannot build (predicates, attributes, namespaces, or a child outside the record)."""
    selectors = {t.name: t.selector or "" for t in feed.tables}
    for table in feed.tables:
        if not _SELECTOR.match(selectors[table.name]):
            raise SimulationError(
                f"feed {feed.name}: table {table.name}: selector {table.selector!r} "
                "must be a plain absolute path like /Encounter/Diagnoses/Diagnosis"
            )
        for column in table.columns:
            if not all(_STEP.match(step) for step in column.source_or_name.split("/")):
                raise SimulationError(
                    f"feed {feed.name}: table {table.name} column {column.name}: source "
                    f"{column.source_or_name!r} must be a plain relative path like Patient/MRN"
                )
    root = min(selectors.values(), key=lambda s: s.count("/"))
    children = []
    for table in feed.tables:
        selector = selectors[table.name]
        if selector == root:
            continue
        if not selector.startswith(root + "/"):
            raise SimulationError(
                f"feed {feed.name}: table {table.name}: selector {selector!r} is not under {root!r}"
            )
        children.append((table, tuple(selector[len(root) + 1 :].split("/"))))
    columns = {(t.name, c.name): plan_column(c) for t in feed.tables for c in t.columns}
    required = any(not c.nullable for t in feed.tables for c in t.columns)
    damages = {"malformed"} | ({"missing_column"} if required else set())
    damages |= {"bad_value"} if bad_candidates(feed, columns) else set()
    if all(t.schema_evolution != "fail" for t in feed.tables):
        damages.add("extra_column")
    return XmlLayout(
        feed=feed,
        root_path=tuple(root.strip("/").split("/")),
        children=tuple(children),
        columns=columns,
        declaration=f'<?xml version="1.0" encoding="{feed.encoding.upper()}"?>\n',
        unit_damages=frozenset(damages),
    )
