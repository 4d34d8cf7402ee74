"""What a change to one table or projection breaks: removed columns, narrowed types, changed
keys or CDC mode, weakened PHI tags, and projection columns that downstream SQL still reads.

Each finding has a stable id (`<asset>:<kind>[:<subject>]`) that an `acknowledge:` entry in the
changed YAML file names to accept it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from lake_assets.catalog.models import Column, ColumnType, PhiTag, Table

# Types a column may move to without losing values (every type also widens to string).
_WIDER: dict[ColumnType, tuple[ColumnType, ...]] = {
    "integer": ("long", "double"),
    "long": ("double",),
    "date": ("timestamp",),
}
# How much of the value a tag lets through: a lower rank reveals more.
PHI_RANK: dict[PhiTag | None, int] = {
    None: 0, "age": 1, "zip3": 2, "year_only": 2, "hash": 3, "redact": 4,
}


@dataclass(frozen=True)
class Breaking:
    """A change that can break readers: its id, the asset, what happened, and whether it
    weakens PHI protection (always reported, acknowledged or not)."""

    id: str
    asset: str
    message: str
    phi: bool = False


def narrows(old: ColumnType, new: ColumnType) -> bool:
    """Whether values of type `old` may not survive as type `new`."""
    return old != new and new != "string" and new not in _WIDER.get(old, ())


def table_breaking(asset: str, old: Table, new: Table) -> list[Breaking]:
    """Breaking changes between two versions of one table, reported on `asset`."""
    found = []
    before = {c.name: c for c in old.columns}
    after = {c.name: c for c in new.columns}
    for name, column in before.items():
        if name not in after:
            renamed = _renamed_to(column, old, new)
            hint = f" (renamed to {renamed}?)" if renamed else ""
            found.append(Breaking(f"{asset}:column_removed:{name}", asset,
                                  f"column {name} removed{hint}"))
            continue
        found += _column_breaking(asset, column, after[name])
    if old.keys != new.keys or old.sequence_by != new.sequence_by:
        found.append(Breaking(f"{asset}:keys_changed", asset,
                              f"keys {list(old.keys)} by {old.sequence_by} -> {list(new.keys)} "
                              f"by {new.sequence_by}"))
    if old.cdc != new.cdc:
        found.append(Breaking(f"{asset}:cdc_changed", asset, f"cdc {old.cdc} -> {new.cdc}"))
    return found


def _column_breaking(asset: str, old: Column, new: Column) -> list[Breaking]:
    found = []
    if narrows(old.type, new.type):
        found.append(Breaking(f"{asset}:type_narrowed:{old.name}", asset,
                              f"column {old.name} type {old.type} -> {new.type}"))
    if weakens(old.phi, new.phi):
        found.append(Breaking(f"{asset}:phi_weakened:{old.name}", asset,
                              f"column {old.name} PHI {old.phi} -> {new.phi or 'none'}",
                              phi=True))
    return found


def _renamed_to(column: Column, old: Table, new: Table) -> str | None:
    """A column added to `new` that looks like `column` under another name: the same source
    field, or the same type in the same position."""
    old_names = {c.name for c in old.columns}
    position = next(i for i, c in enumerate(old.columns) if c.name == column.name)
    for index, candidate in enumerate(new.columns):
        if candidate.name in old_names:
            continue
        same_source = column.source is not None and candidate.source == column.source
        if same_source or (index == position and candidate.type == column.type):
            return candidate.name
    return None


def weakens(old: PhiTag | None, new: PhiTag | None) -> bool:
    """Whether tag `new` lets more of a value through than `old`, or other parts of it."""
    return PHI_RANK[new] < PHI_RANK[old] or (old is not None and new != old
                                              and PHI_RANK[new] == PHI_RANK[old])


def output_columns(query: exp.Query) -> tuple[str, ...] | None:
    """The names of a query's output columns; None when it selects `*` (not knowable here)."""
    if any(isinstance(e, exp.Star) or (isinstance(e, exp.Column) and e.is_star)
           for e in query.selects):
        return None
    return tuple(name.lower() for name in query.named_selects)


def columns_read(query: exp.Query, table: str) -> set[str]:
    """Columns `query` reads from lake table `table` (`gold.x`): qualified by its alias, or
    unqualified in a SELECT whose only table it is."""
    layer, _, name = table.partition(".")
    found: set[str] = set()
    for select in query.find_all(exp.Select):
        tables = [t for t in select.find_all(exp.Table) if t.find_ancestor(exp.Select) is select]
        aliases = {t.alias_or_name.lower() for t in tables
                   if t.db.lower() == layer and t.name.lower() == name}
        if not aliases:
            continue
        alone = len(tables) == 1
        for column in select.find_all(exp.Column):
            if column.find_ancestor(exp.Select) is not select:
                continue
            if column.table.lower() in aliases or (alone and not column.table):
                found.add(column.name.lower())
    return found
