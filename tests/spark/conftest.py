"""A lake under each test's tmp dir; the one Spark session comes from tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from resources.delta import DeltaLake


@pytest.fixture
def lake(spark: SparkSession, tmp_path: Path) -> DeltaLake:
    """A DeltaLake resource rooted in this test's own directory, using the shared session."""
    return DeltaLake(root=str(tmp_path / "lake"))


def parquet_files(root: Path) -> set[str]:
    """Relative paths of every Parquet file under a table directory."""
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet")}
