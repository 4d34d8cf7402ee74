"""What a zip's central directory says about each member's encryption, read without libarchive.

libarchive reports that an entry is encrypted but not how; the difference matters when data
fails to decrypt. ZipCrypto checks a password with one byte, so a wrong one slips through 1 time
in 256 and then fails like damaged data; WinZip AES checks two bytes and then an HMAC, so a
failure after its check is damage.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

EOCD = b"PK\x05\x06"
_CENTRAL = b"PK\x01\x02"
_EOCD_SIZE = 22
_CENTRAL_SIZE = 46
_AES_METHOD = 99
_ENCRYPTED_FLAG = 0x1


class Encryption(NamedTuple):
    """How one member is encrypted, as its central-directory entry declares."""

    encrypted: bool
    aes: bool


def find_end_record(data: bytes) -> int:
    """Offset of the end-of-central-directory record, or -1 when there is none."""
    end = data.rfind(EOCD, max(0, len(data) - 65_535 - _EOCD_SIZE))
    return end if end >= 0 and len(data) - end >= _EOCD_SIZE else -1


def member_encryption(data: bytes) -> list[Encryption] | None:
    """Each member's encryption, in central-directory order (libarchive's order when it reads a
    whole zip); None when the directory cannot be walked (zip64, damage)."""
    end = find_end_record(data)
    if end < 0:
        return None
    count, size, offset = struct.unpack_from("<HII", data, end + 10)
    if offset + size > end:
        return None
    found: list[Encryption] = []
    position = offset
    for _ in range(count):
        if data[position : position + 4] != _CENTRAL or position + _CENTRAL_SIZE > end:
            return None
        flags, method = struct.unpack_from("<HH", data, position + 8)
        name, extra, comment = struct.unpack_from("<HHH", data, position + 28)
        found.append(Encryption(bool(flags & _ENCRYPTED_FLAG), method == _AES_METHOD))
        position += _CENTRAL_SIZE + name + extra + comment
    return found
