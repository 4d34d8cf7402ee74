"""`lakehouse plan`: what a change to `metadata/` does to the lake, before it lands.

Compares two catalogs (the base, e.g. the main branch, and the working copy) asset by asset:
assets added, removed, or whose code version changes and why; breaking changes (see
`catalog.breaking`), acknowledged or not; partitions to re-materialize; and the teams to ask.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from lake_assets.catalog.breaking import Breaking, columns_read, output_columns, table_breaking
from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.lineage import parse_query, projection_inputs
from lake_assets.catalog.models import Feed, Projection, Table
from lake_assets.catalog.versions import bronze_version, gold_version, silver_version


@dataclass(frozen=True)
class Asset:
    """One asset as the plan sees it: its code version and where it comes from."""

    key: str
    version: str
    source: Feed | Projection
    table: Table | None = None
    sql: str = ""


@dataclass(frozen=True)
class Change:
    """An asset added, removed, or whose code version changes, with the reasons."""

    asset: str
    change: str  # added | removed | changed
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """A breaking change and the reason it was acknowledged with, if it was."""

    id: str
    asset: str
    message: str
    phi: bool
    acknowledged: str | None


@dataclass(frozen=True)
class Backfill:
    """Partitions of an asset to re-materialize once the change lands."""

    asset: str
    partitions: str
    why: str


@dataclass
class Plan:
    """Everything `lakehouse plan` reports."""

    changes: list[Change] = field(default_factory=list)
    breaking: list[Finding] = field(default_factory=list)
    backfills: list[Backfill] = field(default_factory=list)
    teams: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # team -> role -> assets

    @property
    def blocking(self) -> list[Finding]:
        """Breaking changes nobody acknowledged: the plan fails while there are any."""
        return [b for b in self.breaking if b.acknowledged is None]

    def to_json(self) -> str:
        """The plan as JSON, for CI bots."""
        data = asdict(self) | {"blocking": len(self.blocking)}
        return json.dumps(data, indent=2, sort_keys=True)


def assets_of(catalog: Catalog) -> dict[str, Asset]:
    """Every bronze, silver and gold asset of `catalog`, by key."""
    found: dict[str, Asset] = {}
    shared: dict[str, list[Feed]] = {}
    for feed in catalog.feeds:
        for table in feed.tables:
            key = f"bronze/{feed.name}/{table.name}"
            found[key] = Asset(key, bronze_version(feed, table), feed, table)
            shared.setdefault(table.name, []).append(feed)
    for name, feeds in shared.items():
        table = feeds[0].table(name)
        assert table is not None
        found[f"silver/{name}"] = Asset(f"silver/{name}", silver_version(table, feeds),
                                        feeds[0], table)
    for projection in catalog.projections:
        sql = catalog.sql_path(projection).read_text(encoding="utf-8")
        found[f"gold/{projection.name}"] = Asset(f"gold/{projection.name}",
                                                 gold_version(projection, sql), projection,
                                                 sql=sql)
    return found


def build_plan(base: Catalog, head: Catalog) -> Plan:
    """The plan that turns `base` into `head`."""
    before, after = assets_of(base), assets_of(head)
    plan = Plan()
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old is None:
            plan.changes.append(Change(key, "added"))
        elif new is None:
            plan.changes.append(Change(key, "removed"))
        elif old.version != new.version:
            plan.changes.append(Change(key, "changed", tuple(_reasons(old, new))))
    golds = {key: asset for key, asset in after.items() if key.startswith("gold/")}
    found = [b for key in sorted(before.keys() & after.keys())
             for b in _breaking(before[key], after[key], golds)]
    found += _dropped_projection_columns(base, head, before, after)
    plan.breaking = [_acknowledged(b, after) for b in found]
    plan.backfills = _backfills(before, after, head)
    plan.teams = _teams(plan, before, after, head)
    return plan


def _reasons(old: Asset, new: Asset) -> list[str]:
    reasons = []
    if old.table is not None and new.table is not None:
        reasons += _table_reasons(old.table, new.table)
    if old.sql != new.sql:
        reasons.append("SQL changed")
    source_fields = set(type(new.source).model_fields) - {"tables", "description", "acknowledge"}
    for name in sorted(source_fields):
        if getattr(old.source, name, None) != getattr(new.source, name, None):
            reasons.append(f"{name} changed")
    return reasons or ["description changed"]


def _table_reasons(old: Table, new: Table) -> list[str]:
    before = {c.name: c for c in old.columns}
    after = {c.name: c for c in new.columns}
    reasons = [f"column {n} added" for n in after if n not in before]
    reasons += [f"column {n} removed" for n in before if n not in after]
    for name in before.keys() & after.keys():
        changed = [k for k in type(new.columns[0]).model_fields
                   if getattr(before[name], k) != getattr(after[name], k)]
        reasons += [f"column {name}: {k} changed" for k in sorted(changed)]
    table_fields = set(type(new).model_fields) - {"columns", "description", "name"}
    reasons += [f"{k} changed" for k in sorted(table_fields) if getattr(old, k) != getattr(new, k)]
    return sorted(reasons)


def _breaking(old: Asset, new: Asset, readers: dict[str, Asset]) -> list[Breaking]:
    """A silver table's breaking changes, naming the projections that read a removed column."""
    if not old.key.startswith("silver/") or old.table is None or new.table is None:
        return []
    table = old.key.replace("/", ".", 1)
    found = []
    for item in table_breaking(old.key, old.table, new.table):
        column = item.id.rsplit(":", 1)[1] if ":column_removed:" in item.id else None
        using = sorted(key for key, gold in readers.items()
                       if column and column in columns_read(parse_query(gold.sql, file=key),
                                                            table))
        message = f"{item.message}; {', '.join(using)} read it" if using else item.message
        found.append(Breaking(item.id, item.asset, message, item.phi))
    return found


