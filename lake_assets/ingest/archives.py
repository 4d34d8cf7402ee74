"""Open landed archives (zip with WinZip AES or ZipCrypto, gzip, plain files) within limits.

Headers are never trusted: bytes are counted as they stream, per member and per archive, and
member names are labels only — nothing is ever written to disk under a member's name.
"""

from __future__ import annotations

import ctypes
import fnmatch
import io
import posixpath
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, NoReturn

import libarchive
from libarchive import ffi

from lake_assets.catalog.models import Feed, Table
from lake_assets.errors import ArchiveRejected

CHUNK = 256 * 1024
# Small files compress better than any sane ratio limit allows (a 300-byte zip holding 80 KB of
# repetitive CSV is "400:1"); the ratio limit applies only past this many uncompressed bytes.
RATIO_FLOOR = 4 * 1024 * 1024
_LOCAL_HEADER = b"PK\x03\x04"
_END_RECORD = b"PK\x05\x06"
_AES_METHOD = 99  # WinZip AES: the real method sits in an extra field
_ENCRYPTED_FLAG = 0x1
_UTF8_FLAG = 0x800
_GZIP_MAGIC = b"\x1f\x8b"
_PASSWORD_ERRORS = ("passphrase", "decryption", "authentication", "bad crc", "decompression")


class Encryption(NamedTuple):
    """How one member is encrypted, as its central-directory entry declares.

    libarchive reports that an entry is encrypted but not how; the difference matters when data
    fails to decrypt. ZipCrypto checks a password with one byte, so a wrong one slips through 1
    time in 256 and then fails like damaged data; WinZip AES checks two bytes and then an HMAC,
    so a failure after its check is damage.
    """

    encrypted: bool
    aes: bool


class Member(NamedTuple):
    """One data file of an archive: its name (a label, never a path) and its bytes.

    `problem` says why the member cannot be trusted (its name was altered on the way out of
    the archive, or cannot be read); such a member is quarantined `corrupt`, never parsed.
    """

    name: str
    data: bytes
    problem: str | None = None


class Skipped(NamedTuple):
    """A member that is not a data file: its name and why (`pattern`: no table's member
    pattern matches it; `directory`; `not_a_file`: a link or device)."""

    name: str
    reason: str




@dataclass
class _Budget:
    """Uncompressed bytes and members still allowed for one archive."""

    feed: Feed
    path: str
    compressed: int
    streamed: int = 0
    members: int = 0
    patterns: tuple[str, ...] = ()
    """Every member pattern of the feed, lower-cased."""

    def count_member(self) -> None:
        self.members += 1
        limit = self.feed.archive.max_members
        if self.members > limit:
            self.reject("too_large", f"more than {limit} members (archive.max_members)")

    def count_bytes(self, size: int, *, index: int, declared: int | None, so_far: int) -> None:
        self.streamed += size
        limits = self.feed.archive
        if declared is not None and so_far > declared:
            self.reject(
                "too_large",
                f"member #{index} expands past the {declared:,} bytes its header declares",
            )
        if self.streamed > limits.max_uncompressed:
            self.reject(
                "too_large",
                f"more than {limits.max_uncompressed:,} uncompressed bytes "
                "(archive.max_uncompressed)",
            )
        if self.streamed > RATIO_FLOOR and self.streamed > limits.max_ratio * self.compressed:
            self.reject(
                "too_large",
                f"expands more than {limits.max_ratio:g} times its {self.compressed:,} bytes "
                "(archive.max_ratio)",
            )

    def reject(self, reason: str, message: str) -> NoReturn:
        raise ArchiveRejected(reason, message, path=self.path, feed=self.feed.name)


def iter_members(
    feed: Feed, *, data: bytes, path: str, password: str | None,
    skipped: list[Skipped] | None = None,
) -> Iterator[Member]:
    """Yield the data members of one archive, in archive order, within the feed's limits.

    Members that match no table's member pattern, directories and links are not yielded but
    appended to `skipped` with their reason (they still count towards `max_members`). A zip
    member whose name libarchive reads differently from the central directory (a NUL byte
    truncates it) or cannot read is yielded with its `problem`. Raises ArchiveRejected with
    reason `empty`, `corrupt`, `truncated`, `wrong_password` or `too_large`; members yielded
    before a rejection must be discarded by the caller.
    """
    patterns = tuple(pattern.lower() for pattern in member_patterns(feed))
    budget = _Budget(feed=feed, path=path, compressed=len(data), patterns=patterns)
    if not data:
        budget.reject("empty", "the archive has zero bytes")
    passed = skipped if skipped is not None else []
    kind = feed.archive.kind
    if kind == "zip":
        members = _zip_members(budget, data, password, passed)
    elif kind == "gzip":
        members = _gzip_members(budget, data, passed)
    else:
        members = _plain_members(budget, data, passed)
    found = 0
    for member in members:
        found += 1
        yield member
    if not found:
        patterns = ", ".join(repr(p) for p in member_patterns(feed))
        budget.reject("empty", f"no member matches {patterns} ({len(passed)} skipped)")


