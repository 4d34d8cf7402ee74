"""Rules that span files or models: owners exist, keys are real columns, prefixes don't overlap."""

from __future__ import annotations

from collections.abc import Iterator

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.lineage import output_columns, parse_query, projection_inputs
from lake_assets.catalog.models import Feed, Table
from lake_assets.catalog.table_rules import table_problems
from lake_assets.errors import MetadataError, MetadataProblem


def cross_file_problems(
    catalog: Catalog, *, complete: bool = True, owners: bool = True
) -> list[MetadataProblem]:
    """Every cross-file problem in `catalog`, each naming the file and key path.

    With `complete=False` (some file failed to load) rules that look across feeds are skipped,
    so a broken file does not also show up as a missing reference elsewhere. With `owners=False`
    (owners.yaml did not load) owner references are not judged.
    """
    checks = [
        _duplicate_tables,
        _column_references,
        _selectors,
        _shared_tables_agree,
        _overlapping_prefixes,
        _projection_files,
        _maintenance_columns,
    ]
    if complete:
        checks += [_table_references, _projection_sql]
    if owners:
        checks.append(_unknown_owners)
    return [problem for check in checks for problem in check(catalog)] + table_problems(catalog)


def _projection_sql(catalog: Catalog) -> Iterator[MetadataProblem]:
    """SQL that parses, reads known silver and gold tables only, and has no cycle; checks that
    name only columns the SQL returns."""
    if not all(catalog.sql_path(p).is_file() for p in catalog.projections):
        return  # _projection_files names them
    try:
        projection_inputs(catalog)
    except MetadataError as exc:
        yield from exc.problems
        return
    for projection in catalog.projections:
        if projection.checks is None:
            continue
        path = catalog.sql_path(projection)
        returned = output_columns(parse_query(path.read_text(encoding="utf-8"), file=path.name))
        if returned is None:
            continue  # `SELECT *`: the names are known only once the query runs
        for column in projection.checks.named_columns():
            if column not in returned:
                yield MetadataProblem(
                    catalog.file_of("projection", projection.name), f"checks.{column}",
                    f"the SQL of {projection.sql} returns no column {column!r}; it returns "
                    f"{', '.join(returned)}")


def _unknown_owners(catalog: Catalog) -> Iterator[MetadataProblem]:
    known = set(catalog.owners.teams)
    entries = [("feed", f.name, f.owners, f.subscribers) for f in catalog.feeds]
    entries += [("projection", p.name, p.owners, p.subscribers) for p in catalog.projections]
    for kind, name, owners, subscribers in entries:
        for role, teams in (("owners", owners), ("subscribers", subscribers)):
            for index, team in enumerate(teams):
                if team not in known:
                    yield MetadataProblem(
                        catalog.file_of(kind, name),
                        f"{role}[{index}]",
                        f"team {team!r} is not declared in owners.yaml "
                        f"(known: {', '.join(sorted(known))})",
                    )


def _duplicate_tables(catalog: Catalog) -> Iterator[MetadataProblem]:
    for feed in catalog.feeds:
        seen: set[str] = set()
        for table in feed.tables:
            if table.name in seen:
                yield MetadataProblem(
                    catalog.file_of("feed", feed.name),
                    f"tables[{table.name}].name",
                    f"table {table.name!r} is declared twice in feed {feed.name!r}",
                )
            seen.add(table.name)
            columns: set[str] = set()
            for column in table.columns:
                if column.name in columns:
                    yield MetadataProblem(
                        catalog.file_of("feed", feed.name),
                        f"tables[{table.name}].columns[{column.name}].name",
                        f"column {column.name!r} is declared twice",
                    )
                columns.add(column.name)


def _column_references(catalog: Catalog) -> Iterator[MetadataProblem]:
    for feed in catalog.feeds:
        file = catalog.file_of("feed", feed.name)
        for table in feed.tables:
            for key, name in _named_columns(table):
                if table.column(name) is None:
                    yield _unknown_column(file, table, key, name)


def _table_references(catalog: Catalog) -> Iterator[MetadataProblem]:
    all_tables = {t.name: t for f in catalog.feeds for t in f.tables}
    for feed in catalog.feeds:
        file = catalog.file_of("feed", feed.name)
        for table in feed.tables:
            for index, ref in enumerate(table.checks.references):
                key = f"tables[{table.name}].checks.references[{index}]"
                target = all_tables.get(ref.table)
                if target is None:
                    yield MetadataProblem(file, f"{key}.table", f"no table named {ref.table!r}")
                elif target.column(ref.to_column) is None:
                    yield MetadataProblem(
                        file,
                        f"{key}.to_column",
                        f"table {ref.table!r} has no column {ref.to_column!r}",
                    )


