"""The vocabulary of date and timestamp formats a column may declare, and their strict layouts.

A column's `format` is `hl7` (HL7 v2 DTM/TS: `YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]`), `iso8601`
(`2019-02-17T05:07:38Z`, offsets allowed) or a strptime format made of fixed-width directives. Each
directive stands for an exact number of characters, so a value of another width is rejected instead
of read as another instant (Python's own `strptime` reads `200803051509` with `%Y%m%d%H%M%S` as
15:00:09).
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache

HL7 = "hl7"
ISO8601 = "iso8601"
NAMED_FORMATS = (HL7, ISO8601)
DEFAULT_FORMATS = {"date": "%Y-%m-%d", "timestamp": "%Y-%m-%dT%H:%M:%S"}
DEFAULT_NOT_BEFORE = date(1850, 1, 1)
PRECISION_SUFFIX = "_precision"
PRECISIONS = ("year", "month", "day", "hour", "minute", "second",
              "second.1", "second.2", "second.3", "second.4")
"""What an HL7 value carried: its last unit, or the digits of a fraction of a second."""

# RE2 (Arrow) and Python `re` read these the same way; widths are exact.
_DIRECTIVES = {
    "Y": r"[0-9]{4}", "m": r"[0-9]{2}", "d": r"[0-9]{2}", "H": r"[0-9]{2}", "M": r"[0-9]{2}",
    "S": r"[0-9]{2}", "y": r"[0-9]{2}", "I": r"[0-9]{2}", "j": r"[0-9]{3}",
    "f": r"[0-9]{1,6}", "z": r"(?:Z|[+-][0-9]{2}:?[0-9]{2})", "p": r"(?:[AaPp][Mm])",
    "b": r"[A-Za-z]{3}", "a": r"[A-Za-z]{3}", "B": r"[A-Za-z]{3,9}", "A": r"[A-Za-z]{6,9}",
    "%": "%",
}  # fmt: skip
SUPPORTED_DIRECTIVES = tuple(f"%{code}" for code in _DIRECTIVES if code != "%")


def is_named(fmt: str | None) -> bool:
    """Whether `fmt` is one of the named formats (`hl7`, `iso8601`) rather than strptime."""
    return fmt in NAMED_FORMATS


@cache
def strict_pattern(fmt: str) -> str:
    """An anchored regular expression of every value `fmt` may read, each directive at its
    exact width.

    Raises ValueError naming a directive outside SUPPORTED_DIRECTIVES, or a format without any.
    """
    parts = ["^"]
    found = False
    for token in re.findall(r"%.|%$|[^%]", fmt):
        if not token.startswith("%"):
            parts.append(re.escape(token))
            continue
        code = token[1:]
        if code not in _DIRECTIVES:
            raise ValueError(
                f"format {fmt!r}: directive {token!r} is not supported; use fixed-width "
                f"directives ({' '.join(SUPPORTED_DIRECTIVES)}) or a named format "
                f"({', '.join(NAMED_FORMATS)})"
            )
        found = found or code != "%"
        parts.append(_DIRECTIVES[code])
    if not found:
        raise ValueError(f"format {fmt!r} has no date or time directive")
    return "".join(parts) + "$"


def precision_column(name: str) -> str:
    """The sibling column that keeps the precision an HL7 value was sent with."""
    return f"{name}{PRECISION_SUFFIX}"
