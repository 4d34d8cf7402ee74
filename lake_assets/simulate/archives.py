"""Pack data files the way facilities send them: zip (WinZip AES-256, ZipCrypto or plain),
gzip, or the bare file.

AES zips are written with pyzipper and a seeded salt, so they are byte-identical across runs
with the same seed. The salt is drawn once per archive and shared by its members, so the
PBKDF2 key derivation (about 1 ms here) runs once per archive, not once per member; readers
still derive per member and must not rely on salts repeating. ZipCrypto zips come from
libarchive, which draws its 12-byte encryption header from the OS, so their bytes differ
between runs while their decrypted contents do not.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

import pyzipper
from Cryptodome.Cipher import AES
from Cryptodome.Hash import HMAC
from Cryptodome.Hash.SHA1 import SHA1Hash
from Cryptodome.Util import Counter
from libarchive.write import custom_writer
from pyzipper.zipfile_aes import AESZipEncrypter

Encryption = Literal["aes", "zipcrypto"]
Member = tuple[str, bytes]
_AES_KEY = 32
AES_SALT_BYTES = 16
_KDF_ROUNDS = 1000  # fixed by the WinZip AES specification


def pack_zip(
    members: Iterable[Member],
    *,
    password: str | None,
    encryption: Encryption | None,
    when: datetime,
    salt: bytes,
) -> bytes:
    """A deflated zip of `members`, encrypted when a password is given.

    `salt` (16 bytes) seeds WinZip AES; ZipCrypto and plain zips ignore it.
    """
    if password is None or encryption is None:
        return _plain_zip(members, when)
    if encryption == "aes":
        return _aes_zip(members, password, when, salt)
    return _zipcrypto_zip(members, password, when)


def pack_gzip(data: bytes, *, when: datetime) -> bytes:
    """One gzip member holding `data`, stamped with `when`."""
    return gzip.compress(data, compresslevel=6, mtime=int(when.timestamp()))


def aes_verifier(password: str, salt: bytes) -> bytes:
    """The two password-check bytes WinZip AES stores for `password` and `salt`."""
    return _aes_keys(password, salt)[2 * _AES_KEY :]


def _aes_keys(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha1", password.encode(), salt, _KDF_ROUNDS, 2 * _AES_KEY + 2)


class _SeededAesEncrypter(AESZipEncrypter):
    """pyzipper's AES-256 encrypter with a given salt and already derived keys."""

    def __init__(self, salt: bytes, keys: bytes) -> None:  # no super(): it draws its own salt
        self.force_wz_aes_version = None
        self.salt_length = AES_SALT_BYTES
        self.aes_strength = 3
        self.salt = salt
        self.encpwdverify = keys[2 * _AES_KEY :]
        counter = Counter.new(nbits=128, little_endian=True)
        self.encrypter = AES.new(keys[:_AES_KEY], AES.MODE_CTR, counter=counter)
        self.hmac = HMAC.new(keys[_AES_KEY : 2 * _AES_KEY], digestmod=SHA1Hash())


class _SeededAesZipFile(pyzipper.AESZipFile):
    """An AESZipFile whose members share one seeded salt."""

    def __init__(self, file: io.BytesIO, *, password: str, salt: bytes) -> None:
        super().__init__(file, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES)
        self.setpassword(password.encode())
        self._salt = salt
        self._keys = _aes_keys(password, salt)

    def get_encrypter(self) -> AESZipEncrypter:
        return _SeededAesEncrypter(self._salt, self._keys)


def _aes_zip(members: Iterable[Member], password: str, when: datetime, salt: bytes) -> bytes:
    buffer = io.BytesIO()
    with _SeededAesZipFile(buffer, password=password, salt=salt) as archive:
        for name, data in members:
            info = pyzipper.zipfile_aes.AESZipInfo(name, date_time=_dos_time(when))
            info.compress_type = pyzipper.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def _zipcrypto_zip(members: Iterable[Member], password: str, when: datetime) -> bytes:
    chunks: list[bytes] = []

    def collect(data: bytes) -> int:
        chunks.append(bytes(data))
        return len(data)

    options = "zip:encryption=zipcrypt,zip:compression=deflate"
    with custom_writer(collect, "zip", options=options, passphrase=password) as archive:
        for name, data in members:
            archive.add_file_from_memory(
                name, len(data), data, permission=0o644, mtime=int(when.timestamp())
            )
    return b"".join(chunks)


def _plain_zip(members: Iterable[Member], when: datetime) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=_dos_time(when))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def _dos_time(when: datetime) -> tuple[int, int, int, int, int, int]:
    return (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second)
