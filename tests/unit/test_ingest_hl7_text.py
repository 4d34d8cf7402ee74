"""HL7 encoding rules: separators, field access checked against python-hl7, escapes, no logs."""

from __future__ import annotations

import logging

import hl7
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lake_assets.ingest.parsers import hl7 as hl7_columns
from lake_assets.ingest.parsers.hl7_text import Encoding, field_value, read_encoding, unescape

MSH = "MSH|^~\\&|EHR|FAC00042"
STANDARD = Encoding("|", "^", "~", "\\", "&")

_leaf = st.text(alphabet="ab1 ", max_size=3)
_sub = st.lists(_leaf, min_size=1, max_size=3).map("&".join)
_component = st.lists(_sub, min_size=1, max_size=3).map("^".join)
_repetition = st.lists(_component, min_size=1, max_size=2).map("~".join)
_segment = st.lists(_repetition, min_size=1, max_size=6).map(lambda f: "|".join(["PID", *f]))


@settings(max_examples=300)
@given(_segment, st.integers(1, 7), st.integers(1, 3), st.integers(1, 3))
def test_field_access_agrees_with_python_hl7(
    segment: str, field: int, component: int, subcomponent: int
) -> None:
    segment = segment.rstrip()  # python-hl7 strips the message's trailing blanks
    parsed = hl7.parse(f"{MSH}\r{segment}").segment("PID")
    try:
        expected = str(parsed.extract_field(1, field, 1, component, subcomponent))
    except IndexError:  # python-hl7 raises for a part past a leaf; HL7 calls that empty
        expected = ""
    fields = segment.split("|")
    assert field_value(fields, field, component, subcomponent, STANDARD) == expected


def test_msh_fields_are_numbered_from_the_separator() -> None:
    fields = "MSH|^~\\&|EHR|FAC00042|LAKE|LAKE|20240115||ADT^A01|MSG1".split("|")
    assert field_value(fields, 1, 1, 1, STANDARD) == "|"
    assert field_value(fields, 2, 1, 1, STANDARD) == "^~\\&"
    assert field_value(fields, 4, 1, 1, STANDARD) == "FAC00042"
    assert field_value(fields, 9, 2, 1, STANDARD) == "A01"
    assert field_value(fields, 10, 1, 1, STANDARD) == "MSG1"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("MSH|^~\\&|EHR", STANDARD),
        ("MSH#$%@*#EHR", Encoding("#", "$", "%", "@", "*")),
        ("MSH|^~\\&#|EHR", STANDARD),
        # Older senders declare fewer encoding characters; the rest are not used.
        ("MSH|^~\\|EHR", Encoding("|", "^", "~", "\\", None)),
        ("MSH|^~}|EHR", Encoding("|", "^", "~", "}", None)),
        ("MSH|^~|EHR", Encoding("|", "^", "~", None, None)),
        ("MSH|^|EHR", None),
        ("MSH|^~\\&#$|EHR", None),
        ("MSH|^^\\&|EHR", None),
        ("MSHA^~\\&|EHR", None),
        ("PID|^~\\&|EHR", None),
        ("MSH|", None),
    ],
)
def test_encoding_characters_come_from_msh(header: str, expected: Encoding | None) -> None:
    assert read_encoding(header) == expected


def test_three_encoding_characters_read_fields_without_subcomponents() -> None:
    encoding = read_encoding("MSH|^~\\|EHR")
    assert encoding is not None
    fields = "PID|1||M1~M2||O\\S\\Brien^Ann&B||x\\T\\y".split("|")
    assert field_value(fields, 3, 1, 1, encoding) == "M1"
    assert field_value(fields, 5, 1, 1, encoding) == "O^Brien"
    assert field_value(fields, 5, 2, 1, encoding) == "Ann&B"  # & is data here
    assert field_value(fields, 5, 2, 2, encoding) == ""
    assert field_value(fields, 7, 1, 1, encoding) == "x\\T\\y"  # no subcomponent to escape


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("O\\S\\Brien", "O^Brien"),
        ("a\\F\\b\\T\\c\\R\\d\\E\\e", "a|b&c~d\\e"),
        ("caf\\XC3A9\\", "caf\u00e9"),
        ("line1\\.br\\line2", "line1\nline2"),
        ("\\H\\bold\\N\\", "bold"),
        ("C:\\temp\\x", "C:\\temp\\x"),
        ("open \\F", "open \\F"),
        ("\\X0G\\", "\\X0G\\"),
        ("\\Zapp\\", "\\Zapp\\"),
    ],
)
def test_escape_sequences(value: str, expected: str) -> None:
    assert unescape(value, STANDARD) == expected


def test_hl7_null_is_empty() -> None:
    assert field_value(["PID", '""'], 1, 1, 1, STANDARD) == ""


def test_bad_escapes_never_log_the_value(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for value in ("SECRET\\\\", "SECRET\\Cxx\\", "SECRET\\Xzz\\", "SECRET\\"):
        unescape(value, STANDARD)
    assert caplog.records == []


_value_leaf = st.one_of(
    st.text(alphabet='ab1 "', max_size=3),
    st.sampled_from(['""', "\\F\\", "x\\S\\y", "\\X41\\", "\\", "\\Q\\", "\\.br\\"]),
)
_value_segment = (
    st.lists(_value_leaf, min_size=1, max_size=3).map("&".join)
    .flatmap(lambda sub: st.lists(st.just(sub) | _value_leaf, min_size=1, max_size=3))
    .map("^".join)
    .flatmap(lambda comp: st.lists(st.just(comp) | _value_leaf, min_size=1, max_size=2))
    .map("~".join)
    .flatmap(lambda rep: st.lists(st.just(rep) | _value_leaf, min_size=0, max_size=6))
)


@settings(max_examples=300)
@given(st.lists(st.none() | _value_segment, min_size=1, max_size=4),
       st.sampled_from(["PID", "MSH"]), st.integers(1, 7), st.integers(1, 3), st.integers(1, 3))
def test_columnar_cut_agrees_with_field_by_field_access(
    segments: list[list[str] | None], name: str, field: int, component: int, subcomponent: int
) -> None:
    head = [name, "^~\\&"] if name == "MSH" else [name]
    texts = [None if s is None else "|".join(head + s) for s in segments]
    path = hl7_columns.FieldPath(name, field, component, subcomponent)

    cut = hl7_columns._cut(pa.array(texts, pa.string()), path).to_pylist()

    assert cut == [None if t is None else field_value(t.split("|"), field, component,
                                                      subcomponent, STANDARD) for t in texts]
