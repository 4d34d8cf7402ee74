"""Build one archive: render its data files, pack them, inject its fault, and say in a truth
record what the ingest should load from it."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime

from lake_assets.catalog.models import Feed
from lake_assets.errors import SimulationError
from lake_assets.simulate.archives import AES_SALT_BYTES, aes_verifier, pack_gzip, pack_zip
from lake_assets.simulate.facilities import Facility
from lake_assets.simulate.faults import (
    FAULT_KINDS,
    applicable_faults,
    bomb_members,
    bomb_plan,
    corrupt,
    empty_zip,
    non_data_name,
    spoil_encoding,
    truncate,
)
from lake_assets.simulate.hl7_messages import build_hl7_layout
from lake_assets.simulate.plan import ArchiveSpec
from lake_assets.simulate.render import FeedStats, RenderRequest, render_files
from lake_assets.simulate.streams import Stream, choose_stream
from lake_assets.simulate.text_rows import build_row_layout
from lake_assets.simulate.truth import TruthRecord
from lake_assets.simulate.units import Layout, Tally, member_name
from lake_assets.simulate.xml_docs import build_xml_layout
from lake_assets.storage.secrets import get_secret

Member = tuple[str, bytes]
FACILITY_SEGMENT = 2  # <date>/<hour>/<facility>/ after the feed's prefix
_LAYOUTS = {
    "csv": build_row_layout, "delimited": build_row_layout,
    "hl7v2": build_hl7_layout, "xml": build_xml_layout,
}  # fmt: skip


@dataclass(frozen=True)
class FeedKit:
    """What a run prepares once per feed: layout, stream, password and usable faults."""

    feed: Feed
    layout: Layout
    stream: Stream
    password: str | None
    faults: tuple[str, ...]


@dataclass(frozen=True)
class BuiltArchive:
    """An archive's landing path (relative to the root), its bytes and its truth."""

    path: str
    data: bytes
    truth: TruthRecord


def build_kit(feed: Feed, fault_kinds: tuple[str, ...] | None) -> FeedKit:
    """Prepare a feed. Raises SimulationError or SecretNotFoundError naming what is missing."""
    layout: Layout = _LAYOUTS[feed.format.kind](feed)
    _check_facility_rule(feed)
    secret = feed.archive.password_secret
    password = get_secret(secret) if secret and feed.archive.kind == "zip" else None
    faults = applicable_faults(feed, layout)
    if fault_kinds is not None:
        faults = tuple(f for f in faults if f in fault_kinds)
    return FeedKit(feed, layout, choose_stream(feed), password, faults)


def archive_path(feed: Feed, facility: str, when: datetime, seq: int) -> tuple[str, str]:
    """(path relative to the landing root, file stem) as the landing contract lays them out:
    `<prefix><YYYY-MM-DD>/<HH>/<facility>/<facility>-<feed>-<YYYYMMDDTHHMMSS>-<seq>.<ext>`."""
    stem = f"{facility}-{feed.name}-{when:%Y%m%dT%H%M%S}-{seq:06d}"
    kind = feed.archive.kind
    name = f"{stem}.zip" if kind == "zip" else member_name(feed, stem)
    if kind == "gzip":
        name += ".gz"
    return f"{feed.landing.prefix}{when:%Y-%m-%d/%H}/{facility}/{name}", stem


def build_archive(
    kit: FeedKit,
    spec: ArchiveSpec,
    facility: Facility,
    *,
    now: datetime,
    seed: int,
    stats: FeedStats,
    late_rate: float,
    size_scale: float,
) -> BuiltArchive:
    """The archive `spec` asks for, arriving at `now`, with its truth record."""
    rng = random.Random(f"{seed}:archive:{spec.index}")
    feed = kit.feed
    path, stem = archive_path(feed, facility.code, now, spec.index + 1)
    fault = FAULT_KINDS[spec.fault] if spec.fault else None
    tally, files = Tally(), 0
    if spec.fault in ("empty", "too_large"):
        data = _unreadable(kit, spec, stem, now, rng)
    else:
        request = RenderRequest(
            feed,
            kit.layout,
            kit.stream,
            facility,
            now,
            spec.target_bytes,
            fault.damage if fault else None,
            late_rate,
            size_scale,
        )
        rendered = render_files(request, stats, rng)
        tally, files = rendered.tally, len(rendered.texts)
        members = _encode(kit, spec, stem, rendered.texts, rng)
        data = _pack(kit, spec, members, now, rng)
        stats.learn(sum(map(len, rendered.texts)), len(data), rendered.units)
        data = _break(kit, spec, data, rng)
    return BuiltArchive(path, data, _truth(feed, spec, path, facility.code, tally, files))


