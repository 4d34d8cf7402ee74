"""Small builders for ingest tests: archives of every kind, damaged ones, and data files."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from collections.abc import Iterable
from typing import Any

import libarchive
import pyzipper

from lake_assets.catalog.loader import load_catalog
from lake_assets.catalog.models import Feed
from tests.conftest import METADATA

PASSWORD = "s3cret-pass"
Members = Iterable[tuple[str | bytes, bytes]]


def feed(name: str, **changes: Any) -> Feed:
    """A shipped feed, with top-level fields replaced (models are frozen, so this is a copy)."""
    found = load_catalog(METADATA).feed(name)
    return found.model_copy(update=changes) if changes else found


def with_table(base: Feed, **changes: Any) -> Feed:
    """`base` with its first table's fields replaced."""
    first = base.tables[0].model_copy(update=changes)
    return base.model_copy(update={"tables": (first, *base.tables[1:])})


def with_archive(base: Feed, **changes: Any) -> Feed:
    """`base` with archive settings replaced (kind, max_members, max_ratio...)."""
    return base.model_copy(update={"archive": base.archive.model_copy(update=changes)})


def aes_zip(members: Members, password: str = PASSWORD) -> bytes:
    """A WinZip AES-256 zip (pyzipper)."""
    buffer = io.BytesIO()
    with pyzipper.AESZipFile(
        buffer, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
    ) as archive:
        archive.setpassword(password.encode())
        for name, data in members:
            archive.writestr(name if isinstance(name, str) else name.decode("cp437"), data)
    return buffer.getvalue()


def zipcrypto_zip(members: Members, password: str = PASSWORD) -> bytes:
    """A ZipCrypto (traditional PKWARE) zip written by libarchive."""
    parts: list[bytes] = []

    def write(chunk: bytes) -> int:
        parts.append(bytes(chunk))
        return len(chunk)

    with libarchive.custom_writer(
        write, "zip", options="encryption=zipcrypt", passphrase=password
    ) as archive:
        for name, data in members:
            archive.add_file_from_memory(name, len(data), data)
    return b"".join(parts)


def plain_zip(members: Members) -> bytes:
    """An unencrypted deflated zip; a bytes name is stored raw (NUL bytes too), without the
    UTF-8 flag (cp437)."""
    buffer = io.BytesIO()
    raw_names: list[tuple[bytes, bytes]] = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            if isinstance(name, bytes):
                placeholder = bytes(b if 0 < b < 0x80 else 0x58 for b in name)
                raw_names.append((placeholder, name))
                name = placeholder.decode("ascii")
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    raw = buffer.getvalue()
    for placeholder, name in raw_names:
        raw = raw.replace(placeholder, name)
    return raw


def gzipped(data: bytes) -> bytes:
    """`data` as a gzip file."""
    return gzip.compress(data)


def lie_about_size(data: bytes, name: str, size: int) -> bytes:
    """`data` (a zip) with member `name`'s uncompressed size patched in every header."""
    patched = bytearray(data)
    encoded = name.encode()
    for signature, size_at, name_len_at, name_at in (
        (b"PK\x03\x04", 22, 26, 30),
        (b"PK\x01\x02", 24, 28, 46),
    ):
        start = patched.find(signature)
        while start != -1:
            length = struct.unpack_from("<H", patched, start + name_len_at)[0]
            if bytes(patched[start + name_at : start + name_at + length]) == encoded:
                struct.pack_into("<I", patched, start + size_at, size)
            start = patched.find(signature, start + 4)
    return bytes(patched)


def lab_csv(rows: list[dict[str, str]], *, extra: dict[str, str] | None = None) -> bytes:
    """A lab_results CSV: good defaults for every column, overridden by each row's values."""
    header = list(LAB_ROW) + list(extra or {})
    lines = [",".join(header)]
    for row in rows:
        values = {**LAB_ROW, **(extra or {}), **row}
        lines.append(",".join(_csv_field(values[name]) for name in header))
    return ("\r\n".join(lines) + "\r\n").encode()


def _csv_field(value: str) -> str:
    if any(ch in value for ch in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


LAB_ROW = {
    "result_id": "R000001",
    "facility_code": "FAC00042",
    "order_id": "O1",
    "mrn": "01234",
    "birth_date": "1980-02-29",
    "test_code": "2345-7",
    "test_name": "Glucose",
    "value": "5.4",
    "unit": "mmol/L",
    "abnormal_flag": "N",
    "status": "F",
    "collected_at": "2024-01-15T10:30:00",
    "resulted_at": "2024-01-15T11:00:00",
}


def hl7_message(
    control_id: str = "MSG1", *, pid: bool = True, extra: tuple[str, ...] = (), event: str = "A01"
) -> str:
    """One ADT message with `\\r` segment ends; `extra` segments go after PV1."""
    segments = [
        f"MSH|^~\\&|EHR|FAC00042|LAKE|LAKE|20240115103000||ADT^{event}^ADT_A01|{control_id}|P|2.5.1",
        "EVN|A01|20240115103000",
    ]
    if pid:
        segments.append(
            "PID|1||MRN123^^^FAC00042^MR~ALT9||Doe^Jane||19800101|F|||1 Main St^^Town^ST^02134"
        )
    segments.append("PV1|1|I|ICU^12^A||||||||||||||||V999|||||||||||||||||||||||||20240115103000")
    segments.extend(extra)
    return "\r".join(segments) + "\r"


def encounter_xml(
    encounter_id: str = "E1", *, diagnoses: int = 2, extra: str = "", patient_extra: str = ""
) -> bytes:
    """One patient_encounters document."""
    ranks = "".join(
        f"<Diagnosis><Rank>{n}</Rank><Code>E11.{n}</Code><System>ICD-10-CM</System></Diagnosis>"
        for n in range(1, diagnoses + 1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Encounter><EncounterId>{encounter_id}</EncounterId><Facility>FAC00042</Facility>"
        f"<Patient><MRN>01234</MRN><Name><Family>Doe</Family></Name>"
        f"<BirthDate>1980-01-01</BirthDate><Age>44</Age>"
        f"<Address><PostalCode>02134</PostalCode></Address>{patient_extra}</Patient>"
        f"<Type>inpatient</Type><AdmitTime>2024-01-15T10:30:00</AdmitTime><DischargeTime/>"
        f"<Attending><NPI>1234567890</NPI></Attending><UpdatedAt>2024-01-16T08:00:00</UpdatedAt>"
        f"<Diagnoses>{ranks}</Diagnoses>{extra}</Encounter>"
    ).encode()


CENSUS_HEADER = "facility_code|snapshot_time|unit|bed_id|bed_type|status|mrn|licensed"


def census_txt(lines: list[str]) -> bytes:
    """A bed_census file in latin-1, with the header row."""
    return ("\n".join([CENSUS_HEADER, *lines]) + "\n").encode("latin-1")
