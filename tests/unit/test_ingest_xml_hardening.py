"""XML hardening: entity bombs, external entities and DTDs are refused or inert, never fetched."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from lxml import etree

from lake_assets.ingest.parsers import build_parser
from lake_assets.ingest.parsers.xml import hardened_parser
from lake_assets.ingest.records import ParsedFile
from tests.unit.ingest_builders import feed

XML = feed("patient_encounters")
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE Encounter [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">' for n in range(8))
    + "]><Encounter><EncounterId>&i;</EncounterId></Encounter>"
)


class _Recorder(BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Recorder.requests.append(self.path)
        body = b'<!ENTITY leak "fetched">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def server() -> Iterator[str]:
    """A local HTTP server that records every request; yields its base URL."""
    _Recorder.requests = []
    httpd = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _parse(text: str) -> ParsedFile:
    return build_parser(XML)(member="m.xml", text=text)


def test_billion_laughs_is_refused_as_malformed() -> None:
    parsed = _parse(LAUGHS)
    assert parsed.tables == {}
    ((bad,),) = [parsed.bad["encounters"]]
    assert (bad.reason, bad.error) == ("malformed", "XML with a DOCTYPE is not accepted")


def test_hardened_parser_never_expands_the_bomb_even_when_called_directly() -> None:
    try:
        root = etree.fromstring(LAUGHS.encode(), hardened_parser())
    except etree.XMLSyntaxError as exc:  # libxml2's own amplification guard may refuse it
        assert "amplification" in str(exc)
        return
    text = etree.tostring(root)
    assert len(text) < 200
    assert b"aaaaaaaaaa" not in text


def test_external_file_entity_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    document = (
        f'<?xml version="1.0"?><!DOCTYPE Encounter [<!ENTITY x SYSTEM "file://{secret}">]>'
        "<Encounter><EncounterId>&x;</EncounterId></Encounter>"
    )
    assert _parse(document).bad["encounters"][0].reason == "malformed"
    root = etree.fromstring(document.encode(), hardened_parser())
    assert b"TOP-SECRET" not in etree.tostring(root)


def test_external_dtd_and_entities_are_never_fetched(server: str) -> None:
    documents = [
        f'<?xml version="1.0"?><!DOCTYPE Encounter SYSTEM "{server}/evil.dtd">'
        "<Encounter><EncounterId>1</EncounterId></Encounter>",
        f'<?xml version="1.0"?><!DOCTYPE Encounter [<!ENTITY x SYSTEM "{server}/x">]>'
        "<Encounter><EncounterId>&x;</EncounterId></Encounter>",
        f'<?xml version="1.0"?><!DOCTYPE Encounter [<!ENTITY % p SYSTEM "{server}/p"> %p;]>'
        "<Encounter><EncounterId>&leak;</EncounterId></Encounter>",
    ]
    for document in documents:
        assert _parse(document).bad["encounters"][0].reason == "malformed"
        try:
            root = etree.fromstring(document.encode(), hardened_parser())
        except etree.XMLSyntaxError:
            continue
        assert b"fetched" not in etree.tostring(root)
    assert _Recorder.requests == []


def test_xinclude_is_not_processed(tmp_path: Path) -> None:
    secret = tmp_path / "included.xml"
    secret.write_text("<MRN>LEAKED</MRN>")
    document = (
        '<Encounter xmlns:xi="http://www.w3.org/2001/XInclude"><EncounterId>E1</EncounterId>'
        f'<Patient><xi:include href="{secret}"/></Patient></Encounter>'
    )
    parsed = _parse(document)
    assert parsed.tables["encounters"].column("mrn").to_pylist() == [None]
