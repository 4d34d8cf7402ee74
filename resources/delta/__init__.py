"""Delta Lake storage on delta-rs for Spark: data source, table operations, Dagster resource.

Names are imported lazily, so Spark's Python workers that unpickle the data source do not pay
for importing Dagster.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DeltaLake": "resources.delta.io",
    "MergeResult": "resources.delta.merge",
    "merge_into": "resources.delta.merge",
    "Scd2": "resources.delta.changes",
    "TableRef": "resources.delta.tables",
    "WriteResult": "resources.delta.tables",
    "read": "resources.delta.tables",
    "register": "resources.delta.tables",
    "write": "resources.delta.tables",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'resources.delta' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
