"""XML data files: one document per file, records selected by XPath, columns relative to them.

The parser is hardened: no entity expansion, no DTD loading, no network, no huge trees, and a
document carrying a DOCTYPE is refused before it is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from lake_assets.catalog.models import Feed
from lake_assets.errors import ColumnSourceError
from lake_assets.ingest.records import BadRecord, ParsedFile, RawTable, Unknown, to_json


@dataclass(frozen=True)
class TableLayout:
    """One table: its compiled record selector and column XPaths."""

    name: str
    selector: etree.XPath
    columns: tuple[tuple[str, etree.XPath], ...]


@dataclass(frozen=True)
class Layout:
    """A feed's compiled XPaths and its hardened parser; build one per archive or thread."""

    tables: tuple[TableLayout, ...]
    parser: etree.XMLParser


def build_layout(feed: Feed) -> Layout:
    """Compile every selector and column XPath of `feed` once.

    Raises ColumnSourceError naming the feed, table and column of an XPath that does not compile.
    """
    tables = []
    for table in feed.tables:
        where = f"feed {feed.name} table {table.name}"
        selector = _compile(table.selector or "", f"{where} selector")
        columns = tuple(
            (c.name, _compile(c.source_or_name, f"{where} column {c.name} source"))
            for c in table.columns
        )
        tables.append(TableLayout(table.name, selector, columns))
    return Layout(tuple(tables), hardened_parser())


def hardened_parser() -> etree.XMLParser:
    """An lxml parser that never expands entities, loads DTDs or touches the network."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        encoding="utf-8",
    )


def _compile(expression: str, where: str) -> etree.XPath:
    try:
        return etree.XPath(expression)
    except etree.XPathSyntaxError as exc:
        raise ColumnSourceError(f"{where}: {expression!r} is not a valid XPath ({exc})") from exc


def parse(layout: Layout, *, member: str, text: str) -> ParsedFile:
    """Records of every table from one XML document.

    A document that is not well-formed, carries a DOCTYPE, or has no record of the first table
    is one `malformed` bad record of the first table.
    """
    parsed = ParsedFile()
    first = layout.tables[0].name
    error = _refusal(text)
    root = None
    if error is None:
        try:
            root = etree.fromstring(text.encode("utf-8"), layout.parser)
        except etree.XMLSyntaxError as exc:
            error = f"not well-formed XML (line {exc.lineno})"
    if root is not None and not layout.tables[0].selector(root):
        error = "no record matches the first table's selector"
    if error is not None or root is None:
        parsed.add_bad(first, BadRecord(member, "malformed", error or "", to_json(text)))
        return parsed
    _read_records(layout, root, parsed)
    return parsed


def _refusal(text: str) -> str | None:
    if "<!DOCTYPE" in text:
        return "XML with a DOCTYPE is not accepted"
    return None


def _read_records(layout: Layout, root: etree._Element, parsed: ParsedFile) -> None:
    mapped: set[etree._Element] = set()
    owners: dict[etree._Element, Unknown] = {}
    for table in layout.tables:
        records = table.selector(root)
        rows: dict[str, list[str | None]] = {name: [] for name, _ in table.columns}
        unknown: list[Unknown | None] = []
        for record in records:
            for name, xpath in table.columns:
                rows[name].append(_first_value(xpath(record), mapped))
            fields: Unknown = {}
            owners.setdefault(record, fields)
            unknown.append(owners[record])
        parsed.tables[table.name] = RawTable(columns=dict(rows), unknown=unknown)
    _rescue_leaves(root, mapped, owners)
    for raw in parsed.tables.values():
        raw.unknown = [fields or None for fields in raw.unknown]


def _first_value(result: object, mapped: set[etree._Element]) -> str | None:
    """The text of the first node an XPath found: "" for an empty element, None for no node."""
    if isinstance(result, list):
        if not result:
            return None
        node = result[0]
        if isinstance(node, etree._Element):
            mapped.add(node)
            return node.text or ""
        parent = getattr(node, "getparent", lambda: None)()
        if isinstance(parent, etree._Element):
            mapped.add(parent)
        return str(node)
    if isinstance(result, bool):
        return "true" if result else "false"
    if isinstance(result, float):
        return repr(result) if not result.is_integer() else str(int(result))
    return None if result is None else str(result)


def _rescue_leaves(
    root: etree._Element, mapped: set[etree._Element], owners: dict[etree._Element, Unknown]
) -> None:
    """Put every unmapped leaf element into the unknown fields of its nearest record."""
    for element in root.iter():
        if len(element) or element in mapped or element in owners:
            continue
        if not isinstance(element.tag, str):
            continue
        path = [etree.QName(element).localname]
        for ancestor in element.iterancestors():
            fields = owners.get(ancestor)
            if fields is not None:
                _add(fields, "/".join(reversed(path)), element.text or "")
                break
            path.append(etree.QName(ancestor).localname)


def _add(fields: Unknown, key: str, value: str) -> None:
    if key not in fields:
        fields[key] = value
        return
    current = fields[key]
    if isinstance(current, list):
        current.append(value)
    else:
        fields[key] = [current, value]
