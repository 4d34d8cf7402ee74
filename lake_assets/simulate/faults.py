"""The faults a run can inject, which feeds each fits, and the byte-level ones.

Archive-level faults quarantine the whole archive with their reason code; row-level faults
damage some records (reason = the row reason) and the rest of the archive loads. See
docs/landing-contract.md for the codes and counting rules.
"""

from __future__ import annotations

import fnmatch
import random
import zipfile
from dataclasses import dataclass
from io import BytesIO
from typing import Literal

from lake_assets.catalog.models import Feed
from lake_assets.errors import SimulationError
from lake_assets.simulate.units import Damage, Layout

Member = tuple[str, bytes]
# Zeros deflate about 1000:1, far over any sane max_ratio, and 8 MiB is past the 4 MiB the
# ingest streams before it applies the ratio limit (small files compress better than any limit).
RATIO_BOMB_BYTES = 8 * 2**20
MAX_SIZE_BOMB = 64 * 2**20
MAX_MEMBER_BOMB = 20_000
_INVALID_CANDIDATES = (b"\xe9", b"\x81", b"\xff\xfe", b"\x8d", b"\xc3\x28")
_NON_DATA_NAMES = ("manifest.json", "README.pdf", "checksum.sha256")


@dataclass(frozen=True)
class FaultKind:
    """A fault: its quarantine reason, whether it sinks the archive, and the layout damage."""

    reason: str | None
    level: Literal["archive", "row"]
    damage: Damage | None = None
    formats: tuple[str, ...] = ("csv", "delimited", "hl7v2", "xml")


FAULT_KINDS: dict[str, FaultKind] = {
    "corrupt": FaultKind("corrupt", "archive"),
    "truncated": FaultKind("truncated", "archive"),
    "empty": FaultKind("empty", "archive"),
    "wrong_password": FaultKind("wrong_password", "archive"),
    "too_large": FaultKind("too_large", "archive"),
    "bad_encoding": FaultKind("bad_encoding", "archive"),
    "bad_encoding_record": FaultKind("bad_encoding", "archive"),
    "malformed_xml": FaultKind("malformed", "row", "malformed", ("xml",)),
    "bad_hl7_segment": FaultKind("malformed", "row", "malformed", ("hl7v2",)),
    "malformed_row": FaultKind("malformed", "row", "malformed", ("csv", "delimited")),
    "missing_column": FaultKind("missing_column", "row", "missing_column"),
    "extra_column": FaultKind(None, "row", "extra_column"),
    "bad_value": FaultKind("bad_value", "row", "bad_value"),
}


def applicable_faults(feed: Feed, layout: Layout) -> tuple[str, ...]:
    """The fault kinds that make sense for this feed's archive kind, format and encoding."""
    kind = feed.archive.kind
    found: list[str] = ["empty"]
    if kind in ("zip", "gzip"):
        found += ["corrupt", "truncated"]
        if bomb_plan(feed) is not None:
            found.append("too_large")
    if kind == "zip" and feed.archive.password_secret:
        found.append("wrong_password")
    if invalid_bytes(feed.encoding) is not None:
        found += ["bad_encoding", "bad_encoding_record"]
    damages = layout.file_damages | layout.unit_damages
    for name, fault in FAULT_KINDS.items():
        if fault.level == "row" and fault.damage in damages and feed.format.kind in fault.formats:
            found.append(name)
    return tuple(name for name in FAULT_KINDS if name in found)


def invalid_bytes(encoding: str) -> bytes | None:
    """A byte sequence that does not decode in `encoding`, or None if every byte decodes."""
    for candidate in _INVALID_CANDIDATES:
        try:
            candidate.decode(encoding)
        except UnicodeDecodeError:
            return candidate
    return None