def member_patterns(feed: Feed) -> tuple[str, ...]:
    """Every member pattern of the feed: each table's own, else the feed's."""
    return tuple(dict.fromkeys(_pattern(feed, table) for table in feed.tables))


def member_tables(feed: Feed, name: str) -> tuple[Table, ...]:
    """The tables whose member pattern matches `name` (case-insensitive glob on the full
    name); none for a member that is not a data file."""
    lowered = name.lower()
    if not any(t.member_pattern for t in feed.tables):  # the usual feed: one pattern
        matched = fnmatch.fnmatchcase(lowered, feed.format.member_pattern.lower())
        return feed.tables if matched else ()
    return tuple(t for t in feed.tables
                 if fnmatch.fnmatchcase(lowered, _pattern(feed, t).lower()))


def is_data_member(feed: Feed, name: str) -> bool:
    """Whether member `name` is a data file of some table of `feed`."""
    return bool(member_tables(feed, name))


def _pattern(feed: Feed, table: Table) -> str:
    return table.member_pattern or feed.format.member_pattern


def _data_or_skip(budget: _Budget, name: str, skipped: list[Skipped]) -> bool:
    lowered = name.lower()
    if any(fnmatch.fnmatchcase(lowered, pattern) for pattern in budget.patterns):
        return True
    skipped.append(Skipped(name, "pattern"))
    return False


def _plain_members(budget: _Budget, data: bytes, skipped: list[Skipped]) -> Iterator[Member]:
    name = posixpath.basename(budget.path)
    budget.count_member()
    budget.count_bytes(len(data), index=1, declared=None, so_far=len(data))
    if _data_or_skip(budget, name, skipped):
        yield Member(name, data)


def _gzip_members(budget: _Budget, data: bytes, skipped: list[Skipped]) -> Iterator[Member]:
    name = posixpath.basename(budget.path)
    name = name[:-3] if name.lower().endswith(".gz") else name
    if not data.startswith(_GZIP_MAGIC):
        budget.reject("corrupt", "not a gzip file")
    budget.count_member()
    parts: list[bytes] = []
    rest = data
    while rest:
        if not rest.startswith(_GZIP_MAGIC):
            budget.reject("corrupt", "unexpected bytes after the gzip data")
        rest = _inflate_one(budget, rest, parts)
    if _data_or_skip(budget, name, skipped):
        yield Member(name, b"".join(parts))


def _inflate_one(budget: _Budget, data: bytes, parts: list[bytes]) -> bytes:
    """Inflate one gzip stream of `data` into `parts`; returns the bytes after it."""
    inflater = zlib.decompressobj(wbits=31)
    pending = data
    size = sum(len(p) for p in parts)
    try:
        while pending and not inflater.eof:
            out = inflater.decompress(pending, CHUNK)
            pending = inflater.unconsumed_tail
            size += len(out)
            budget.count_bytes(len(out), index=1, declared=None, so_far=size)
            parts.append(out)
    except zlib.error as exc:
        budget.reject("corrupt", f"gzip data is damaged ({exc})")
    if not inflater.eof:
        budget.reject("truncated", "the gzip data ends early")
    return inflater.unused_data


def _zip_members(budget: _Budget, data: bytes, password: str | None,
                 skipped: list[Skipped]) -> Iterator[Member]:
    directory = _zip_directory(budget, data)
    # Without a readable directory entry, assume ZipCrypto when a password was given: the
    # cautious reading of a failure.
    unknown = Encryption(encrypted=bool(password), aes=False)
    current = Encryption(encrypted=False, aes=False)
    index = 0
    try:
        with libarchive.memory_reader(
            data, format_name="zip", filter_name="none", passphrase=password or None
        ) as archive:
            for entry in archive:
                index += 1
                budget.count_member()
                stored = directory[index - 1] if index <= len(directory) else None
                current = _encryption(stored) if stored else unknown
                name = _member_name(entry)
                label = name if name is not None else (
                    stored.orig_filename if stored else f"#{index}")
                if entry.isdir or not entry.isreg:
                    skipped.append(Skipped(label, "directory" if entry.isdir else "not_a_file"))
                    continue
                # Compared by position: a name libarchive truncated may no longer match the
                # pattern, and skipping it would silently drop a data file.
                problem = _name_problem(name, stored, index)
                if problem is None and not _data_or_skip(budget, label, skipped):
                    continue
                # libarchive-c's `get_blocks` lets a warning through as a negative count (and
                # returns the buffer's tail as data); `_stream` reads through the archive's
                # handle instead, which libarchive-c keeps private.
                yield Member(label, _stream(budget, archive._pointer, index, entry.size), problem)
    except libarchive.ArchiveError as exc:
        reason, message = _classify(exc, current=current, has_password=bool(password))
        budget.reject(reason, message if not index else f"member #{index}: {message}")


