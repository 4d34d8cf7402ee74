"""Archive reading: every kind and encryption, wrong passwords, bombs, hostile names, damage."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import libarchive
import pytest

from lake_assets.catalog.models import Feed
from lake_assets.errors import ArchiveRejected
from lake_assets.ingest.archives import Member, Skipped, iter_members, member_tables
from tests.unit.ingest_builders import (
    PASSWORD,
    Members,
    aes_zip,
    feed,
    gzipped,
    lie_about_size,
    plain_zip,
    with_archive,
    with_table,
    zipcrypto_zip,
)

PATH = "lab_results/2024-01-15/10/FAC00042/FAC00042-lab_results-20240115T100000-000001.zip"
LAB = feed("lab_results")
Builder = Callable[[Members, str], bytes]
ROWS = b"result_id,mrn\nR1,01234\n"


def members(data: bytes, *, of: Feed = LAB, password: str | None = PASSWORD) -> list[Member]:
    return list(iter_members(of, data=data, path=PATH, password=password))


def rejection(data: bytes, *, of: Feed = LAB, password: str | None = PASSWORD) -> ArchiveRejected:
    with pytest.raises(ArchiveRejected) as caught:
        members(data, of=of, password=password)
    return caught.value


@pytest.mark.parametrize("build", [aes_zip, zipcrypto_zip], ids=["aes256", "zipcrypto"])
def test_encrypted_zip_yields_data_members_in_order(build: Builder) -> None:
    data = build([("b.csv", ROWS), ("a.csv", ROWS * 2), ("readme.txt", b"notes")])
    assert members(data) == [Member("b.csv", ROWS), Member("a.csv", ROWS * 2)]


def test_plain_zip_gzip_and_plain_file() -> None:
    assert members(plain_zip([("x.csv", ROWS)]), password=None) == [Member("x.csv", ROWS)]
    gz = with_archive(LAB, kind="gzip", password_secret=None)
    found = list(iter_members(gz, data=gzipped(ROWS), path="d/x.csv.gz", password=None))
    assert found == [Member("x.csv", ROWS)]
    plain = with_archive(LAB, kind="none", password_secret=None)
    assert list(iter_members(plain, data=ROWS, path="d/x.csv", password=None)) == [
        Member("x.csv", ROWS)
    ]


def test_concatenated_gzip_streams_are_one_file() -> None:
    gz = with_archive(LAB, kind="gzip", password_secret=None)
    data = gzipped(ROWS) + gzipped(b"R2,5\n")
    (member,) = iter_members(gz, data=data, path="x.csv.gz", password=None)
    assert member.data == ROWS + b"R2,5\n"


def test_member_pattern_is_case_insensitive_and_skips_directories() -> None:
    data = plain_zip([("sub/", b""), ("sub/X.CSV", ROWS), ("x.json", b"{}")])
    assert [m.name for m in members(data, password=None)] == ["sub/X.CSV"]


@pytest.mark.parametrize("build", [aes_zip, zipcrypto_zip], ids=["aes256", "zipcrypto"])
def test_wrong_or_missing_password(build: Builder) -> None:
    data = build([("a.csv", ROWS)])
    wrong = rejection(data, password="not-it")
    assert (wrong.reason, wrong.feed, wrong.path) == ("wrong_password", "lab_results", PATH)
    assert PATH in str(wrong) and "not-it" not in str(wrong)
    missing = rejection(data, password=None)
    assert missing.reason == "wrong_password"
    assert "no password" in missing.detail


def test_zipcrypto_false_accept_is_reported_as_wrong_password() -> None:
    data = zipcrypto_zip([("a.csv", os.urandom(2000) + ROWS * 500)])
    accepted = next(p for p in (f"guess-{n}" for n in range(20_000)) if _passes_check(data, p))
    error = rejection(data, password=accepted)
    assert error.reason == "wrong_password"
    assert "wrong password or corrupt" in error.detail


def _passes_check(data: bytes, password: str) -> bool:
    """Whether libarchive accepts `password` at ZipCrypto's one-byte check (then fails later)."""
    try:
        with libarchive.memory_reader(data, passphrase=password) as archive:
            for entry in archive:
                for _ in entry.get_blocks():
                    pass
    except libarchive.ArchiveError as exc:
        return "passphrase" not in str(exc.msg).lower()
    return True


def test_damaged_aes_data_is_corrupt_because_aes_checked_the_password() -> None:
    data = bytearray(aes_zip([("a.csv", os.urandom(3000))]))
    data[200] ^= 0xFF
    error = rejection(bytes(data))
    assert error.reason == "corrupt"
    assert "password check passed" in error.detail


def test_damaged_zipcrypto_data_is_wrong_password_or_corrupt() -> None:
    data = bytearray(zipcrypto_zip([("a.csv", os.urandom(3000))]))
    data[200] ^= 0xFF
    error = rejection(bytes(data))
    assert error.reason == "wrong_password"
    assert "wrong password or corrupt" in error.detail


def test_damaged_plain_zip_is_corrupt() -> None:
    data = bytearray(plain_zip([("a.csv", ROWS * 2000)]))
    data[60:90] = b"\x00" * 30
    assert rejection(bytes(data), password=None).reason == "corrupt"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (plain_zip([]), "empty"),
        (plain_zip([("notes.txt", b"x")]), "empty"),
        (b"this is not a zip", "corrupt"),
        (os.urandom(4000), "corrupt"),
    ],
    ids=["zero-bytes", "no-members", "no-data-members", "text", "random"],
)
def test_empty_and_not_a_zip(data: bytes, reason: str) -> None:
    assert rejection(data, password=None).reason == reason


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.999])
def test_truncated_zip(cut: float) -> None:
    data = aes_zip([(f"m{n}.csv", os.urandom(2000)) for n in range(3)])
    assert rejection(data[: int(len(data) * cut)]).reason == "truncated"


