"""`DeltaLake`: the lake's Delta tables as a Dagster resource, configured in the UI or by env.

    def my_asset(lake: DeltaLake) -> dg.MaterializeResult:
        result = lake.open().write(df, table="gold/daily_census", mode="overwrite")
        return dg.MaterializeResult(metadata=result.as_metadata())

`open()` returns a `lake_assets.storage.lake.Lake`, which does the work. Roots, storage options
and the Spark session are resolved when it is used, never at import or definitions load.
"""

from __future__ import annotations

from dagster import ConfigurableResource
from dagster_deltalake import S3Config
from pydantic import Field

from lake_assets.resources.spark import SparkResource
from lake_assets.storage.lake import Lake


class DeltaLake(ConfigurableResource):
    """Delta tables of the lake, written and read through Spark and delta-rs."""

    root: str | None = Field(
        default=None, description="Local path or s3://bucket/prefix; default $LAKE_ROOT."
    )
    bronze_root: str | None = Field(
        default=None,
        description="Root of bronze and quarantine (raw PHI); default $LAKE_BRONZE_ROOT or root.",
    )
    s3: S3Config | None = Field(
        default=None, description="S3 options; default AWS_* and LAKE_S3_ENDPOINT from the env."
    )
    spark: SparkResource = Field(default_factory=SparkResource)

    def open(self) -> Lake:
        """The lake's tables with this configuration, on this resource's Spark session."""
        return Lake(root=self.root, bronze_root=self.bronze_root, s3=self._s3_options(),
                    session_factory=lambda: self.spark.session)

    def _s3_options(self) -> dict[str, str] | None:
        if self.s3 is None:
            return None
        return {key: str(value).lower() if isinstance(value, bool) else str(value)
                for key, value in self.s3.model_dump().items()
                if value is not None and key != "provider"}