def _name_problem(name: str | None, stored: zipfile.ZipInfo | None, index: int) -> str | None:
    """Why member `index`'s name cannot be trusted, or None: libarchive could not read it, or
    read it other than the central directory records it (not merely decoded another way)."""
    if name is None:
        return f"member #{index}: its name cannot be read"
    if stored is None or name == stored.orig_filename:
        return None
    if "\x00" in stored.orig_filename:
        return f"member #{index}: its stored name holds a NUL byte and was read cut short"
    read = name.replace("\\", "/")
    utf8 = bool(stored.flag_bits & _UTF8_FLAG)
    raw = stored.orig_filename.encode("utf-8" if utf8 else "cp437")
    for codec in ("utf-8", "cp437", "latin-1"):
        try:
            if raw.decode(codec).replace("\\", "/") == read:
                return None
        except UnicodeDecodeError:
            continue
    return f"member #{index}: its name was read other than the zip directory records it"


def _encryption(stored: zipfile.ZipInfo) -> Encryption:
    return Encryption(bool(stored.flag_bits & _ENCRYPTED_FLAG),
                      stored.compress_type == _AES_METHOD)


def _zip_directory(budget: _Budget, data: bytes) -> list[zipfile.ZipInfo]:
    """Each member's encryption and stored name in central-directory order (libarchive's order
    when it reads a whole zip), from zipfile's reading of the directory (zip64 too); empty when
    the directory is damaged, so libarchive's reading decides.

    Rejects what libarchive would misread: not a zip, or a zip without its end record.
    """
    if not data.startswith((_LOCAL_HEADER, _END_RECORD)):
        budget.reject("corrupt", "not a zip archive")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        if not zipfile.is_zipfile(io.BytesIO(data)):
            budget.reject("truncated", "the zip ends early: no end-of-central-directory record")
        return []


def _stream(budget: _Budget, archive_p: int, index: int, declared: int | None) -> bytes:
    """The bytes of the current entry, counted chunk by chunk against the budget."""
    buffer = ctypes.create_string_buffer(CHUNK)
    parts: list[bytes] = []
    size = 0
    while True:
        count = _read_data(archive_p, buffer, CHUNK)
        if count == 0:
            return b"".join(parts)
        if count < 0:
            # Even a warning here (a bad CRC or HMAC) means the member's bytes are wrong.
            message = ffi.error_string(archive_p) or b"unreadable member data"
            raise libarchive.ArchiveError(message.decode("ascii", "replace"), retcode=count)
        size += count
        budget.count_bytes(count, index=index, declared=declared, so_far=size)
        parts.append(ctypes.string_at(buffer, count))


def _classify(
    exc: libarchive.ArchiveError, *, current: Encryption, has_password: bool
) -> tuple[str, str]:
    """A (reason, message) for a libarchive error; messages carry no member content."""
    text = str(exc.msg or "").lower()
    if "passphrase" in text:
        if not has_password:
            return "wrong_password", "the archive is encrypted and no password was given"
        return "wrong_password", "the password does not open the archive"
    if "truncated" in text or "premature end" in text:
        return "truncated", "the archive ends early"
    if current.encrypted and any(marker in text for marker in _PASSWORD_ERRORS):
        if current.aes:
            # AES checked the password (two bytes) before the data failed its HMAC or inflate.
            return "corrupt", "damaged encrypted data (the password check passed)"
        # ZipCrypto checks a password with one byte: a wrong one passes 1 time in 256 and then
        # fails here as a CRC or inflate error, exactly like damaged bytes would.
        return "wrong_password", "wrong password or corrupt data (decryption check failed)"
    if "unrecognized archive format" in text:
        return "corrupt", "not a readable zip archive"
    return "corrupt", f"damaged zip data ({_safe(text)})"


def _safe(text: str) -> str:
    """libarchive's message, cut short and stripped of anything but plain characters."""
    return "".join(ch for ch in text[:120] if ch.isalnum() or ch in " ()-:,.")


def _member_name(entry: libarchive.ArchiveEntry) -> str | None:
    """The name as a label: as libarchive decodes it (UTF-8), else cp437 (which decodes any
    bytes)."""
    name = entry.pathname
    return name.decode("cp437") if isinstance(name, bytes) else name


def _bind(name: str, argtypes: list[type], restype: type) -> Callable[..., int]:
    """A private binding of a libarchive function, without libarchive-c's error check (which
    logs warnings and lets them through as negative counts)."""
    # Item access returns a fresh function object, so libarchive-c's own bindings are untouched.
    function = ffi.libarchive[name]
    function.argtypes = argtypes
    function.restype = restype
    return function


_read_data = _bind(
    "archive_read_data", [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t], ctypes.c_ssize_t
)
