"""Strings that match a column's `checks.regex`, for columns no domain generator knows.

Covers the regex subset metadata uses: literals, escapes (\\d \\w \\s), classes with ranges,
groups, alternation and quantifiers. Anything else is reported, not guessed.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from functools import lru_cache

from lake_assets.errors import SimulationError

Sampler = Callable[[random.Random], str]
_WORD = string.ascii_letters + string.digits
_ESCAPES = {
    "d": string.digits, "w": _WORD, "s": " ", "D": string.ascii_letters, "W": "-", "S": _WORD,
}  # fmt: skip
_OPEN_REPEAT = 3  # extra repetitions drawn for *, + and {m,}


@lru_cache(maxsize=256)
def regex_sampler(pattern: str) -> Sampler:
    """A function drawing strings that fully match `pattern`.

    Raises SimulationError when the pattern uses syntax outside the supported subset.
    """
    compiled = re.compile(pattern)
    try:
        node, end = _alternation(pattern, 0)
    except (IndexError, ValueError) as exc:
        raise SimulationError(f"cannot generate values for regex {pattern!r}: {exc}") from exc
    if end != len(pattern):
        raise SimulationError(f"cannot generate values for regex {pattern!r}: unbalanced ')'")

    def sample(rng: random.Random) -> str:
        for _ in range(20):
            text = node(rng)
            if compiled.fullmatch(text):
                return text
        raise SimulationError(f"cannot generate values for regex {pattern!r}")

    sample(random.Random(0))
    return sample


def _alternation(pattern: str, pos: int) -> tuple[Sampler, int]:
    branches: list[Sampler] = []
    while True:
        branch, pos = _sequence(pattern, pos)
        branches.append(branch)
        if pos < len(pattern) and pattern[pos] == "|":
            pos += 1
            continue
        break
    if len(branches) == 1:
        return branches[0], pos
    return (lambda rng: rng.choice(branches)(rng)), pos


def _sequence(pattern: str, pos: int) -> tuple[Sampler, int]:
    parts: list[Sampler] = []
    while pos < len(pattern) and pattern[pos] not in "|)":
        atom, pos = _atom(pattern, pos)
        low, high, pos = _quantifier(pattern, pos)
        parts.append(_repeat(atom, low, high))
    return (lambda rng: "".join(part(rng) for part in parts)), pos


def _repeat(atom: Sampler, low: int, high: int) -> Sampler:
    if low == high == 1:
        return atom
    return lambda rng: "".join(atom(rng) for _ in range(rng.randint(low, high)))


def _atom(pattern: str, pos: int) -> tuple[Sampler, int]:
    char = pattern[pos]
    if char == "(":
        pos += 1
        if pattern.startswith("?:", pos):
            pos += 2
        elif pattern.startswith("?P<", pos):
            pos = pattern.index(">", pos) + 1
        elif pattern[pos] == "?":
            raise ValueError(f"group syntax {pattern[pos : pos + 3]!r} is not supported")
        inner, pos = _alternation(pattern, pos)
        if pattern[pos] != ")":
            raise ValueError("unbalanced '('")
        return inner, pos + 1
    if char == "[":
        chars, pos = _char_class(pattern, pos + 1)
        return _choice(chars), pos
    if char == "\\":
        escaped = pattern[pos + 1]
        return _choice(_ESCAPES.get(escaped, escaped)), pos + 2
    if char in "^$":
        return (lambda rng: ""), pos + 1
    if char == ".":
        return _choice(_WORD), pos + 1
    if char in "*+?{":
        raise ValueError(f"nothing to repeat at position {pos}")
    return (lambda rng: char), pos + 1


def _char_class(pattern: str, pos: int) -> tuple[str, int]:
    negate = pattern[pos] == "^"
    pos += negate
    chars: list[str] = []
    first = True
    while pattern[pos] != "]" or first:
        first = False
        if pattern[pos] == "\\":
            chars.append(_ESCAPES.get(pattern[pos + 1], pattern[pos + 1]))
            pos += 2
        elif pattern[pos + 1] == "-" and pattern[pos + 2] != "]":
            chars.append("".join(map(chr, range(ord(pattern[pos]), ord(pattern[pos + 2]) + 1))))
            pos += 3
        else:
            chars.append(pattern[pos])
            pos += 1
    allowed = "".join(chars)
    if negate:
        allowed = "".join(c for c in _WORD if c not in allowed)
    if not allowed:
        raise ValueError("empty character class")
    return allowed, pos + 1


def _quantifier(pattern: str, pos: int) -> tuple[int, int, int]:
    if pos >= len(pattern):
        return 1, 1, pos
    char = pattern[pos]
    if char in "*+?":
        low, high = {"*": (0, _OPEN_REPEAT), "+": (1, 1 + _OPEN_REPEAT), "?": (0, 1)}[char]
        pos += 1
    elif char == "{":
        end = pattern.index("}", pos)
        low_text, comma, high_text = pattern[pos + 1 : end].partition(",")
        low = int(low_text or 0)
        high = int(high_text) if high_text else (low + _OPEN_REPEAT if comma else low)
        pos = end + 1
    else:
        return 1, 1, pos
    if pos < len(pattern) and pattern[pos] == "?":
        pos += 1
    return low, high, pos


def _choice(chars: str) -> Sampler:
    return lambda rng: rng.choice(chars)
