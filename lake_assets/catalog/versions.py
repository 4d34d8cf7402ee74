"""Code versions of the lake's assets: a short hash of the metadata that shapes each one.

The factories stamp them on the assets (the UI marks an asset stale when its version changes)
and `lakehouse plan` compares them between two versions of `metadata/`, so both agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from lake_assets.catalog.models import UNVERSIONED, Feed, Projection, Table


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def bronze_version(feed: Feed, table: Table) -> str:
    """The code version of `bronze/<feed>/<table>`: the feed's settings and the table."""
    return feed.fingerprint(table)


def silver_version(table: Table, feeds: Sequence[Feed]) -> str:
    """The code version of `silver/<table>`: the table and the feeds that fill it."""
    return _digest(table.model_dump_json(), *(f.name for f in feeds))


def gold_version(projection: Projection, sql: str) -> str:
    """The code version of `gold/<projection>`: its settings and its SQL text."""
    settings = projection.model_dump_json(exclude=UNVERSIONED)
    return hashlib.sha256((settings + sql).encode()).hexdigest()[:16]
