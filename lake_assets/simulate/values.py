"""Column values from metadata: take the record context, else a domain generator by column
name, else a generic value from the column's type, checks and PHI tag; then format as text.

A value that breaks the column's checks is replaced by a generic one, so good rows pass them.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from lake_assets.catalog.models import Column
from lake_assets.simulate.domain import ADT_EVENT_WEIGHTS, ALIASES, ICD10_CODES, LAB_TESTS
from lake_assets.simulate.patterns import regex_sampler

Context = dict[str, object]
Maker = Callable[[random.Random, datetime], object]
DEFAULT_FORMATS = {"date": "%Y-%m-%d", "timestamp": "%Y-%m-%dT%H:%M:%S"}
# How the simulator writes the named formats (what most senders send: seconds, no offset).
NAMED_LAYOUTS = {
    ("hl7", "date"): "%Y%m%d", ("hl7", "timestamp"): "%Y%m%d%H%M%S",
    ("iso8601", "date"): "%Y-%m-%d", ("iso8601", "timestamp"): "%Y-%m-%dT%H:%M:%SZ",
}  # fmt: skip
# Each fails conversion to every non-string type; none reads as null in common CSV readers.
BAD_TOKENS = {
    "integer": "12x", "long": "12x", "double": "1.2.3", "boolean": "maybe",
    "date": "not-a-date", "timestamp": "not-a-time",
}  # fmt: skip
GENERIC_NULL_RATE = 0.02
_MISSING = object()


@dataclass(frozen=True)
class ColumnPlan:
    """How one column gets its text in a good record: `text(context, rng, now)`; '' is null."""

    column: Column
    key: str
    text: Callable[[Context, random.Random, datetime], str]


def plan_column(column: Column) -> ColumnPlan:
    """The plan of `column`; raises SimulationError if its regex cannot be generated."""
    key = ALIASES.get(column.name, column.name)
    named = _by_name(key)
    generic = _generic(column)
    fmt = _formatter(column)
    fits = _fits(column)
    nullable = column.nullable

    def required(rng: random.Random, now: datetime) -> str:
        return fmt(_non_null(generic, rng, now))

    def fallback(rng: random.Random, now: datetime) -> str:
        if nullable and rng.random() < GENERIC_NULL_RATE:
            return ""
        return required(rng, now)

    def text(context: Context, rng: random.Random, now: datetime) -> str:
        # The hot path of the simulator, once per value: no further call when the context
        # already holds a string that passes the checks.
        value = context.get(key, _MISSING)
        if value is _MISSING:
            if named is None:
                return fallback(rng, now)
            value = named(rng, now)
        if value is None or value == "":
            return "" if nullable else required(rng, now)
        rendered = value if isinstance(value, str) else fmt(value)
        if fits is not None and not fits(rendered):
            return required(rng, now)
        return rendered

    return ColumnPlan(column=column, key=key, text=text)


def format_value(column: Column, value: object) -> str:
    """Render a Python value as the column's text (dates by the column's `format`)."""
    kind = column.type
    if kind in ("date", "timestamp") and isinstance(value, date):
        if kind == "timestamp" and not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        fmt = column.format or DEFAULT_FORMATS[kind]
        text = value.strftime(NAMED_LAYOUTS.get((fmt, kind), fmt))
        if fmt == "hl7" and kind == "timestamp" and getattr(value, "microsecond", 0):
            text += f".{value.microsecond // 100:04d}"  # DTM's finest: 1/10,000 s
        return text
    if kind == "boolean" and isinstance(value, bool):
        return "true" if value else "false"
    if kind == "double" and isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if kind in ("integer", "long") and isinstance(value, float):
        return str(int(value))
    return str(value)


def _formatter(column: Column) -> Callable[[object], str]:
    """A fast formatter for the column's type; dates and timestamps are cached because many
    records share them (an order's results, a snapshot's beds, a message's event time)."""
    kind = column.type
    if kind not in ("date", "timestamp"):
        return lambda value: value if value.__class__ is str else format_value(column, value)
    cache: dict[object, str] = {}

    def cached(value: object) -> str:
        text = cache.get(value)
        if text is None:
            if len(cache) > 4096:
                cache.clear()
            text = cache[value] = format_value(column, value)
        return text

    return cached


def bad_token(column: Column) -> str:
    """A value that makes this column a bad_value: unconvertible, or '' (null) for strings."""
    return BAD_TOKENS.get(column.type, "")


def fails(column: Column, token: str) -> bool:
    """Whether `token` in this column makes the record a bad_value."""
    if token == "":
        return not column.nullable
    return column.type != "string"


def can_be_bad(column: Column) -> bool:
    """Whether a bad value can be injected into this column at all."""
    return column.type != "string" or not column.nullable


def _non_null(make: Maker, rng: random.Random, now: datetime) -> object:
    for _ in range(50):
        value = make(rng, now)
        if value is not None and value != "":
            return value
    return "x"


def _by_name(key: str) -> Maker | None:
    tests = [t.code for t in LAB_TESTS]
    events = [e for e, _ in ADT_EVENT_WEIGHTS]
    makers: dict[str, Maker] = {
        "test_code": lambda rng, now: rng.choice(tests),
        "test_name": lambda rng, now: rng.choice(LAB_TESTS).name,
        "code": lambda rng, now: rng.choice(ICD10_CODES),
        "event_type": lambda rng, now: rng.choice(events),
        "attending_npi": lambda rng, now: f"1{rng.randrange(10**9):09d}",
        "mrn": lambda rng, now: f"{rng.randrange(10**10):010d}",
        "sex": lambda rng, now: rng.choice("FM"),
    }
    if key.endswith("_npi"):
        return makers["attending_npi"]
    return makers.get(key)


def _generic(column: Column) -> Maker:
    checks = column.checks
    if checks.allowed:
        allowed = list(checks.allowed)
        return lambda rng, now: rng.choice(allowed)
    if checks.regex:
        sampler = regex_sampler(checks.regex)
        return lambda rng, now: sampler(rng)
    low = checks.range.min if checks.range and checks.range.min is not None else None
    high = checks.range.max if checks.range and checks.range.max is not None else None
    return _by_type(column, low, high)


def _by_type(column: Column, low: float | None, high: float | None) -> Maker:
    kind, name = column.type, column.name
    if kind in ("integer", "long"):
        lo, hi = int(low if low is not None else 0), int(high if high is not None else 1000)
        if column.phi == "age":
            lo, hi = max(lo, 0), min(hi, 100)
        return lambda rng, now: rng.randint(lo, hi)
    if kind == "double":
        lo_f, hi_f = low if low is not None else 0.0, high if high is not None else 1000.0
        return lambda rng, now: rng.uniform(lo_f, hi_f)
    if kind == "boolean":
        return lambda rng, now: rng.random() < 0.5
    if kind == "date":
        span = 90 * 365 if column.phi == "year_only" or "birth" in name else 365
        return lambda rng, now: (now - timedelta(days=rng.randrange(span))).date()
    if kind == "timestamp":
        return lambda rng, now: now - timedelta(seconds=rng.randrange(3600))
    return _string_maker(column)


def _string_maker(column: Column) -> Maker:
    if column.phi == "zip3":
        return lambda rng, now: f"{rng.randrange(100000):05d}"
    if column.phi == "hash" or column.name.endswith(("_id", "_number")):
        return lambda rng, now: f"{rng.randrange(10**10):010d}"
    length = column.checks.length
    lo = int(length.min) if length and length.min is not None else 6
    hi = int(length.max) if length and length.max is not None else max(lo, 12)
    hi = min(hi, lo + 24)
    letters = string.ascii_uppercase + string.digits
    return lambda rng, now: "".join(rng.choices(letters, k=rng.randint(lo, hi)))


def _fits(column: Column) -> Callable[[str], bool] | None:
    """Whether a text passes the column's checks; None when the column has none."""
    checks = column.checks
    tests: list[Callable[[str], bool]] = []
    if checks.allowed:
        tests.append(frozenset(checks.allowed).__contains__)
    if checks.regex:
        tests.append(_regex_test(checks.regex))
    if checks.length:
        lo, hi = checks.length.min or 0, checks.length.max or float("inf")
        tests.append(lambda text: lo <= len(text) <= hi)
    if checks.range and column.type in ("integer", "long", "double"):
        low, high = checks.range.min, checks.range.max
        tests.append(lambda text: _in_range(text, low, high))
    if not tests:
        return None
    if len(tests) == 1:
        return tests[0]

    def every(text: str) -> bool:
        return all(test(text) for test in tests)

    return every


def _regex_test(pattern: str) -> Callable[[str], bool]:
    """A regex full match, remembered per text: checked columns repeat a few values a lot."""
    compiled = re.compile(pattern)
    seen: dict[str, bool] = {}

    def test(text: str) -> bool:
        found = seen.get(text)
        if found is None:
            if len(seen) > 4096:
                seen.clear()
            found = seen[text] = compiled.fullmatch(text) is not None
        return found

    return test


def _in_range(text: str, low: float | None, high: float | None) -> bool:
    try:
        number = float(text)
    except ValueError:
        return False
    return (low is None or number >= low) and (high is None or number <= high)