def _dropped_projection_columns(base: Catalog, head: Catalog, before: dict[str, Asset],
                                after: dict[str, Asset]) -> list[Breaking]:
    """Output columns a projection no longer returns that another projection's SQL reads."""
    found = []
    readers = projection_inputs(head)
    for key, old in before.items():
        new = after.get(key)
        if not key.startswith("gold/") or new is None:
            continue
        was = output_columns(parse_query(old.sql, file=key))
        now = output_columns(parse_query(new.sql, file=key))
        if was is None or now is None:
            continue
        table = f"gold.{key.split('/', 1)[1]}"
        for reader, inputs in readers.items():
            if table not in inputs:
                continue
            sql = after[f"gold/{reader}"].sql
            for column in sorted((set(was) - set(now)) & columns_read(parse_query(sql, file=reader),
                                                                      table)):
                found.append(Breaking(f"{key}:column_dropped:{column}", key,
                                      f"column {column} dropped; gold.{reader} reads it"))
    return found


def _acknowledged(found: Breaking, after: dict[str, Asset]) -> Finding:
    asset = after.get(found.asset)
    reason = None
    if asset is not None:
        acks = {a.change: a.reason for a in getattr(asset.source, "acknowledge", ())}
        reason = acks.get(found.id)
    return Finding(found.id, found.asset, found.message, found.phi, reason)


def _backfills(before: dict[str, Asset], after: dict[str, Asset],
               head: Catalog) -> list[Backfill]:
    """Silver tables whose masking, keys, CDC mode or types changed are merged again from
    bronze; bronze tables whose parsing changed are reloaded; gold downstream of either, or
    whose SQL changed, is recomputed."""
    found: dict[str, str] = {}
    for key in sorted(before.keys() & after.keys()):
        old, new = before[key], after[key]
        if old.table is not None and new.table is not None and old.version != new.version:
            why = _table_backfill(key, old.table, new.table)
            if why:
                found[key] = why
        elif key.startswith("gold/") and old.sql != new.sql:
            found[key] = "its SQL changed"
    inputs = projection_inputs(head)
    for name in _downstream(found, inputs):
        found.setdefault(f"gold/{name}", "a table it reads is backfilled")
    return [Backfill(key, "all", why) for key, why in sorted(found.items())]


def _table_backfill(key: str, old: Table, new: Table) -> str | None:
    before = {c.name: c for c in old.columns}
    pairs = [(before[c.name], c) for c in new.columns if c.name in before]
    if key.startswith("bronze/"):
        parsing = any((o.type, o.format, o.source) != (n.type, n.format, n.source)
                      for o, n in pairs)
        return "how its columns are read changed; reload from the landing zone" if parsing \
            else None
    if any(o.phi != n.phi for o, n in pairs):
        return "its masking changed"
    if (old.keys, old.sequence_by, old.cdc) != (new.keys, new.sequence_by, new.cdc):
        return "its keys or CDC mode changed"
    if any(o.type != n.type for o, n in pairs):
        return "a column type changed"
    return None


def _downstream(found: dict[str, str], inputs: dict[str, tuple[str, ...]]) -> list[str]:
    """Projections reading a backfilled table, directly or through other projections."""
    marked = {k.replace("/", ".", 1) for k in found if not k.startswith("bronze/")}
    order: list[str] = []
    changed = True
    while changed:
        changed = False
        for name, refs in sorted(inputs.items()):
            if name not in order and marked & set(refs):
                order.append(name)
                marked.add(f"gold.{name}")
                changed = True
    return order


def _teams(plan: Plan, before: dict[str, Asset], after: dict[str, Asset],
           head: Catalog) -> dict[str, dict[str, list[str]]]:
    """Per team and role (owns, subscribes to, downstream): the touched assets it should
    review, gold downstream of the change included."""
    touched = {c.asset for c in plan.changes} | {b.asset for b in plan.breaking}
    found: dict[str, dict[str, set[str]]] = {}

    def add(teams: tuple[str, ...], role: str, key: str) -> None:
        for team in teams:
            found.setdefault(team, {}).setdefault(role, set()).add(key)

    for key in touched:
        source = (after.get(key) or before[key]).source
        add(source.owners, "owns", key)
        add(source.subscribers, "subscribes to", key)
    for name in _downstream({k: "" for k in touched}, projection_inputs(head)):
        projection = after[f"gold/{name}"].source
        add((*projection.owners, *projection.subscribers), "downstream", f"gold/{name}")
    return {team: {role: sorted(keys) for role, keys in sorted(roles.items())}
            for team, roles in sorted(found.items())}
