"""HL7 v2 encoding rules: separators from MSH, field/component/subcomponent access, escapes."""

from __future__ import annotations

import re
from typing import NamedTuple

HL7_NULL = '""'
_ESCAPE_BODY = re.compile(r"[A-Za-z0-9.]*")
_FORMATTING = {"H": "", "N": "", ".br": "\n", ".sp": "\n", ".fi": "", ".nf": "", ".ce": ""}


class Encoding(NamedTuple):
    """A message's separators (MSH-1 and MSH-2) and escape character; None for the ones an
    older sender's MSH-2 leaves out."""

    field: str
    component: str
    repetition: str | None
    escape: str | None
    subcomponent: str | None


def read_encoding(header: str) -> Encoding | None:
    """The separators an MSH segment declares; None when it is not a valid MSH.

    Valid: `MSH`, a field separator, then 2 to 5 distinct encoding characters in their fixed
    order (component, repetition, escape, subcomponent; a 5th, v2.7's truncation character, is
    accepted and ignored), none a letter, digit or blank. Real feeds send 3 (`^~\\`, `^~}`):
    the characters left out are simply not used by that sender.
    """
    if len(header) < 6 or not header.startswith("MSH"):
        return None
    separator = header[3]
    if separator.isalnum() or separator.isspace():
        return None
    characters = header[4:].split(separator, 1)[0]
    if (
        not 2 <= len(characters) <= 5
        or len(set(characters)) != len(characters)
        or separator in characters
        or any(ch.isalnum() or ch.isspace() for ch in characters)
    ):
        return None
    padded = [*characters[:4], None, None]
    return Encoding(separator, characters[0], padded[1], padded[2], padded[3])


def field_value(
    fields: list[str], field: int, component: int, subcomponent: int, encoding: Encoding
) -> str:
    """Field `field` (first repetition), component and subcomponent of a split segment.

    Absent parts are "", as is the HL7 null `""`. MSH-1 and MSH-2 are returned as sent.
    """
    if fields[0] == "MSH":
        if field <= 2:
            return encoding.field if field == 1 else fields[1]
        index = field - 1  # MSH-1 is the separator itself, so MSH-n sits at n - 1
    else:
        index = field
    if index >= len(fields):
        return ""
    value = fields[index]
    if encoding.repetition is not None:
        value = value.split(encoding.repetition, 1)[0]
    value = _part(value, component, encoding.component)
    value = _part(value, subcomponent, encoding.subcomponent)
    if value == HL7_NULL:
        return ""
    escape = encoding.escape
    return unescape(value, encoding) if escape is not None and escape in value else value


def _part(value: str, number: int, separator: str | None) -> str:
    if separator is None or separator not in value:
        return value if number == 1 else ""
    parts = value.split(separator)
    return parts[number - 1] if number <= len(parts) else ""


def unescape(value: str, encoding: Encoding) -> str:
    """Decode HL7 escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh\\, formatting).

    An unknown or unterminated sequence is kept as it was sent; nothing is ever logged.
    """
    esc = encoding.escape
    if esc is None:
        return value
    separators = {"F": encoding.field, "S": encoding.component, "T": encoding.subcomponent,
                  "R": encoding.repetition, "E": esc}
    known = {**{k: v for k, v in separators.items() if v is not None}, **_FORMATTING}
    out: list[str] = []
    position = 0
    while True:
        start = value.find(esc, position)
        end = value.find(esc, start + 1) if start >= 0 else -1
        if end < 0:
            out.append(value[position:])
            return "".join(out)
        out.append(value[position:start])
        body = value[start + 1 : end]
        decoded = _decode(body, known) if _ESCAPE_BODY.fullmatch(body) else None
        out.append(value[start : end + 1] if decoded is None else decoded)
        position = end + 1


def _decode(body: str, known: dict[str, str]) -> str | None:
    """The text of one escape sequence, or None when it is not one we can decode."""
    if body in known:
        return known[body]
    if body.startswith("X") and len(body) > 1 and len(body) % 2 == 1:
        try:
            raw = bytes.fromhex(body[1:])
        except ValueError:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    return None
