"""The one entry point: every asset, check, sensor and resource, built from `metadata/`."""

from __future__ import annotations

import dagster as dg

from lake_assets.catalog.loader import load_catalog
from lake_assets.settings import metadata_root

catalog = load_catalog(metadata_root())

defs = dg.Definitions()
