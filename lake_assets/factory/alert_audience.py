"""Who hears about an asset: its owners, its subscribers, and the subscribers of everything
downstream of it, with the teams' contacts from owners.yaml. Built once, at definitions load.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import dagster as dg

from lake_assets.catalog.loader import Catalog
from lake_assets.catalog.models import Feed, Projection, Team

TEAM_PREFIX = "team:"


@dataclass(frozen=True)
class Window:
    """A time-window freshness policy in seconds: warn after (optional), fail after."""

    warn: float | None
    fail: float


@dataclass(frozen=True)
class AssetNode:
    """One asset as alert routing sees it."""

    key: str
    owners: tuple[str, ...]
    subscribers: tuple[str, ...]
    children: tuple[str, ...]
    freshness: Window | None
    has_freshness_policy: bool
    checks: tuple[dg.AssetCheckKey, ...]


@dataclass(frozen=True)
class Recipient:
    """A team to notify, and the sentence telling it why."""

    team: str
    reason: str


@dataclass(frozen=True)
class Audience:
    """Assets by key (`bronze/feed/table`) and teams by name."""

    nodes: Mapping[str, AssetNode]
    teams: Mapping[str, Team]

    @property
    def check_keys(self) -> list[dg.AssetCheckKey]:
        """Every asset check of every known asset."""
        return [check for node in self.nodes.values() for check in node.checks]

    def downstream(self, key: str) -> list[str]:
        """Assets that read from `key`, directly or not, nearest first; `key` excluded."""
        seen, order, queue = {key}, [], deque([key])
        while queue:
            for child in self.nodes[queue.popleft()].children:
                if child not in seen and child in self.nodes:
                    seen.add(child)
                    order.append(child)
                    queue.append(child)
        return order

    def recipients(self, key: str) -> list[Recipient]:
        """Owners of `key`, then its subscribers, then subscribers of downstream assets.

        A team is listed once, for its closest reason.
        """
        node = self.nodes[key]
        found: dict[str, str] = {}
        for team in node.owners:
            found.setdefault(team, "your team owns this asset")
        for team in node.subscribers:
            found.setdefault(team, "your team subscribes to this asset")
        for child in self.downstream(key):
            for team in self.nodes[child].subscribers:
                found.setdefault(team, f"your team subscribes to {child}, which is built from it")
        return [Recipient(team, why) for team, why in found.items() if team in self.teams]


def build_audience(
    catalog: Catalog, assets: Sequence[dg.AssetsDefinition | dg.AssetSpec]
) -> Audience:
    """The routing view of `assets`; owners come from the specs, subscribers from metadata."""
    specs = [spec for item in assets for spec in _specs_of(item)]
    checks: dict[str, list[dg.AssetCheckKey]] = {}
    for item in assets:
        for check in item.check_keys if isinstance(item, dg.AssetsDefinition) else ():
            checks.setdefault(check.asset_key.to_user_string(), []).append(check)
    children: dict[str, list[str]] = {}
    for spec in specs:
        for dep in spec.deps:
            children.setdefault(dep.asset_key.to_user_string(), []).append(_key(spec))
    nodes = {
        _key(spec): AssetNode(
            key=_key(spec),
            owners=_teams(spec.owners) or _source_teams(catalog, spec, "owners"),
            subscribers=_source_teams(catalog, spec, "subscribers"),
            children=tuple(sorted(set(children.get(_key(spec), ())))),
            freshness=_window(spec.freshness_policy),
            has_freshness_policy=spec.freshness_policy is not None,
            checks=tuple(sorted(checks.get(_key(spec), ()), key=lambda c: c.name)),
        )
        for spec in specs
    }
    return Audience(nodes=nodes, teams=dict(catalog.owners.teams))


def _specs_of(item: dg.AssetsDefinition | dg.AssetSpec) -> Iterable[dg.AssetSpec]:
    return [item] if isinstance(item, dg.AssetSpec) else item.specs


def _key(spec: dg.AssetSpec) -> str:
    return spec.key.to_user_string()


def _teams(owners: Iterable[str]) -> tuple[str, ...]:
    """Team names of Dagster owner strings (`team:<name>`); user emails are not teams."""
    return tuple(o.removeprefix(TEAM_PREFIX) for o in owners if o.startswith(TEAM_PREFIX))


def _source(catalog: Catalog, spec: dg.AssetSpec) -> Feed | Projection | None:
    """The feed or projection an asset comes from: by its `lake/*` tag, else by its key."""
    layer, name = (spec.key.path[0], spec.key.path[1]) if len(spec.key.path) > 1 else ("", "")
    projection = spec.tags.get("lake/projection") or (name if layer == "gold" else None)
    if projection:
        return next((p for p in catalog.projections if p.name == projection), None)
    feed = spec.tags.get("lake/feed") or (name if layer == "bronze" else None)
    if feed is None and layer == "silver":
        return next((f for f in catalog.feeds if f.table(name) is not None), None)
    return next((f for f in catalog.feeds if f.name == feed), None)


def _source_teams(
    catalog: Catalog, spec: dg.AssetSpec, role: Literal["owners", "subscribers"]
) -> tuple[str, ...]:
    source = _source(catalog, spec)
    return getattr(source, role) if source is not None else ()


def _window(policy: object) -> Window | None:
    """The windows of a time-window freshness policy; None for other kinds (cron) or none."""
    fail, warn = getattr(policy, "fail_window", None), getattr(policy, "warn_window", None)
    if fail is None:
        return None
    return Window(warn=_seconds(warn) if warn is not None else None, fail=_seconds(fail))


def _seconds(window: object) -> float:
    delta = window.to_timedelta() if hasattr(window, "to_timedelta") else window
    if not isinstance(delta, timedelta):
        raise TypeError(f"freshness window {window!r} is not a duration")
    return delta.total_seconds()
