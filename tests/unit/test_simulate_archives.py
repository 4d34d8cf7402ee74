"""Simulated archives: passwords open them, encryption kinds are what was asked, and every
archive-level fault is broken in the way its quarantine reason says."""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import libarchive
import pytest
import pyzipper

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.loader import load_catalog
from lake_assets.catalog.models import Feed
from lake_assets.simulate import FAULT_KINDS, TruthRecord
from tests.conftest import DEV_SECRETS, METADATA
from tests.unit.simulate_readers import members, password, run_simulation

RATIO_FLOOR = 4 * 2**20  # the ingest applies max_ratio only past this many inflated bytes
ZIP_ERRORS = (zipfile.BadZipFile, pyzipper.BadZipFile, RuntimeError, zlib.error, EOFError)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(METADATA)


@pytest.fixture(scope="module")
def faulted(catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """Every archive with one fault: 320 archives over the four feeds."""
    root = tmp_path_factory.mktemp("faulted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAKE_SECRETS_FILE", str(DEV_SECRETS))
        _, _, truth = run_simulation(
            root, catalog, rate=320, faults=1.0, resend_rate=0.0, size_scale=0.02, facilities=6
        )
    return root / "landing", truth


def _read_all(data: bytes, secret: str) -> list[bytes]:
    with pyzipper.AESZipFile(io.BytesIO(data)) as archive:
        archive.setpassword(secret.encode())
        return [archive.read(name) for name in archive.namelist()]


def test_every_fault_kind_appears_with_its_reason_code(faulted: tuple[Path, list]) -> None:
    _, truth = faulted
    kinds = Counter(record.fault for record in truth)
    assert set(kinds) == set(FAULT_KINDS)
    assert all(count >= 5 for count in kinds.values()), kinds
    for record in truth:
        fault = FAULT_KINDS[record.fault]
        assert record.reason == fault.reason
        assert record.status == ("quarantine" if fault.level == "archive" else "good")
        if record.status == "quarantine":
            assert not any(record.rows.values()) and not any(record.bad_rows.values())


@pytest.mark.parametrize("encryption", ["aes", "zipcrypto"])
def test_zips_open_with_the_secret_and_not_without_it(
    catalog: Catalog, tmp_path: Path, encryption: str
) -> None:
    _, _, truth = run_simulation(
        tmp_path, catalog, rate=24, encryption=encryption, feeds=("lab_results", "adt_events")
    )
    assert truth
    for record in truth:
        feed = catalog.feed(record.feed)
        data = (tmp_path / "landing" / record.archive).read_bytes()
        secret = password(feed)
        assert secret is not None
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
        assert all(info.flag_bits & 1 for info in infos)  # every member is encrypted
        assert all((info.compress_type == 99) == (encryption == "aes") for info in infos)
        with_libarchive = [payload for _, payload in members(feed, data)]
        assert with_libarchive == _read_all(data, secret)
        assert sum(len(payload) for payload in with_libarchive) > 0
        with pytest.raises(ZIP_ERRORS):
            _read_all(data, "not-the-password")
        if encryption == "aes":  # ZipCrypto's one check byte lets 1 in 256 wrong ones pass
            with pytest.raises(libarchive.ArchiveError, match="passphrase"):
                members(feed, data, secret="not-the-password")


def _uncompressed(feed: Feed, data: bytes) -> tuple[int, int]:
    if feed.archive.kind == "gzip":
        return len(gzip.decompress(data)), 1
    infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    return sum(info.file_size for info in infos), len(infos)


def _assert_broken(feed: Feed, record: TruthRecord, data: bytes) -> None:
    secret = password(feed) or ""
    kind = feed.archive.kind
    fault = record.fault
    if fault == "empty":
        assert data == b"" or members(feed, data) == []
    elif fault == "truncated" and kind == "zip":
        assert b"PK\x05\x06" not in data  # no end-of-central-directory record
    elif fault in ("truncated", "corrupt") and kind == "gzip":
        with pytest.raises((EOFError, OSError, zlib.error)):
            gzip.decompress(data)
    elif fault in ("corrupt", "wrong_password"):
        with pytest.raises(ZIP_ERRORS):
            _read_all(data, secret)
    elif fault == "too_large":
        size, count = _uncompressed(feed, data)
        limits = feed.archive
        assert (
            size > limits.max_uncompressed
            or (size > RATIO_FLOOR and size > limits.max_ratio * len(data))
            or count > limits.max_members
        )
    elif fault in ("bad_encoding", "bad_encoding_record"):
        texts = [payload for _, payload in members(feed, data)]
        with pytest.raises(UnicodeDecodeError):
            for payload in texts:
                payload.decode(feed.encoding)
    else:
        pytest.fail(f"unexpected archive-level fault {fault}")


def test_archive_level_faults_are_broken_as_their_reason_says(
    catalog: Catalog, faulted: tuple[Path, list]
) -> None:
    root, truth = faulted
    checked = Counter()
    for record in truth:
        if record.status != "quarantine":
            continue
        _assert_broken(catalog.feed(record.feed), record, (root / record.archive).read_bytes())
        checked[record.fault] += 1
    assert set(checked) == {name for name, f in FAULT_KINDS.items() if f.level == "archive"}


def test_wrong_password_archives_open_with_no_guess_of_the_secret(
    catalog: Catalog, faulted: tuple[Path, list]
) -> None:
    root, truth = faulted
    stale = [r for r in truth if r.fault == "wrong_password"]
    assert stale
    for record in stale:
        feed = catalog.feed(record.feed)
        data = (root / record.archive).read_bytes()
        assert zipfile.ZipFile(io.BytesIO(data)).infolist()  # a well-formed zip
        with pytest.raises(ZIP_ERRORS):
            _read_all(data, password(feed) or "")
