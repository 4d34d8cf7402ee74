"""`Catalog`: every validated feed, projection and team, the access policy, and the YAML file
each came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lake_assets.catalog.access import Access
from lake_assets.catalog.models import Feed, Owners, Projection


@dataclass(frozen=True)
class Catalog:
    """Every feed, projection and team, the access policy (None without access.yaml), with the
    YAML file each came from."""

    root: Path
    feeds: tuple[Feed, ...]
    projections: tuple[Projection, ...]
    owners: Owners
    files: dict[str, str] = field(default_factory=dict)
    access: Access | None = None

    def feed(self, name: str) -> Feed:
        """The feed called `name`; raises KeyError naming the known feeds."""
        for feed in self.feeds:
            if feed.name == name:
                return feed
        raise KeyError(f"no feed {name!r}; known feeds: {', '.join(f.name for f in self.feeds)}")

    def file_of(self, kind: str, name: str) -> str:
        """The metadata file (relative to the metadata root) that declared `kind` `name`."""
        return self.files[f"{kind}:{name}" if name else kind]

    def sql_path(self, projection: Projection) -> Path:
        """Absolute path of a projection's SQL file."""
        return (self.root / self.file_of("projection", projection.name)).parent / projection.sql