def bomb_plan(feed: Feed) -> Literal["ratio", "size", "members"] | None:
    """Which archive limit a cheap bomb can break for this feed, if any."""
    limits = feed.archive
    if limits.max_ratio < 500:
        return "ratio"
    if limits.max_uncompressed < MAX_SIZE_BOMB:
        return "size"
    if feed.archive.kind == "zip" and limits.max_members < MAX_MEMBER_BOMB:
        return "members"
    return None


def bomb_members(feed: Feed, names: list[str]) -> list[Member]:
    """Members over the feed's limits: zeros for ratio or size, else too many tiny files.

    `names` must hold at least max_members + 1 data file names when the plan is "members".
    """
    plan = bomb_plan(feed)
    if plan == "ratio":
        return [(names[0], bytes(RATIO_BOMB_BYTES))]
    if plan == "size":
        return [(names[0], bytes(feed.archive.max_uncompressed + 1))]
    if plan == "members":
        return [(name, b"\n") for name in names[: feed.archive.max_members + 1]]
    raise SimulationError(f"feed {feed.name}: its archive limits are too high for a cheap bomb")


def non_data_name(feed: Feed, rng: random.Random) -> str | None:
    """A member name that does not match the feed's member_pattern, if there is one."""
    names = [n for n in _NON_DATA_NAMES if not fnmatch.fnmatchcase(n, feed.format.member_pattern)]
    return rng.choice(names) if names else None


def spoil_encoding(data: bytes, encoding: str, rng: random.Random, *, whole_file: bool) -> bytes:
    """`data` made undecodable in `encoding`: re-encoded as UTF-16, or one record given a
    byte sequence the encoding rejects. Raises SimulationError if neither works."""
    if whole_file:
        utf16 = data.decode(encoding).encode("utf-16")
        if not _decodes(utf16, encoding):
            return utf16
    bad = invalid_bytes(encoding) or b""
    for _ in range(50):
        position = rng.randrange(len(data) // 4, max(len(data) // 4 + 1, 3 * len(data) // 4))
        around = data[position - 1 : position + 1]
        if not (len(around) == 2 and around.isalnum()):  # between two ASCII letters or digits
            continue
        spoiled = data[:position] + bad + data[position:]
        if not _decodes(spoiled, encoding):
            return spoiled
    raise SimulationError(f"cannot make a data file undecodable in {encoding}")


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def corrupt(data: bytes, *, kind: str, data_damage: bool, rng: random.Random) -> bytes:
    """Damaged bytes. `data_damage` flips bytes inside the first member's compressed data
    (a CRC, inflate or HMAC error); otherwise the leading header is overwritten."""
    spoiled = bytearray(data)
    if not data_damage:
        width = 8 if kind == "zip" else 4
        spoiled[:width] = bytes(b ^ 0x5A for b in spoiled[:width])
        return bytes(spoiled)
    start, end = _payload(data, kind)
    middle = (start + end) // 2
    for position in range(max(start, middle - 4), min(end, middle + 4)):
        spoiled[position] ^= 0xFF
    return bytes(spoiled)


def _payload(data: bytes, kind: str) -> tuple[int, int]:
    if kind == "gzip":
        return 10, len(data) - 8
    with zipfile.ZipFile(BytesIO(data)) as archive:
        info = archive.infolist()[0]
    name_length = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_length = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_length + extra_length
    aes = info.compress_type == 99
    return start + (18 if aes else 0), start + info.compress_size - (10 if aes else 0)


def truncate(data: bytes, *, kind: str, rng: random.Random) -> bytes:
    """The archive cut short inside its member data, so the end is missing."""
    if kind == "gzip":
        return data[: rng.randint(10, len(data) - 9)]
    directory = int.from_bytes(data[-6:-2], "little")  # end-of-central-directory offset field
    return data[: rng.randint(max(31, directory // 10), max(32, directory * 9 // 10))]


def empty_zip() -> bytes:
    """A well-formed zip with no members at all."""
    buffer = BytesIO()
    zipfile.ZipFile(buffer, "w").close()
    return buffer.getvalue()