def _truth(
    feed: Feed, spec: ArchiveSpec, path: str, facility: str, tally: Tally, files: int
) -> TruthRecord:
    """What the ingest should make of the archive: archive faults load nothing."""
    fault = FAULT_KINDS[spec.fault] if spec.fault else None
    quarantined = fault is not None and fault.level == "archive"
    tables = [t.name for t in feed.tables]
    return TruthRecord(
        archive=path,
        feed=feed.name,
        facility=facility,
        status="quarantine" if quarantined else "good",
        reason=fault.reason if fault else None,
        rows={t: 0 if quarantined else tally.good[t] for t in tables},
        bad_rows={t: 0 if quarantined else tally.bad[t] for t in tables},
        fault=spec.fault,
        data_files=files,
    )


def _encode(
    kit: FeedKit, spec: ArchiveSpec, stem: str, texts: list[str], rng: random.Random
) -> list[Member]:
    feed = kit.feed
    encoded = [text.encode(feed.encoding, errors="replace") for text in texts]
    if spec.fault in ("bad_encoding", "bad_encoding_record"):
        index = rng.randrange(len(encoded))
        whole = spec.fault == "bad_encoding"
        encoded[index] = spoil_encoding(encoded[index], feed.encoding, rng, whole_file=whole)
    if feed.archive.kind != "zip":
        return [(member_name(feed, stem), encoded[0])]
    return [(member_name(feed, f"{stem}-{i:04d}"), data) for i, data in enumerate(encoded, 1)]


def _pack(
    kit: FeedKit, spec: ArchiveSpec, members: list[Member], now: datetime, rng: random.Random
) -> bytes:
    kind = kit.feed.archive.kind
    if kind == "gzip":
        return pack_gzip(members[0][1], when=now)
    if kind == "none":
        return members[0][1]
    salt = rng.randbytes(AES_SALT_BYTES)
    password = kit.password
    if spec.fault == "wrong_password" and password is not None:
        password = _wrong_password(password, salt)
    return pack_zip(members, password=password, encryption=spec.encryption, when=now, salt=salt)


def _wrong_password(password: str, salt: bytes) -> str:
    """A stale password whose AES check bytes differ from the right one's, so no reader can
    mistake it for data corruption (ZipCrypto's one check byte cannot promise that)."""
    right = aes_verifier(password, salt)
    for attempt in range(1, 100):
        wrong = f"{password}-expired-{attempt}"
        if aes_verifier(wrong, salt) != right:
            return wrong
    raise SimulationError("no wrong password differs from the right one")


def _break(kit: FeedKit, spec: ArchiveSpec, data: bytes, rng: random.Random) -> bytes:
    kind = kit.feed.archive.kind
    if spec.fault == "truncated":
        return truncate(data, kind=kind, rng=rng)
    if spec.fault == "corrupt":
        # A CRC error in ZipCrypto looks like a wrong password, so damage its headers instead.
        data_damage = spec.encryption != "zipcrypto" and rng.random() < 0.5
        return corrupt(data, kind=kind, data_damage=data_damage, rng=rng)
    return data


def _unreadable(
    kit: FeedKit, spec: ArchiveSpec, stem: str, now: datetime, rng: random.Random
) -> bytes:
    """An empty archive, or a bomb over the feed's limits; neither holds loadable rows."""
    feed = kit.feed
    kind = feed.archive.kind
    if spec.fault == "empty":
        options = ["zero"] + (["no_members"] if kind == "zip" else [])
        stray = non_data_name(feed, rng) if kind == "zip" else None
        variant = rng.choice([*options, "non_data"] if stray else options)
        if variant == "zero":
            return b""
        members = [] if variant == "no_members" else [(stray or "", b"{}\n")]
        if not members:
            return empty_zip()
    else:
        count = feed.archive.max_members + 1 if bomb_plan(feed) == "members" else 1
        names = [member_name(feed, f"{stem}-{i:05d}") for i in range(1, count + 1)]
        members = bomb_members(feed, names)
        if kind == "gzip":
            return pack_gzip(members[0][1], when=now)
    return _pack(kit, spec, members, now, rng)


def _check_facility_rule(feed: Feed) -> None:
    rule = feed.landing.facility
    if rule.path_segment not in (None, FACILITY_SEGMENT):
        raise SimulationError(
            f"feed {feed.name}: landing.facility.path_segment {rule.path_segment} is not "
            f"supported; the landing contract puts the facility at segment {FACILITY_SEGMENT}"
        )
    if rule.filename_pattern is not None:
        sample = archive_path(feed, "FAC00001", datetime(2025, 1, 1), 1)[0].rsplit("/", 1)[1]
        match = re.search(rule.filename_pattern, sample)
        if not match or match.group("facility") != "FAC00001":
            raise SimulationError(
                f"feed {feed.name}: filename_pattern does not find the facility in {sample!r}"
            )
