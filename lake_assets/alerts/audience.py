"""Who hears about an asset: its owners, its subscribers, and the subscribers of everything
downstream of it, with the teams' contacts from owners.yaml. Built once, at definitions load
(`factory.alerts` reads the asset specs); plain data here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from lake_assets.catalog.models import Team


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
    checks: tuple[str, ...]  # check names


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
    def check_keys(self) -> list[tuple[str, str]]:
        """Every asset check of every known asset, as (asset key, check name)."""
        return [(node.key, check) for node in self.nodes.values() for check in node.checks]

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
