"""A lake under each test's tmp dir; the one Spark session comes from tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lake_assets.storage.lake import Lake


@pytest.fixture
def lake(spark: SparkSession, tmp_path: Path) -> Lake:
    """The lake in this test's own directory, on the shared session."""
    return Lake(root=str(tmp_path / "lake"), session_factory=lambda: spark)


def parquet_files(root: Path) -> set[str]:
    """Relative paths of every Parquet file under a table directory."""
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet")}
