"""The lake's Dagster resources: thin, configurable classes over `lake_assets.storage` and
`lake_assets.alerts`. Installed as `lake_assets.resources`."""

from lake_assets.resources.alerts import AlertRouter
from lake_assets.resources.lake import DeltaLake
from lake_assets.resources.spark import SparkResource

__all__ = ["AlertRouter", "DeltaLake", "SparkResource"]
