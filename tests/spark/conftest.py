"""One local Spark session for the whole test process, and a lake under each test's tmp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from resources.delta import DeltaLake
from resources.spark import build_session

TEST_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.driver.memory": "1g",
    "spark.python.worker.reuse": "true",
}


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """The shared `local[2]` session: UTC, UI off, two shuffle partitions."""
    session = build_session(
        master="local[2]", app_name="lakehouse-tests", conf=TEST_CONF, ui_enabled=False
    )
    yield session
    session.stop()


@pytest.fixture
def lake(spark: SparkSession, tmp_path: Path) -> DeltaLake:
    """A DeltaLake resource rooted in this test's own directory, using the shared session."""
    return DeltaLake(root=str(tmp_path / "lake"))


def parquet_files(root: Path) -> set[str]:
    """Relative paths of every Parquet file under a table directory."""
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet")}