def _named_columns(table: Table) -> Iterator[tuple[str, str]]:
    for index, key in enumerate(table.keys):
        yield f"keys[{index}]", key
    if table.sequence_by:
        yield "sequence_by", table.sequence_by
    if table.deletes:
        yield "deletes.column", table.deletes.column
    for index, ref in enumerate(table.checks.references):
        yield f"checks.references[{index}].column", ref.column


def _unknown_column(file: str, table: Table, key: str, name: str) -> MetadataProblem:
    known = ", ".join(c.name for c in table.columns)
    return MetadataProblem(
        file,
        f"tables[{table.name}].{key}",
        f"{name!r} is not a column of table {table.name!r} (columns: {known})",
    )


def _selectors(catalog: Catalog) -> Iterator[MetadataProblem]:
    for feed in catalog.feeds:
        file = catalog.file_of("feed", feed.name)
        for table in feed.tables:
            message = _selector_problem(feed, table)
            if message:
                yield MetadataProblem(file, f"tables[{table.name}].selector", message)
            if table.cdc != "append" and not table.keys:
                yield MetadataProblem(
                    file, f"tables[{table.name}].keys", f"cdc {table.cdc} needs at least one key"
                )


def _selector_problem(feed: Feed, table: Table) -> str | None:
    kind = feed.format.kind
    if kind in ("xml", "hl7v2") and not table.selector:
        expected = "an XPath such as /Encounter" if kind == "xml" else "a segment id such as PID"
        return f"format {kind} needs a selector: {expected}"
    if kind in ("csv", "delimited") and table.selector:
        return f"format {kind} takes no selector"
    if kind == "hl7v2" and table.selector and not _is_segment(table.selector):
        return f"{table.selector!r} is not an HL7 segment id (three capitals, e.g. PV1)"
    return None


def _is_segment(value: str) -> bool:
    return len(value) == 3 and value.isalnum() and value.upper() == value


def _shared_tables_agree(catalog: Catalog) -> Iterator[MetadataProblem]:
    """Tables of the same name in different feeds fill one silver table, so they must agree."""
    first: dict[str, tuple[Feed, Table]] = {}
    for feed in catalog.feeds:
        for table in feed.tables:
            if table.name not in first:
                first[table.name] = (feed, table)
                continue
            other_feed, other = first[table.name]
            mismatch = _silver_shape(table) != _silver_shape(other)
            if mismatch:
                yield MetadataProblem(
                    catalog.file_of("feed", feed.name),
                    f"tables[{table.name}]",
                    f"table {table.name!r} is also declared by feed {other_feed.name!r} "
                    "with other keys, sequence_by, cdc or column types; "
                    "tables sharing a silver name must agree",
                )


def _silver_shape(table: Table) -> tuple:
    return (
        table.keys,
        table.sequence_by,
        table.cdc,
        sorted((c.name, c.type, c.phi) for c in table.columns),
    )


def _overlapping_prefixes(catalog: Catalog) -> Iterator[MetadataProblem]:
    feeds = sorted(catalog.feeds, key=lambda f: f.landing.prefix)
    for index, feed in enumerate(feeds):
        for other in feeds[index + 1 :]:
            if other.landing.prefix.startswith(feed.landing.prefix):
                yield MetadataProblem(
                    catalog.file_of("feed", other.name),
                    "landing.prefix",
                    f"prefix {other.landing.prefix!r} overlaps {feed.landing.prefix!r} "
                    f"of feed {feed.name!r} ({catalog.file_of('feed', feed.name)})",
                )


def _maintenance_columns(catalog: Catalog) -> Iterator[MetadataProblem]:
    """Z-order columns are declared columns of every table of the feed, or lineage columns
    (whose names start with `_`)."""
    for feed in catalog.feeds:
        for index, column in enumerate(feed.maintenance.zorder_by or ()):
            missing = [t.name for t in feed.tables
                       if not column.startswith("_") and t.column(column) is None]
            if missing:
                yield MetadataProblem(
                    catalog.file_of("feed", feed.name), f"maintenance.zorder_by[{index}]",
                    f"{column!r} is not a column of table(s) {', '.join(missing)}")


def _projection_files(catalog: Catalog) -> Iterator[MetadataProblem]:
    for projection in catalog.projections:
        path = catalog.sql_path(projection)
        if not path.is_file():
            yield MetadataProblem(
                catalog.file_of("projection", projection.name),
                "sql",
                f"SQL file {projection.sql!r} does not exist next to the YAML",
            )