def test_truncated_and_corrupt_gzip() -> None:
    gz = with_archive(LAB, kind="gzip", password_secret=None)
    data = gzipped(os.urandom(5000))
    with pytest.raises(ArchiveRejected) as cut:
        list(iter_members(gz, data=data[:-100], path="x.csv.gz", password=None))
    assert cut.value.reason == "truncated"
    damaged = bytearray(data)
    damaged[-6] ^= 0xFF  # the CRC-32 in the trailer
    with pytest.raises(ArchiveRejected) as bad:
        list(iter_members(gz, data=bytes(damaged), path="x.csv.gz", password=None))
    assert bad.value.reason == "corrupt"


def test_ratio_bomb_is_too_large() -> None:
    data = aes_zip([("bomb.csv", b"0" * 20_000_000)])
    error = rejection(data)
    assert error.reason == "too_large"
    assert "max_ratio" in error.detail


def test_member_lying_about_its_size_is_stopped_at_the_declared_size() -> None:
    data = lie_about_size(plain_zip([("a.csv", b"0" * 5_000_000)]), "a.csv", 1000)
    error = rejection(data, password=None)
    assert error.reason == "too_large"
    assert "1,000 bytes its header declares" in error.detail


def test_uncompressed_and_member_count_limits() -> None:
    small = with_archive(LAB, max_uncompressed=100_000)
    data = aes_zip([(f"m{n}.csv", os.urandom(30_000)) for n in range(5)])
    assert "max_uncompressed" in rejection(data, of=small).detail
    few = with_archive(LAB, max_members=3)
    data = aes_zip([(f"m{n}.csv", ROWS) for n in range(4)])
    assert "max_members" in rejection(data, of=few).detail
    assert members(data, of=with_archive(LAB, max_members=4))


def test_gzip_bomb_is_too_large() -> None:
    gz = with_archive(LAB, kind="gzip", password_secret=None, max_uncompressed=1_000_000)
    with pytest.raises(ArchiveRejected) as caught:
        list(iter_members(gz, data=gzipped(b"0" * 3_000_000), path="x.csv.gz", password=None))
    assert caught.value.reason == "too_large"


def test_hostile_names_are_labels_and_nothing_touches_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    names = ["../../escape.csv", "/etc/absolute.csv", "dir\\back.csv", b"r\x82sum\x82.csv"]
    data = plain_zip([(name, ROWS) for name in names])
    found = members(data, password=None)
    labels = [m.name for m in found]
    # libarchive turns a backslash into a slash; either way the name is only a label.
    assert labels[:2] == ["../../escape.csv", "/etc/absolute.csv"]
    assert labels[2] in ("dir\\back.csv", "dir/back.csv")
    assert labels[3] == "r\u00e9sum\u00e9.csv"
    assert all(m.data == ROWS for m in found)
    assert list(tmp_path.iterdir()) == []
    assert not (tmp_path.parent.parent / "escape.csv").exists()


def test_an_unreadable_member_name_is_a_problem_member_not_a_skip() -> None:
    data = plain_zip([("a\u00e9.csv", ROWS)]).replace("\u00e9".encode(), b"\xff\xfe")
    skipped: list[Skipped] = []
    found = list(iter_members(LAB, data=data, path=PATH, password=None, skipped=skipped))
    assert found == [Member("#1", ROWS, "member #1: its name cannot be read")]
    assert skipped == []


def test_every_member_is_yielded_or_skipped_with_its_reason() -> None:
    data = plain_zip([
        (b"a\x00.pdf", ROWS), (b"b.csv\x00", ROWS), ("c.csv", ROWS), ("d/", b""),
        ("e.txt", b"x"), (b"caf\x82.csv", ROWS), ("dir\\f.csv", ROWS),
    ])
    skipped: list[Skipped] = []
    found = list(iter_members(LAB, data=data, path=PATH, password=None, skipped=skipped))
    # libarchive cuts a name at its NUL byte: both are quarantined, whether or not the cut
    # name still matches the pattern; a name decoded another way or with a backslash is fine.
    assert [(m.name, m.problem) for m in found] == [
        ("a", "member #1: its stored name holds a NUL byte and was read cut short"),
        ("b.csv", "member #2: its stored name holds a NUL byte and was read cut short"),
        ("c.csv", None), ("caf\u00e9.csv", None), (found[4].name, None),
    ]
    assert skipped == [Skipped("d/", "directory"), Skipped("e.txt", "pattern")]


def test_tables_may_route_members_by_their_own_pattern() -> None:
    lab = with_table(LAB, member_pattern="results_*.csv")
    assert member_tables(lab, "RESULTS_1.csv") == (lab.tables[0],)
    assert member_tables(lab, "orders.csv") == ()
    skipped: list[Skipped] = []
    data = plain_zip([("results_1.csv", ROWS), ("orders.csv", ROWS)])
    found = list(iter_members(lab, data=data, path=PATH, password=None, skipped=skipped))
    assert [m.name for m in found] == ["results_1.csv"]
    assert skipped == [Skipped("orders.csv", "pattern")]


def test_rejection_pickles_with_its_fields() -> None:
    error = ArchiveRejected("corrupt", "damaged zip data", path=PATH, feed="lab_results")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.detail, copy.path, copy.feed) == (
        "corrupt",
        "damaged zip data",
        PATH,
        "lab_results",
    )
    assert str(copy) == str(error)
