"""`SparkResource`: the lake's Spark session as a lazy Dagster resource.

Nothing starts until an asset asks for `spark.session`; definitions load and sensors never
start Spark. The session itself is built by `lake_assets.storage.spark.build_session`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dagster_pyspark import LazyPySparkResource
from pydantic import Field

from lake_assets.storage.spark import build_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class SparkResource(LazyPySparkResource):
    """A lazily created Spark session: `spark.session` builds it on first use."""

    spark_config: dict[str, Any] = Field(
        default_factory=dict, description="Spark conf applied when the session is built."
    )
    master: str | None = Field(
        default=None, description="spark://host:port or local[n]; default $SPARK_MASTER."
    )
    remote: str | None = Field(
        default=None, description="Spark Connect sc://host:port; default $SPARK_REMOTE."
    )
    app_name: str = "lakehouse"
    ui_enabled: bool = True

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    def _init_session(self) -> None:
        if self._spark_session is None:
            self._spark_session = build_session(
                master=self.master,
                remote=self.remote,
                app_name=self.app_name,
                conf=self.spark_config,
                ui_enabled=self.ui_enabled,
            )

    @property
    def session(self) -> SparkSession:
        """The Spark session, built on first access."""
        return self.spark_session
